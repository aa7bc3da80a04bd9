#!/usr/bin/env python3
"""The SDK in one page: a box, a command, streamed output, files, resources."""
import cocoon

with cocoon.Box.create(image="default", cpus=2, memory="512M", ephemeral=True) as box:
    r = box.exec(["sh", "-c", "echo hello from $(uname -s) with $(nproc) CPUs; echo a warning >&2; exit 3"])
    print(f"stdout={r.stdout!r} stderr={r.stderr!r} exit_code={r.exit_code}")

    print(box.run_code("import platform; print('python', platform.python_version())").stdout, end="")

    for chunk in box.spawn(["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"]):
        print(f"[{chunk.stream}] {chunk.text}", end="")

    box.files.write("/tmp/data.csv", "a,b\n1,2\n3,4\n")
    r = box.exec(["python3", "-c", "import csv; print(sum(int(r['b']) for r in csv.DictReader(open('/tmp/data.csv'))))"])
    print("sum of b:", r.stdout.strip())

    try:
        box.exec(["sleep", "10"], timeout=1)
    except cocoon.Timeout as e:
        print("timed out, exit code", e.result.exit_code)

    s = box.stats()
    print(f"memory {s.memory_used >> 20} MiB used of {s.memory_total >> 20} MiB, {s.processes} processes")
