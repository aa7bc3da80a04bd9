#!/usr/bin/env python3
"""kvm backend numbers for bench/RESULTS.md: exec of `cocoon-vmm --kvm-run` to the
vCPU threads entering KVM_RUN (wall and CPU, from the child's own log line) on this
host's /dev/kvm, the child's RSS, and the nested lane's figures (boot to READY, RSS
overhead beyond guest RAM) read from build/nested/console.txt of the last
tests/nested/run.sh. Usage: bench/kvm_backend.py [VMM] [RUNS]"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.path.join(REPO, "build", "share", "cocoon")


def start_once(vmm, box):
    a, b = socket.socketpair()
    os.dup2(b.fileno(), 9)
    p = subprocess.Popen(["/bin/sh", "-c", f"exec 3<&9 9<&-; exec {vmm} --kvm-run {box}"], pass_fds=(9,),
                         stderr=subprocess.PIPE)
    os.close(9)
    line = p.stderr.readline().decode()
    time.sleep(0.3)
    rss = None
    try:
        with open(f"/proc/{p.pid}/status") as f:
            rss = int([x for x in f if x.startswith("VmRSS")][0].split()[1])
    except (OSError, IndexError):
        pass
    p.kill()
    p.wait()
    a.close()
    b.close()
    m = re.search(r"started ([0-9.]+) ms after exec \(CPU ([0-9.]+) ms\)", line)
    if not m:
        raise SystemExit("kvm child failed: " + line.strip())
    return float(m.group(1)), float(m.group(2)), rss


def main():
    vmm = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build", "bin", "cocoon-vmm")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    box = tempfile.mkdtemp(prefix="cocoon-kvm-bench-")
    with open(os.path.join(box, "disk.raw"), "wb") as f:
        f.truncate(24 << 20)
    with open(os.path.join(box, "config.json"), "w") as f:
        f.write('{"id": "bench", "kernel": "%s/vmlinux", "initrd": "%s/initramfs.cpio", "disk": "%s/disk.raw", '
                '"disk_format": "raw", "backend": "kvm", "cpus": 1, "memory_mib": 256}' % (SHARE, SHARE, box))
    res = [start_once(vmm, box) for _ in range(runs)]
    wall = statistics.median(r[0] for r in res)
    cpu = statistics.median(r[1] for r in res)
    rss = statistics.median(r[2] for r in res if r[2])
    lines = [f"Command: `bench/kvm_backend.py build/bin/cocoon-vmm {runs}` (this host's /dev/kvm is PVM: the",
             "guest kernel does not get far, but everything up to the first KVM_RUN is the real path), then",
             "`tests/nested/run.sh` for the real-guest figures.", "",
             "| measure | value |", "|---|---|",
             f"| exec of the kvm child to vCPUs in KVM_RUN, wall (median of {runs}) | {wall:.1f} ms |",
             f"| same, CPU time of the child | {cpu:.1f} ms |",
             f"| child RSS 0.3 s after start (guest kernel 21 MB ELF + initramfs copied in) | {rss / 1024:.1f} MiB |"]
    con = os.path.join(REPO, "build", "nested", "console.txt")
    if os.path.exists(con):
        text = open(con, errors="replace").read()
        ready = [int(x) for x in re.findall(r"^PASS boot-\w+: ready \(ok (\d+);", text, re.M)]
        over = [int(x) for x in re.findall(r"-> overhead (\d+) KiB", text)]
        mon = re.findall(r"monitor (\d+) KiB", text)
        start = re.findall(r"BENCH start \w+: vCPUs started ([0-9.]+) ms after exec \(CPU ([0-9.]+) ms\)", text)
        if ready:
            lines.append(f"| nested lane: boot to READY, kvm backend (inner boots: {', '.join(map(str, ready))} ms) "
                         f"| median {statistics.median(ready)} ms |")
        if over:
            lines.append(f"| nested lane: kvm child RSS minus guest RAM touched | {', '.join(str(o) for o in over)} KiB |")
        if mon:
            lines.append(f"| nested lane: monitor (cocoon-vmm parent, static) RSS | {mon[0]} KiB |")
        if start:
            lines.append("| nested lane: exec to KVM_RUN under TCG (not a performance figure) | " +
                         ", ".join(f"{w} ms (CPU {c} ms)" for w, c in start) + " |")
        fds = re.findall(r"NESTED: (\w+) ioeventfd: (\d+) virtio queue\(s\), irqfd: (\d+) device\(s\)", text)
        if fds:
            lines.append("| nested lane: virtio queues notifying through ioeventfd / devices interrupting through "
                         "irqfd | " + ", ".join(f"{b}: {q} / {d}" for b, q, d in fds) + " |")
    lines += ["", "Boot to READY with the qemu backend in the same lane was not measured: the outer initramfs",
              "has no QEMU (it would need QEMU's shared libraries and firmware). Nested TCG numbers are a",
              "functional lane, not a performance comparison. box2 of the lane has networking (virtio-net",
              "and the network stack in the kvm child: its RSS overhead includes the stack)."]
    replace_section(os.path.join(REPO, "bench", "RESULTS.md"), "## kvm backend (own VMM)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
