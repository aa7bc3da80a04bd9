#!/usr/bin/env python3
"""kvm backend numbers for bench/RESULTS.md: exec of `cocoon-vmm --kvm-run` to the
vCPU threads entering KVM_RUN (wall and CPU, from the child's own log line) on this
host's /dev/kvm, the child's RSS, and the nested lane's figures (boot to READY, RSS
overhead beyond guest RAM) read from build/nested/console.txt of the last
tests/nested/run.sh (which also boots the qemu backend for the boot comparison; env
NESTED_CONSOLE names another console.txt). The start-up is measured alternating: the
kernel's ELF segments and the initrd copied into guest RAM (the default), mapped from
their files (COCOON_KVM_MAP_KERNEL=1), and BEFORE_VMM (a build of an older tree, its
own default) when given. Usage: bench/kvm_backend.py [VMM] [RUNS] [BEFORE_VMM]"""
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
CMDLINE = "console=ttyS0 quiet panic=-1"


def start_once(vmm, box, mapped=False):
    env = dict(os.environ)
    env.pop("COCOON_KVM_MAP_KERNEL", None)
    if mapped:
        env["COCOON_KVM_MAP_KERNEL"] = "1"
    # The child's contract (src/monitor/backend.h): the agent channel on fd 3, the console
    # on fd 5 (no network here), the box directory and the kernel command line as arguments.
    # Spawned directly (vfork and exec, as the monitor forks and execs it): no shell
    # whose own start-up the child's CPU clock would count.
    a, b = socket.socketpair()
    con_r, con_w = os.pipe()
    err_r, err_w = os.pipe()
    acts = [(os.POSIX_SPAWN_DUP2, b.fileno(), 3), (os.POSIX_SPAWN_DUP2, con_w, 5), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    pid = os.posix_spawn(vmm, [vmm, "--kvm-run", box, CMDLINE], env, file_actions=acts)
    os.close(err_w)
    os.close(con_w)
    b.close()
    err = os.fdopen(err_r, "rb")
    line = err.readline().decode()
    time.sleep(0.3)
    rss = None
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = int([x for x in f if x.startswith("VmRSS")][0].split()[1])
    except (OSError, IndexError):
        pass
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    err.close()
    a.close()
    os.close(con_r)
    m = re.search(r"started ([0-9.]+) ms after exec \(CPU ([0-9.]+) ms\)", line)
    if not m:
        raise SystemExit("kvm child failed: " + line.strip())
    return float(m.group(1)), float(m.group(2)), rss


def boot_comparison(text):
    """kvm backend (kernel mapped, and copied) vs qemu backend, boot to READY, from the
    BENCH boot lines of the nested lane."""
    runs = {"kvm": [], "kvmmap": [], "qemu": []}
    stalls = {"kvm": [], "kvmmap": [], "qemu": []}
    for be, ready, wall, split, stall in re.findall(
            r"^BENCH boot (kvm|kvmmap|qemu) \d+: ready_ms (\d+) wall_ms (\d+) \((.*)\)(?: rtc_stall=(\d+))?$",
            text, re.M):
        g = re.search(r"guest boot (\d+) ms", split)
        runs[be].append((int(ready), int(wall), int(g.group(1)) if g else None))
        if stall != "":
            stalls[be].append(int(stall) > 0)
    if not runs["kvm"] or not runs["qemu"]:
        return []
    runs = {be: rs for be, rs in runs.items() if rs}
    med = {be: [statistics.median(r[i] for r in rs) for i in range(2)] for be, rs in runs.items()}
    gb = {be: statistics.median(r[2] for r in rs if r[2] is not None) for be, rs in runs.items()}
    bes = [be for be in ("kvm", "kvmmap", "qemu") if be in runs]
    names = {"kvm": "kvm backend (kernel copied, default)", "kvmmap": "kvm backend (kernel mapped)", "qemu": "qemu backend"}
    out = ["Boot to agent READY, kvm backend vs qemu backend (QEMU 7.2 `-M microvm`, accel kvm), same guest",
           "kernel, initramfs, qcow2 disk, 1 vCPU, 256 MiB, both with XSAVE hidden from the guest, booted",
           f"alternately {len(runs['kvm'])} times each inside the nested lane's outer VM "
           "(`tests/nested/run.sh`, then this script); the kvm backend both with the kernel and initrd copied",
           "into guest RAM (the default) and mapped from their files (`COCOON_KVM_MAP_KERNEL=1`):", "",
           "| measure (median) | " + " | ".join(names[be] for be in bes) + " | " +
           " | ".join(f"{be} / qemu" for be in bes if be != "qemu") + " |",
           "|---|" + "---|" * (2 * len(bes) - 1)]
    rows = [("ready_ms (monitor start to READY)", lambda be: med[be][0]),
            ("wall: exec of cocoon-vmm to its ready line", lambda be: med[be][1]),
            ("of which guest boot (agent's boot clock at READY)", lambda be: gb[be])]
    for name, f in rows:
        out.append(f"| {name} | " + " | ".join(f"{f(be):.0f} ms" for be in bes) + " | " +
                   " | ".join(f"{f(be) / f('qemu'):.2f}" for be in bes if be != "qemu") + " |")
    if all(stalls[be] for be in bes):
        out.append("| boots whose console shows a clock stall (RTC) | " +
                   " | ".join(f"{sum(stalls[be])}/{len(stalls[be])}" for be in bes) + " |" + " |" * (len(bes) - 1))
    out.append("| runs, ready_ms | " + " | ".join(", ".join(str(r[0]) for r in runs[be]) for be in bes) + " |" +
               " |" * (len(bes) - 1))
    ratio = med["kvm"][0] / med["qemu"][0]
    out += ["", "This is nested TCG (the outer VM is emulated, its SVM too): a functional lane, so the ratios are",
            f"indicative only. The goal (kvm backend at most half of QEMU's time) is {'met' if ratio <= 0.5 else 'not met'}"
            f" here ({ratio:.2f} with the default)."]
    if "kvmmap" in med:
        mratio = med["kvmmap"][0] / med["kvm"][0]
        out += [f"Mapping the kernel and initrd instead of copying them: {mratio:.2f}x the default's time to READY",
                "here. The guest then reaches those pages through 4 KiB host pages (an EPT fault for each page it",
                "touches, where the copy sits in 2 MiB pages) and takes a copy-on-write fault for each one it",
                "writes (the \"kernel pages\" row), so the copy stays the default."]
    return out


def main():
    vmm = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build", "bin", "cocoon-vmm")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    box = tempfile.mkdtemp(prefix="cocoon-kvm-bench-")
    with open(os.path.join(box, "disk.raw"), "wb") as f:
        f.truncate(24 << 20)
    with open(os.path.join(box, "config.json"), "w") as f:
        f.write('{"id": "bench", "kernel": "%s/vmlinux", "initrd": "%s/initramfs.cpio", "disk": "%s/disk.raw", '
                '"disk_format": "raw", "backend": "kvm", "cpus": 1, "memory_mib": 256}' % (SHARE, SHARE, box))
    before = sys.argv[3] if len(sys.argv) > 3 else None
    sides = {"mapped": [], "copied": [], "before": []}
    for _ in range(runs):  # alternating, so all see the same load
        sides["copied"].append(start_once(vmm, box))
        sides["mapped"].append(start_once(vmm, box, mapped=True))
        if before:
            sides["before"].append(start_once(before, box))

    def med(rs, i):
        return statistics.median(r[i] for r in rs if r[i])
    cols = [("before", f"before (`{before}`, kernel copied)")] if before else []
    cols += [("copied", "kernel and initrd copied (default)"),
             ("mapped", "kernel and initrd mapped (`COCOON_KVM_MAP_KERNEL=1`)")]
    rows = [(f"exec of the kvm child to vCPUs in KVM_RUN, wall (median of {runs})", 0, lambda v: f"{v:.1f} ms"),
            ("same, CPU time of the child", 1, lambda v: f"{v:.1f} ms"),
            ("child RSS 0.3 s after start", 2, lambda v: f"{v / 1024:.1f} MiB")]
    lines = [f"Command: `bench/kvm_backend.py build/bin/cocoon-vmm {runs}{' ' + before if before else ''}` (this "
             "host's /dev/kvm is PVM: the",
             "guest kernel does not get far, but everything up to the first KVM_RUN is the real path), then",
             "`tests/nested/run.sh` for the real-guest figures. Start-up, alternating: the kernel's ELF segments",
             "and the initrd copied into guest RAM (the default, pread), mapped from their files"
             + (", and the build of main before this work (its default: copied)." if before else "."),
             "The child is spawned directly (no shell), as the monitor forks and execs it.", "",
             "| measure | " + " | ".join(n for _, n in cols) + " | " +
             ("copied / before | " if before else "") + "mapped / copied |",
             "|---|" + "---|" * (len(cols) + 1 + bool(before))]
    for name, i, fmt in rows:
        vals = {k: med(sides[k], i) for k, _ in cols}
        lines.append(f"| {name} | " + " | ".join(fmt(vals[k]) for k, _ in cols) + " | " +
                     (f"{vals['copied'] / vals['before']:.2f} | " if before else "") +
                     f"{vals['mapped'] / vals['copied']:.2f} |")
    lines += [
        "", "| nested lane | value |", "|---|---|"]
    con = os.environ.get("NESTED_CONSOLE") or os.path.join(REPO, "build", "nested", "console.txt")
    cmp_lines = []
    if os.environ.get("NESTED_CONSOLE"):
        lines[2] = lines[2].replace("`tests/nested/run.sh` for the real-guest figures.",
                                    "`tests/nested/run.sh` for the real-guest figures (several lane runs pooled: "
                                    "their console.txt files concatenated, named by NESTED_CONSOLE).")
    if os.path.exists(con):
        text = open(con, errors="replace").read()
        ready = [int(x) for x in re.findall(r"^PASS boot-box\d: ready \(ok (\d+);", text, re.M)]
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
        cow = re.findall(r"BENCH kernel pages (\w+): (\d+) KiB resident, of which (\d+) KiB copied on write", text)
        if cow:
            lines.append("| nested lane: kernel and initrd pages mapped from their files, resident at READY / of them "
                         "copied on write by the guest | " + ", ".join(f"{b}: {r} / {c} KiB" for b, r, c in cow) + " |")
        fds = re.findall(r"NESTED: (\w+) ioeventfd: (\d+) virtio queue\(s\), irqfd: (\d+) device\(s\)", text)
        if fds:
            lines.append("| nested lane: virtio queues notifying through ioeventfd / devices interrupting through "
                         "irqfd | " + ", ".join(f"{b}: {q} / {d}" for b, q, d in fds) + " |")
        cmp_lines = boot_comparison(text)
    lines += ["", "box2 of the lane has networking: virtio-net in the kvm child, the network stack in the",
              "monitor (as for the qemu backend), so the child's overhead does not include the stack."]
    if cmp_lines:
        lines += [""] + cmp_lines
    else:
        lines += ["", "Boot to READY, kvm vs qemu backend: not in this run (run `tests/nested/run.sh` without NESTED_QEMU=0)."]
    replace_section(os.path.join(REPO, "bench", "RESULTS.md"), "## kvm backend (own VMM)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
