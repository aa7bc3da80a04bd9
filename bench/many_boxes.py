#!/usr/bin/env python3
"""Many boxes at once on this host: N boxes created and started together (one thread
each, `cocoon create` then `cocoon start`), each then running `echo ok`; every failure is
counted and shown. Against it, in the same run, one box alone through the same steps
(the yardstick: N boxes at once on 2 cores cannot beat N times one box's CPU).

Reports the wall time until every box answered, each box's time to ready (median, max),
the host memory of a running box (the monitor's and QEMU's RSS, summed, divided by N),
and the failures.

Usage: bench/many_boxes.py [--build build] [--boxes 40] [--memory 256M] [--results FILE]
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Many boxes at once"


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Run:
    def __init__(self, build, memory):
        self.cocoon = os.path.join(os.path.abspath(build), "bin", "cocoon")
        self.home = tempfile.mkdtemp(prefix="cocoon-many-")
        os.chmod(self.home, 0o700)
        self.env = dict(os.environ, COCOON_HOME=self.home)
        self.memory = memory

    def cli(self, *args, timeout=900):
        return subprocess.run([self.cocoon, *args], env=self.env, capture_output=True, timeout=timeout)

    def one(self, name, results):
        t0 = time.monotonic()
        steps = [("create", "--name", name, "--memory", self.memory), ("start", name),
                 ("exec", name, "--", "echo", "ok")]
        for step in steps:
            r = self.cli(*step)
            if r.returncode != 0 or (step[0] == "exec" and r.stdout != b"ok\n"):
                results[name] = ("failed", f"{step[0]}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
                return
        results[name] = ("ok", time.monotonic() - t0)

    def memory_per_box(self, names):
        total = 0
        for n in names:
            pid_file = None
            for d in os.listdir(os.path.join(self.home, "boxes")):
                cfg = os.path.join(self.home, "boxes", d, "config.json")
                if os.path.exists(cfg) and f'"{n}"' in open(cfg).read():
                    pid_file = os.path.join(self.home, "boxes", d, "vmm.pid")
            if not pid_file or not os.path.exists(pid_file):
                continue
            mon = int(open(pid_file).read().split()[0])
            total += rss_kib(mon) + sum(rss_kib(c) for c in children(mon))
        return total / max(1, len(names)) / 1024

    def close(self):
        r = self.cli("ls", "-a", "-q")
        ids = r.stdout.decode().split()
        if ids:
            self.cli("rm", "-f", *ids)
        shutil.rmtree(self.home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--boxes", type=int, default=40)
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--results")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    run = Run(a.build, a.memory)
    try:
        alone = {}
        run.one("alone", alone)
        if alone["alone"][0] != "ok":
            sys.exit(f"one box alone failed: {alone['alone'][1]}")
        single = alone["alone"][1]
        run.cli("rm", "-f", "alone")
        names = [f"b{i:02d}" for i in range(a.boxes)]
        results = {}
        threads = [threading.Thread(target=run.one, args=(n, results)) for n in names]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        mem = run.memory_per_box(names)
        load1 = os.getloadavg()[0]
    finally:
        run.close()
    ok = sorted(v[1] for v in results.values() if v[0] == "ok")
    failed = {k: v[1] for k, v in results.items() if v[0] != "ok"}
    lines = ["| measure | value |", "|---|---|",
             f"| one box alone: create, start, `echo ok` | {single:.2f} s |",
             f"| {a.boxes} boxes at once: wall until every box answered | {wall:.2f} s "
             f"({wall / (a.boxes * single):.2f}× {a.boxes} times one box alone) |",
             f"| each box's create + start + exec, median (max) | "
             f"{statistics.median(ok) if ok else 0:.2f} s ({max(ok) if ok else 0:.2f} s) |",
             f"| host memory per running box (monitor + QEMU RSS) | {mem:.0f} MiB |",
             f"| failures | **{len(failed)} of {a.boxes}** |"]
    for k, v in sorted(failed.items()):
        lines.append(f"| failure {k} | {v} |")
    table = "\n".join(lines)
    print(table)
    if a.results:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = " ".join(["bench/many_boxes.py"] + sys.argv[1:]).replace(REPO + "/", "")
        how = (f"{a.boxes} boxes (default image, 1 vCPU, {a.memory}) created and started at once, one thread "
               "each (`cocoon create`, `cocoon start`, `cocoon exec BOX -- echo ok`), on the qemu backend "
               "under TCG; one box alone through the same steps first, as the yardstick.")
        foot = (f"Command: `{cmd}`. Date: {now}; load average {load0:.2f} at the start, {load1:.2f} at the end "
                "(2 shared cores).")
        replace_section(a.results, SECTION, f"{how}\n\n{table}\n\n{foot}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
