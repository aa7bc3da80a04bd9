#!/usr/bin/env python3
"""Forks on the kvm backend vs cold boots and vs the qemu backend, all from one nested
lane run (tests/nested/run.sh, NESTED_ONLY=fork for just these): per backend, three cold
boots of the box to its first exec (the baseline of the same run), the capture of a
running box, N children each restored to its first exec, and the children's VMM
memory (Rss, Pss). Reads build/nested/console.txt (or NESTED_CONSOLE, several files
joined by ':' to pool runs) and writes the "Forks on the kvm backend" section of
bench/RESULTS.md. NESTED_CONSOLE_MANY names the console.txt of one run with many children
(NESTED_FORK_N=100), reported on its own: its restores run while up to 99 boxes are up.
Usage: bench/kvm_fork.py [COMMAND-THAT-PRODUCED-THE-RUNS]"""
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST_KIB = 256 * 1024


def quartiles(v):
    v = sorted(v)
    if len(v) < 2:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], statistics.median(v), q[2]


def main():
    paths = os.environ.get("NESTED_CONSOLE", os.path.join(REPO, "build", "nested", "console.txt")).split(":")
    text = "".join(open(p, errors="replace").read() for p in paths)
    cold, restore, capture, mem = {}, {}, {}, {}
    for be, ms in re.findall(r"^BENCH fork cold\[(\w+)\] \d+: (\d+) ms", text, re.M):
        cold.setdefault(be, []).append(int(ms))
    for be, ms in re.findall(r"^BENCH fork restore\[(\w+)\] \S+: (\d+) ms", text, re.M):
        restore.setdefault(be, []).append(int(ms))
    for be, ms in re.findall(r"^PASS fork-snapshot\[(\w+)\]: live capture in (\d+) ms", text, re.M):
        capture.setdefault(be, []).append(int(ms))
    for be, n, rss, pss in re.findall(
            r"^BENCH fork memory\[(\w+)\]: (\d+) children of 256 MiB: Rss sum (\d+) KiB, Pss sum (\d+) KiB", text, re.M):
        mem.setdefault(be, []).append((int(n), int(rss), int(pss)))
    if "kvm" not in restore or "kvm" not in cold:
        sys.exit("no kvm fork figures in " + ":".join(paths) + " (run tests/nested/run.sh first)")
    rows = ["| backend | cold boot to first exec: median (p25-p75), ms | restore to first exec: median (p25-p75), ms "
            "| restore / cold (medians) | live capture, ms | children's VMMs: Pss sum / (N x guest RAM) "
            "| Rss shared between children |",
            "|---|---|---|---|---|---|---|"]
    ratio = {}
    for be in ("kvm", "qemu"):
        if be not in restore or be not in cold:
            continue
        c, r = quartiles(cold[be]), quartiles(restore[be])
        ratio[be] = r[1] / c[1]
        m = ", ".join("N=%d: %.1f%%" % (n, 100.0 * pss / (n * GUEST_KIB)) for n, rss, pss in mem.get(be, []))
        sh = ", ".join("N=%d: %.0f%%" % (n, 100.0 * (1 - pss / rss)) for n, rss, pss in mem.get(be, []) if rss)
        rows.append("| %s | %d (%d-%d), %d boots | %d (%d-%d), %d restores | **%.2fx** | %s | %s | %s |" % (
            be, c[1], c[0], c[2], len(cold[be]), r[1], r[0], r[2], len(restore[be]), ratio[be],
            ", ".join(map(str, capture.get(be, []))), m, sh))
    body = "\n".join(rows) + "\n\n"
    if "qemu" in ratio:
        body += ("kvm-backend restore / qemu-backend restore (medians, same runs): **%.2fx**.\n\n"
                 % (statistics.median(restore["kvm"]) / statistics.median(restore["qemu"])))
    body += ("Where: the nested lane, a QEMU-TCG outer VM with an emulated SVM CPU on this 2-core host, our VMM and "
             "QEMU 7.2 (accel kvm) both on its nested /dev/kvm; guests of 2 vCPUs and 256 MiB; the parent holds a shell "
             "counter and a tmpfs file; each child is checked to have both (tests/nested/outer-init.sh). Restore is "
             "from starting the box's monitor to the answer of its first exec; the cold boot the same, on a box of the "
             "same config, three per run. Memory: the sum over the children of their VMM process's Pss (guest RAM and "
             "the VMM itself), against N times the guest's RAM (what N private copies would hold); and 1 - Pss/Rss, "
             "the part of what the children have resident that they share. The goal of 0.1x restore / cold boot is "
             "not met here: about half of a restore is the guest's own work after it (the agent's RESTORED handling, "
             "then the first exec; the agent answers READY before its disk writes, the thaw and /etc/hosts, but the "
             "first exec waits for them), where each first touch of a guest page is a nested page fault under TCG, and the "
             "children's RAM is mapped in 4 KiB pages from the file where a cold boot's is on 2 MiB pages.\n\n")
    many = os.environ.get("NESTED_CONSOLE_MANY")
    if many:
        t = open(many, errors="replace").read()
        rs = [int(x) for x in re.findall(r"^BENCH fork restore\[kvm\] \S+: (\d+) ms", t, re.M)]
        mm = re.findall(r"^BENCH fork memory\[kvm\]: (\d+) children of 256 MiB: Rss sum (\d+) KiB, Pss sum (\d+) KiB", t, re.M)
        if rs and mm:
            n, rss, pss = map(int, mm[0])
            q = quartiles(rs)
            body += ("Fork of %d from one snapshot (kvm backend, one run: `NESTED_ONLY=fork NESTED_FORK_N=%d "
                     "tests/nested/run.sh`): the children restored one after another, %.1f s in all to their first "
                     "execs (each %d ms median, p25-p75 %d-%d, with the others running); their VMMs' Pss sum %d MiB "
                     "against %d x 256 MiB = %d MiB of guest RAM: **%.1f%%** (%.0f%% not duplicated); of what they "
                     "have resident (Rss sum %d MiB), %.0f%% is shared.\n\n" % (
                         n, n, sum(rs) / 1000.0, q[1], q[0], q[2], pss // 1024, n, n * 256,
                         100.0 * pss / (n * GUEST_KIB), 100 - 100.0 * pss / (n * GUEST_KIB), rss // 1024,
                         100.0 * (1 - pss / rss)))
    body += "Command: `%s`, then `bench/kvm_fork.py` (%d run(s) pooled).\n" % (
        sys.argv[1] if len(sys.argv) > 1 else "NESTED_ONLY=fork tests/nested/run.sh", len(paths))
    replace_section(os.path.join(REPO, "bench", "RESULTS.md"), "## Forks on the kvm backend (nested lane)", body)
    print(body)


if __name__ == "__main__":
    main()
