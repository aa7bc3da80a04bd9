#!/usr/bin/env python3
"""A command fed from the host, one on a terminal that is resized, one stopped by a signal."""
import cocoon

with cocoon.Box.create(memory="512M", ephemeral=True) as box:
    ex = box.spawn(["python3", "-c", "import sys\nfor l in sys.stdin: print(l.strip().upper(), flush=True)"],
                   stdin=True)
    for word in ("one", "two", "three"):
        ex.write(word + "\n")
    ex.close_stdin()
    print(ex.wait().stdout, end="")

    tty = box.spawn(["sh", "-c", "stty size; read _; stty size"], tty=True, stdin=True, rows=24, cols=80)
    out = iter(tty)
    print("terminal:", next(out).text.strip())
    tty.resize(50, 132)
    tty.write("\n")
    tty.close_stdin()
    print("after resize:", "".join(c.text for c in out).split()[-2:])

    sleeper = box.spawn(["sh", "-c", "trap 'echo stopping; exit 0' TERM; while :; do sleep 0.1; done"])
    import time
    time.sleep(0.5)
    sleeper.signal(15)
    r = sleeper.wait()
    print(f"signalled command said {r.stdout.strip()!r}, exit {r.exit_code}")
