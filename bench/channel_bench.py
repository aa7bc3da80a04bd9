#!/usr/bin/env python3
"""The agent channel's throughput, against yardsticks measured in the same guest and round.

Per side (a build; two sides make an A/B of two builds in one run), one running box
(default image, 1 vCPU, 1 GiB) holding a --mb MB file of random bytes in its page cache.
Each round, on every side in turn (the order alternating from round to round):
  dd        `dd if=FILE of=/dev/null bs=1M` inside the guest: one copy per byte (the
            issue's yardstick: exec `cat` should reach half of it);
  pipe      `cat FILE | cat > /dev/null` inside the guest: a second process reading cat's
            pipe, what the channel does in the agent's place;
  cat       `cocoon exec BOX -- cat FILE` read by this process (1 MiB reads);
  stdin     `cocoon exec -i BOX -- pipedrain` fed --mb MB from a host file: the inbound
            channel's raw rate;
  cp out    `cocoon cp BOX:FILE DIR/`;
  cp in     `cocoon cp HOSTFILE BOX:/root/in`.
Rates in MB/s (MB = 2^20 bytes); the table gives each measure's median and range over
the rounds, and the ratios that matter.

Usage: bench/channel_bench.py [--side LABEL=BUILD ...] [--mb 200] [--rounds 5] [--results FILE]
Default side: after=build.
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
SECTION = "## Agent channel throughput (exec output, stdin, cp)"
MEASURES = ["dd", "pipe", "cat", "stdin", "cp out", "cp in"]


class Side:
    def __init__(self, text, work, mb, host_file):
        self.label, build = text.split("=", 1) if "=" in text else ("after", text)
        self.build = os.path.abspath(build)
        self.cocoon = os.path.join(self.build, "bin", "cocoon")
        self.home = tempfile.mkdtemp(prefix=f"cocoon-chan-{self.label}-")
        os.chmod(self.home, 0o700)
        self.env = dict(os.environ, COCOON_HOME=self.home,
                        COCOON_SHARE_DIR=os.path.join(self.build, "share", "cocoon"),
                        COCOON_VMM=os.path.join(self.build, "bin", "cocoon-vmm"))
        self.out_dir = os.path.join(work, self.label)
        os.makedirs(self.out_dir)
        self.mb, self.host_file = mb, host_file
        self.rates = {m: [] for m in MEASURES}

    def cli(self, *args, stdin=None, timeout=600):
        r = subprocess.run([self.cocoon, *args], env=self.env, stdin=stdin, capture_output=True, timeout=timeout)
        if r.returncode:
            sys.exit(f"{self.label}: cocoon {' '.join(args)} failed: {r.stderr.decode()[-800:]}")
        return r.stdout.decode()

    def start(self, pipedrain):
        self.cli("create", "--name", "chan", "--memory", "1G")
        self.cli("start", "chan")
        self.cli("cp", pipedrain, "chan:/usr/local/bin/pipedrain")
        self.cli("exec", "chan", "--", "sh", "-c", f"head -c {self.mb << 20} /dev/urandom > /root/big && "
                 "cat /root/big > /dev/null")

    def guest_ms(self, command):
        out = self.cli("exec", "chan", "--", "sh", "-c",
                       f"s=$(date +%s%N); {command} >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))")
        return int(out.strip()) / 1e6

    def rate(self, measure, seconds):
        self.rates[measure].append(self.mb / seconds)

    def round(self, first):
        def dd():
            self.rate("dd", self.guest_ms("dd if=/root/big of=/dev/null bs=1M"))

        def pipe():
            self.rate("pipe", self.guest_ms("cat /root/big | cat"))

        def cat():
            t0 = time.monotonic()
            p = subprocess.Popen([self.cocoon, "exec", "chan", "--", "cat", "/root/big"], env=self.env,
                                 stdout=subprocess.PIPE)
            n = 0
            while True:
                b = p.stdout.read(1 << 20)
                if not b:
                    break
                n += len(b)
            if p.wait() != 0 or n != self.mb << 20:
                sys.exit(f"{self.label}: cat gave {n} bytes, exit {p.returncode}")
            self.rate("cat", time.monotonic() - t0)

        def stdin():
            t0 = time.monotonic()
            with open(self.host_file, "rb") as f:
                got = self.cli("exec", "-i", "chan", "--", "pipedrain", stdin=f)
            if int(got) != self.mb << 20:
                sys.exit(f"{self.label}: pipedrain took {got.strip()} bytes")
            self.rate("stdin", time.monotonic() - t0)

        def cp_out():
            dst = os.path.join(self.out_dir, "big")
            t0 = time.monotonic()
            self.cli("cp", "chan:/root/big", dst)
            self.rate("cp out", time.monotonic() - t0)
            os.unlink(dst)

        def cp_in():
            t0 = time.monotonic()
            self.cli("cp", self.host_file, "chan:/root/in")
            self.rate("cp in", time.monotonic() - t0)
            self.cli("exec", "chan", "--", "rm", "-f", "/root/in")

        fns = [dd, pipe, cat, stdin, cp_out, cp_in]
        for fn in (fns if first else fns[::-1]):
            fn()

    def close(self):
        subprocess.run([self.cocoon, "rm", "-f", "chan"], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def med(v):
    return statistics.median(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", action="append", help="LABEL=BUILD (repeat for an A/B)")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cocoon-chan-")
    sides = []
    try:
        pipedrain = os.path.join(work, "pipedrain")
        subprocess.run(["cc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", pipedrain,
                        os.path.join(REPO, "bench", "pipedrain.c")], check=True)
        host_file = os.path.join(work, "host.bin")
        with open(host_file, "wb") as f:
            for _ in range(a.mb):
                f.write(os.urandom(1 << 20))
        load0 = os.getloadavg()[0]
        sides = [Side(s, work, a.mb, host_file) for s in (a.side or ["after=build"])]
        for s in sides:
            s.start(pipedrain)
        for rnd in range(a.rounds):
            order = sides if rnd % 2 == 0 else list(reversed(sides))
            for s in order:
                s.round(rnd % 2 == 0)
            print(f"round {rnd + 1}/{a.rounds}: " + "; ".join(
                f"{s.label} cat {s.rates['cat'][-1]:.0f} dd {s.rates['dd'][-1]:.0f} MB/s" for s in sides),
                file=sys.stderr, flush=True)
        load1 = os.getloadavg()[0]
    finally:
        for s in sides:
            s.close()
        shutil.rmtree(work, ignore_errors=True)

    def cell(s, m):
        v = s.rates[m]
        return f"{med(v):.0f} ({min(v):.0f}–{max(v):.0f})"

    lines = ["| side | " + " | ".join(f"{m}, MB/s" for m in MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for s in sides:
        lines.append(f"| {s.label} | " + " | ".join(cell(s, m) for m in MEASURES) + " |")
    lines += ["", "| side | cat / dd | cat / pipe | cp out / cat | cp in / stdin | stdin / dd |", "|---|---|---|---|---|---|"]
    for s in sides:
        r = {m: med(s.rates[m]) for m in MEASURES}
        lines.append(f"| {s.label} | **{r['cat'] / r['dd']:.2f}** | {r['cat'] / r['pipe']:.2f} | "
                     f"{r['cp out'] / r['cat']:.2f} | {r['cp in'] / r['stdin']:.2f} | {r['stdin'] / r['dd']:.2f} |")
    if len(sides) >= 2:
        A = sides[0]
        for B in sides[1:]:
            lines.append("")
            lines.append(f"{B.label} / {A.label} (medians): " + ", ".join(
                f"{m} {med(B.rates[m]) / med(A.rates[m]):.2f}" for m in MEASURES) + ".")
    table = "\n".join(lines)
    print(table)
    if a.results:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = " ".join(["bench/channel_bench.py"] + sys.argv[1:]).replace(REPO + "/", "")
        how = (f"{a.rounds} rounds; each measure's median (min–max) over the rounds in MB/s of a {a.mb} MB file "
               "of random bytes; one box per side (default image, 1 vCPU, 1 GiB), the sides and the measures "
               "taking turns. dd: `dd bs=1M` of the file to /dev/null in the guest (one copy per byte); pipe: "
               "`cat FILE | cat > /dev/null` in the guest (a second process reading cat's pipe, what the "
               "channel does in the agent's place); cat: `cocoon exec BOX -- cat FILE` read on the host; stdin: "
               "`cocoon exec -i BOX -- pipedrain` fed from a host file (bench/pipedrain.c empties its stdin "
               "by splice); cp out / cp in: `cocoon cp` of the file.")
        foot = (f"Command: `{cmd}`. Date: {now}; load average {load0:.2f} at the start, {load1:.2f} at the end "
                "(2 shared cores, qemu backend under TCG: absolute numbers are noisy, the ratios less so).")
        replace_section(a.results, SECTION, f"{how}\n\n{table}\n\n{foot}")


if __name__ == "__main__":
    main()
