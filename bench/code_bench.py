#!/usr/bin/env python3
"""The code interpreter's run of a small expression on a warm context against `exec
python3 -c` of the same expression, in one box and one run.

One box (default image, 1 vCPU, 512 MiB); the default Python context is warmed by one
run first. Each round runs --per-round of each variant, their turns alternating:
  run_code  `cocoon code BOX '21 * 2'`: one relay exec into the live context;
  exec      `cocoon exec BOX -- python3 -c 'print(21 * 2)'`: a new interpreter each time.
Both through the CLI, so each pays one CLI process start; the table gives medians and
quartiles of all calls, and the ratio run_code / exec (goal <= 0.2).

Usage: bench/code_bench.py [--build build] [--rounds 10] [--per-round 10] [--results FILE]
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Code interpreter (run_code on a warm context vs exec python3 -c)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--results", default=None)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    cocoon = os.path.join(build, "bin", "cocoon")
    home = tempfile.mkdtemp(prefix="cocoon-codebench-")
    os.chmod(home, 0o700)
    env = dict(os.environ, COCOON_HOME=home, COCOON_SHARE_DIR=os.path.join(build, "share", "cocoon"),
               COCOON_VMM=os.path.join(build, "bin", "cocoon-vmm"))

    def cli(*args):
        t0 = time.perf_counter()
        r = subprocess.run([cocoon, *args], env=env, capture_output=True, timeout=300)
        dt = (time.perf_counter() - t0) * 1000
        if r.returncode or r.stdout != b"42\n":
            sys.exit(f"cocoon {' '.join(args)} failed ({r.returncode}): {r.stdout!r} {r.stderr.decode()[-800:]}")
        return dt

    variants = {
        "run_code": ["code", "bench", "21 * 2"],
        "exec": ["exec", "bench", "--", "python3", "-c", "print(21 * 2)"],
    }
    times = {k: [] for k in variants}
    ratios = []
    load0 = os.getloadavg()[0]
    subprocess.run([cocoon, "create", "--name", "bench", "--cpus", "1", "--memory", "512M"], env=env, check=True,
                   capture_output=True)
    subprocess.run([cocoon, "start", "bench"], env=env, check=True, capture_output=True)
    try:
        cli(*variants["run_code"])  # warms the context (the runners are written, python starts)
        cli(*variants["exec"])
        for rnd in range(a.rounds):
            got = {k: [] for k in variants}
            order = list(variants) if rnd % 2 == 0 else list(reversed(variants))
            for _ in range(a.per_round):
                for k in order:
                    got[k].append(cli(*variants[k]))
            for k in variants:
                times[k] += got[k]
            ratios.append(statistics.median(got["run_code"]) / statistics.median(got["exec"]))
    finally:
        subprocess.run([cocoon, "rm", "-f", "bench"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    load1 = os.getloadavg()[0]

    def q(v):
        qs = statistics.quantiles(v, n=4)
        return f"{statistics.median(v):.1f} ({qs[0]:.1f}–{qs[2]:.1f})"

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["run_code"] / med["exec"]
    n = a.rounds * a.per_round
    body = f"""{a.rounds} rounds of {a.per_round} calls of each variant, turns alternating; medians and quartiles of all {n} calls per variant. One box (default image, 1 vCPU, 512 MiB), the default Python context warmed by one run first. Both through the CLI (each call pays one `cocoon` process start).

| variant | what | ms: median (p25–p75) |
|---|---|---|
| run_code | `cocoon code BOX '21 * 2'` (one relay exec into the live context) | {q(times["run_code"])} |
| exec | `cocoon exec BOX -- python3 -c 'print(21 * 2)'` (a new interpreter) | {q(times["exec"])} |

run_code / exec: **{ratio:.2f}** (medians; goal ≤ 0.2); per round {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}).

Command: `bench/code_bench.py --build {a.build} --rounds {a.rounds} --per-round {a.per_round} --results bench/RESULTS.md`. Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; load average {load0:.2f} at the start, {load1:.2f} at the end (2 shared cores, qemu backend under TCG: absolute numbers are noisy, the ratio less so).
"""
    print(body)
    if a.results:
        replace_section(a.results, SECTION, body)


if __name__ == "__main__":
    main()
