#!/usr/bin/python3
"""What cocoon adds to starting a program (issue 16): `true` through the C API vs the
same program forked and exec'd by a small static program inside the same box.

Per side (a build; two sides make an A/B of two builds in one run), one running box
(default image, 1 vCPU, 1 GiB) with bench/forkexec.c copied into it (`cocoon cp`). Each
round, on every side in turn (the order alternating from round to round):
  capi      examples/exec_many BOX latency RUNS: `true` RUNS times through
            cocoon_box_run on one open box handle (EXEC, STARTED, EXIT);
  in-guest  `cocoon exec BOX -- forkexec RUNS true`: fork + execvp("true") + waitpid
            RUNS times inside the guest (the program itself, nothing of cocoon's).
Short rounds, many of them, so both measures see the same load. Reports the median
and quartiles of all runs of each, and the ratio capi / in-guest (goal: at most 1.1).
With --gap-us G also `forkexec -g G`: the same loop with the guest idle G µs between
runs, as it is between the execs of a host (its vCPU thread sleeps meanwhile).

With --trace the boxes start with COCOON_AGENT_TRACE=1: the agent appends the phases of
every exec to /run/cocoon-agent-trace in the guest (src/agent/trace.c), and the script
reports the median of each phase and what the host adds. Writing those lines costs a
little time itself, so traced runs are for attribution.

Usage: bench/exec_overhead.py [--side LABEL=BUILD[,VAR=VALUE...] ...] [--rounds 30] [--runs 5]
                              [--gap-us G] [--trace] [--results bench/RESULTS.md] [--note TEXT]
Default side: after=build. --results writes the section this script owns.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Exec overhead: C API vs in-guest fork+exec"
TRACE_SECTION = "## Exec overhead: where an exec's time goes in the guest (agent trace)"
TRACE_FILE = "/run/cocoon-agent-trace"  # src/agent/agent.h
PHASES = {  # src/agent/trace.c
    "decode": "EXEC decoded",
    "user": "user resolved, environment built",
    "pipes": "pipes made",
    "fork": "child started (vfork: it has exec'd when the agent runs again)",
    "execve": "child's execve past the point of no return",
    "started": "STARTED sent",
    "reaped": "command reaped (SIGCHLD)",
    "drained": "its output pipes at EOF",
    "exit": "EXIT sent",
    "released": "its cgroup kept for reuse (after EXIT)",
}


class Side:
    def __init__(self, text, trace, work):
        self.label, rest = text.split("=", 1) if "=" in text else ("after", text)
        parts = rest.split(",")
        self.build = os.path.abspath(parts[0])
        self.home = tempfile.mkdtemp(prefix=f"cocoon-xo-{self.label}-")
        self.env = dict(os.environ, COCOON_HOME=self.home,
                        COCOON_SHARE_DIR=os.path.join(self.build, "share", "cocoon"),
                        COCOON_VMM=os.path.join(self.build, "bin", "cocoon-vmm"))
        self.env.update(p.split("=", 1) for p in parts[1:] if p)  # the side's own variables win
        if trace:
            self.env["COCOON_AGENT_TRACE"] = "1"
        self.exec_many = os.path.join(work, self.label, "exec_many")
        subprocess.run(["make", "-s", "-C", os.path.join(REPO, "examples"), f"BUILD={self.build}",
                        f"OUT={os.path.dirname(self.exec_many)}", self.exec_many], check=True)
        self.capi, self.guest, self.gapped = [], [], []  # per round: the samples (ms)

    def cli(self, *args, timeout=300):
        r = subprocess.run([os.path.join(self.build, "bin", "cocoon"), *args], env=self.env, capture_output=True,
                           timeout=timeout)
        if r.returncode:
            sys.exit(f"{self.label}: cocoon {' '.join(args)} failed: {r.stderr.decode()[-800:]}")
        return r.stdout.decode()

    def start(self, forkexec):
        self.cli("create", "--name", "xo", "--memory", "1G")
        self.cli("start", "xo")
        self.cli("cp", forkexec, "xo:/usr/local/bin/forkexec")

    def round(self, runs, first, gap_us):
        def capi():
            r = subprocess.run([self.exec_many, "xo", "latency", str(runs)], env=self.env, capture_output=True,
                               check=True)
            self.capi.append(json.loads(r.stdout.decode())["samples_ms"])

        def guest():
            self.guest.append(json.loads(self.cli("exec", "xo", "--", "forkexec", str(runs), "true"))["samples_ms"])

        def gapped():
            self.gapped.append(json.loads(self.cli("exec", "xo", "--", "forkexec", "-g", str(gap_us), str(runs),
                                                   "true"))["samples_ms"])

        fns = [capi, guest] + ([gapped] if gap_us else [])
        for fn in (fns if first else fns[::-1]):
            fn()

    def trace_phases(self):
        """Median of each phase (µs) over the traced execs of `true` (the agent's trace
        file in the guest), and the median of what the host and the channel add: each C
        API round trip minus its exec's time in the agent (EXEC read to EXIT sent; the
        execs of `true` are the C API's, in the same order)."""
        phases, lines = {}, []
        for line in self.cli("exec", "xo", "--", "cat", TRACE_FILE).splitlines():
            if not re.match(r"exec \d+ true ", line):
                continue
            lines.append(line)
            for k, v in re.findall(r"(\S+)=(\d+)", line):
                phases.setdefault(k, []).append(int(v))
        res = {k: statistics.median(v) for k, v in phases.items()}
        rtt = every(self.capi)
        if len(lines) == len(rtt):
            res["host"] = statistics.median(r * 1000 - int(re.search(r" exit=(\d+)", l).group(1))
                                            for r, l in zip(rtt, lines))
        return res

    def close(self):
        subprocess.run([os.path.join(self.build, "bin", "cocoon"), "rm", "-f", "xo"], env=self.env,
                       capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, int(q * len(s)))]


def every(rounds):
    return [x for r in rounds for x in r]


def spread(rounds):
    v = every(rounds)
    return f"{statistics.median(v):.1f} ({pct(v, 0.25):.1f}–{pct(v, 0.75):.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", action="append", help="LABEL=BUILD (repeat for an A/B)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--gap-us", type=int, default=0,
                    help="also time the in-guest loop with this idle time between runs (as between a host's execs)")
    ap.add_argument("--results")
    ap.add_argument("--note", default="", help="text put under the table in --results")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cocoon-xo-")
    forkexec = os.path.join(work, "forkexec")
    subprocess.run(["cc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", forkexec,
                    os.path.join(REPO, "bench", "forkexec.c")], check=True)
    sides = [Side(s, a.trace, work) for s in (a.side or ["after=build"])]
    load0 = os.getloadavg()[0]
    try:
        for s in sides:
            s.start(forkexec)
        for rnd in range(a.rounds):
            order = sides if rnd % 2 == 0 else list(reversed(sides))
            for s in order:
                s.round(a.runs, first=rnd % 2 == 0, gap_us=a.gap_us)
            print(f"round {rnd + 1}: " + " | ".join(
                f"{s.label}: capi {statistics.median(s.capi[-1]):.1f} ms, in-guest "
                f"{statistics.median(s.guest[-1]):.1f} ms" for s in sides), file=sys.stderr, flush=True)
        traces = {s.label: s.trace_phases() for s in sides} if a.trace else {}
    finally:
        for s in sides:
            s.close()
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()[0]

    lines = ["| side | exec `true`, C API: median (p25–p75), ms | fork+exec `true` in the guest: median (p25–p75), ms "
             "| C API / in-guest: medians | p25s | per round (min–max) |", "|---|---|---|---|---|---|"]
    for s in sides:
        c, g = every(s.capi), every(s.guest)
        per_round = [statistics.median(x) / statistics.median(y) for x, y in zip(s.capi, s.guest)]
        lines.append(f"| {s.label} | {spread(s.capi)} | {spread(s.guest)} | "
                     f"**{statistics.median(c) / statistics.median(g):.2f}** | {pct(c, 0.25) / pct(g, 0.25):.2f} | "
                     f"{min(per_round):.2f}–{max(per_round):.2f} |")
    if a.gap_us:
        lines += ["", f"| side | fork+exec `true` in the guest, {a.gap_us} µs idle between runs: median (p25–p75), ms "
                  "| / back to back | C API / it: medians | p25s |", "|---|---|---|---|---|"]
        for s in sides:
            c, g, gg = every(s.capi), every(s.guest), every(s.gapped)
            lines.append(f"| {s.label} | {spread(s.gapped)} | {statistics.median(gg) / statistics.median(g):.2f} | "
                         f"**{statistics.median(c) / statistics.median(gg):.2f}** | "
                         f"{pct(c, 0.25) / pct(gg, 0.25):.2f} |")
    if len(sides) >= 2:
        A = sides[0]
        for B in sides[1:]:
            lines += ["", f"{B.label} / {A.label}: C API "
                      f"{statistics.median(every(B.capi)) / statistics.median(every(A.capi)):.2f}, in-guest "
                      f"{statistics.median(every(B.guest)) / statistics.median(every(A.guest)):.2f}."]
    table = "\n".join(lines)
    trace_text = ""
    if traces:
        tl = ["| phase | " + " | ".join(f"{k}: µs after the EXEC was read (median) | step" for k in traces) + " |",
              "|---|" + "---|---|" * len(traces)]
        order = sorted(((k, v) for k, v in next(iter(traces.values())).items() if k != "host"), key=lambda kv: kv[1])
        for k, _ in order:
            cells = []
            for t in traces.values():
                earlier = [v for kk, v in t.items() if kk != "host" and v < t.get(k, 0)]
                cells.append(f"{t.get(k, 0):.0f} | {t.get(k, 0) - max(earlier, default=0):.0f}")
            tl.append(f"| {PHASES.get(k, k)} | " + " | ".join(cells) + " |")
        for label, t in traces.items():
            if "host" in t:
                tl += ["", f"{label}: the host and the channel add {t['host']:.0f} µs per exec (median of each C API "
                       "round trip minus its exec's time in the agent, EXEC read to EXIT sent: the client, the "
                       "monitor's relay both ways, QEMU's virtio-serial and the wakeups of each)."]
        trace_text = "\n".join(tl)
    print(table)
    if trace_text:
        print("\n" + trace_text)
    if a.results:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        args = list(sys.argv[1:])
        if "--note" in args[:-1]:
            args[args.index("--note") + 1] = "TEXT"  # the text is right there, under the table
        cmd = " ".join(["bench/exec_overhead.py"] + args).replace(REPO + "/", "")
        how = (f"{a.rounds} rounds of {a.runs} runs of each measure; the table gives the median and quartiles "
               f"of all {a.rounds * a.runs} runs, the ratio of the medians and of the first quartiles (load "
               f"on the shared machine only adds time, so the lower quartile is the steadier figure), and "
               f"the range of the per-round ratios. One box per side (default image, 1 vCPU, 1 GiB); "
               f"the sides and the two measures take turns.")
        foot = (f"Command: `{cmd}`. Date: {now}; load average {load0:.2f} at the start, {load1:.2f} at the end "
                f"(2 shared cores, qemu backend under TCG: absolute numbers are noisy, the ratios less so).")
        note = f"\n\n{a.note}" if a.note else ""
        if trace_text:
            replace_section(a.results, TRACE_SECTION, f"{how}\n\n{table}\n\n{trace_text}{note}\n\n{foot}")
        else:
            replace_section(a.results, SECTION, f"{how}\n\n{table}{note}\n\n{foot}")


if __name__ == "__main__":
    main()
