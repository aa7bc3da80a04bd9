#!/usr/bin/env python3
"""A/B benchmark: the same box workloads on two configurations, alternated in one run
so the machine's load hits both alike. A configuration is a build directory plus
environment variables, so it compares two builds (before and after a change) or one
build two ways (the jail on and off).

Per configuration, over --rounds alternating rounds:
  start       `cocoon start BOX` of a created box (CLI start until the agent is ready)
  exec-proto  EXEC `true` spoken on the box's control socket (exec_bench.py's client):
              what an exec costs without any client start-up; the two sides' boxes run
              at once and take turns exec by exec
  exec-cli    `cocoon exec BOX -- true`, taking turns the same way
  net         guest -> host and host -> guest TCP MB/s and connections/s through the
              box's network (net_bench.py's guest client and servers)
Reports medians, the spread (min-max), and B / A for each.

Usage: bench/ab.py --a LABEL=BUILD[,VAR=VALUE...] --b LABEL=BUILD[,VAR=VALUE...]
                   [--rounds 7] [--execs 50] [--mb 64] [--conns 100] [--results FILE --section TITLE]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exec_bench import Ctl  # noqa: E402
from net_bench import GUEST, servers  # noqa: E402
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_side(text):
    label, rest = text.split("=", 1)
    parts = rest.split(",")
    build = os.path.abspath(parts[0])
    env = dict(p.split("=", 1) for p in parts[1:] if p)
    return label, build, env


class Side:
    def __init__(self, label, build, env, share):
        self.label, self.build = label, build
        self.home = tempfile.mkdtemp(prefix=f"cocoon-ab-{label}-")
        self.cli = os.path.join(build, "bin", "cocoon")
        self.env = dict(os.environ, COCOON_HOME=self.home, COCOON_SHARE_DIR=share,
                        COCOON_VMM=os.path.join(build, "bin", "cocoon-vmm"))
        self.env.update(env)  # the side's own variables win
        self.res = {}

    def run(self, *args, timeout=300, check=True):
        r = subprocess.run([self.cli, *args], env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode:
            sys.exit(f"{self.label}: cocoon {' '.join(args)} failed: {r.stderr.decode()[-800:]}")
        return r

    def add(self, key, value):
        self.res.setdefault(key, []).append(value)


def interleaved_ms(fns, n, warm=3):
    """Each fn called n times, the fns taking turns (so both see the same machine), after
    warm-up calls; the median time of each (ms)."""
    times = [[] for _ in fns]
    for i in range(n + warm):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            if i >= warm:
                times[k].append((time.perf_counter() - t) * 1000)
    return [statistics.median(t) for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--execs", type=int, default=50)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--share", default=os.path.join(REPO, "build", "share", "cocoon"))
    ap.add_argument("--results")
    ap.add_argument("--section")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    share = os.path.abspath(a.share)
    sides = [Side(*parse_side(a.a), share), Side(*parse_side(a.b), share)]
    sink, source, echo = servers()
    code = GUEST.format(mb=a.mb, conns=a.conns, sink=sink, source=source, echo=echo)
    load0 = os.getloadavg()[0]
    try:
        for rnd in range(a.rounds):
            order = sides if rnd % 2 == 0 else list(reversed(sides))
            boxes = {}
            for s in order:  # one fresh box each; start times alternate who goes first
                boxes[s.label] = s.run("create", "--net", "public", "--allow", f"host:{sink}", "--allow",
                                       f"host:{source}", "--allow", f"host:{echo}").stdout.decode().split()[-1]
                t = time.perf_counter()
                s.run("start", boxes[s.label])
                s.add("start", (time.perf_counter() - t) * 1000)
            ctls = [Ctl(os.path.join(s.home, "boxes", boxes[s.label])) for s in sides]
            for s, ms in zip(sides, interleaved_ms([c.exec_true for c in ctls], a.execs)):
                s.add("exec-proto", ms)
            for c in ctls:
                c.close()
            clis = [lambda s=s: s.run("exec", boxes[s.label], "--", "true") for s in sides]
            for s, ms in zip(sides, interleaved_ms(clis, max(5, a.execs // 5), warm=1)):
                s.add("exec-cli", ms)
            for s in order:
                out = s.run("exec", boxes[s.label], "--", "python3", "-c", code, timeout=600).stdout.decode()
                for k, v in json.loads(out.strip().splitlines()[-1]).items():
                    s.add(k, v)
            for s in sides:
                s.run("rm", "-f", boxes[s.label])
            print(f"round {rnd + 1}: " + " | ".join(
                f"{s.label}: start {s.res['start'][-1]:.0f} ms, exec {s.res['exec-proto'][-1]:.1f} ms, "
                f"g->h {s.res['guest_to_host'][-1]:.0f} MB/s" for s in sides), file=sys.stderr, flush=True)
    finally:
        for s in sides:
            subprocess.run(["rm", "-rf", s.home])
    A, B = sides
    rows = [("start (ms)", "start", 1), ("exec `true`, control socket (ms)", "exec-proto", 1),
            ("exec `true`, CLI (ms)", "exec-cli", 1), ("guest → host (MB/s)", "guest_to_host", 0),
            ("host → guest (MB/s)", "host_to_guest", 0), ("connections/s", "conns", 0)]
    lines = [f"| measure | {A.label} median (min–max) | {B.label} median (min–max) | {B.label} / {A.label} |",
             "|---|---|---|---|"]
    for name, key, _lower_better in rows:
        ma, mb = statistics.median(A.res[key]), statistics.median(B.res[key])
        lines.append(f"| {name} | {ma:.1f} ({min(A.res[key]):.1f}–{max(A.res[key]):.1f}) | "
                     f"{mb:.1f} ({min(B.res[key]):.1f}–{max(B.res[key]):.1f}) | {mb / ma:.2f} |")
    table = "\n".join(lines)
    print(table)
    if a.results and a.section:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = " ".join(["bench/ab.py"] + sys.argv[1:]).replace(REPO + "/", "")
        replace_section(a.results, a.section, f"""
{a.note}

{table}

{a.rounds} rounds; per round one fresh box each (public network), started in alternating order;
{a.execs} EXECs of `true` on each box's control socket and {max(5, a.execs // 5)} `cocoon exec BOX -- true`,
the two sides taking turns exec by exec (medians per round); then {a.mb} MB each way and
{a.conns} connections through each box's network.
Command: `{cmd}`. Date: {now}; load average {load0:.2f} at the start (2 shared cores).
""")


if __name__ == "__main__":
    main()
