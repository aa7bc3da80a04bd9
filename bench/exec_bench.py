#!/usr/bin/python3
"""Exec benchmark on one running box (issue 4).

Latency (median and p99 over --runs round trips, interleaved):
  ping-agent  PING with payload prefix 'A' on the control socket: the monitor forwards it
              to the agent and relays the PONG (the bare channel round trip);
  ping-vmm    PING answered by the monitor itself (the control socket alone);
  exec-proto  EXEC `true` spoken directly on the control socket from this process:
              EXEC + STDIN_EOF -> STARTED ... EXIT (what an exec costs, no client start-up);
  exec-capi   `true` through the C API (examples/exec_many latency: cocoon_box_run on one handle);
  exec-cli    `cocoon exec BOX -- true` (adds process start-up, state db and connect).
Throughput: `cat FILE` of a --mb MB file in the guest through exec to this process, vs
`dd if=FILE of=/dev/null bs=1M` inside the guest (as dd reports it); ratio cat / dd.

Usage: bench/exec_bench.py [--build build] [--runs 200] [--mb 200] [--write]
--write replaces the "Exec latency and throughput" section of bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HDR = struct.Struct("<IIHBB")
PING, PONG, ERROR, EXEC, STARTED, STDIN_EOF, STDOUT, STDERR, EXIT, CREDIT, VMM_HELLO = \
    4, 5, 7, 16, 17, 19, 20, 21, 22, 25, 32
T_ARGV, T_WINDOW, T_BYTES = 14, 21, 25


def frame(stream, ftype, payload=b""):
    return HDR.pack(len(payload), stream, ftype, 1, 0) + payload


def tlv(tag, value):
    return struct.pack("<HI", tag, len(value)) + value


class Ctl:
    """The box's control socket, reached through /proc/self/fd/<dirfd>/ctl.sock."""

    def __init__(self, box_dir):
        self.dirfd = os.open(box_dir, os.O_PATH | os.O_DIRECTORY)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(f"/proc/self/fd/{self.dirfd}/ctl.sock")
        self.buf = b""
        _, ftype, _ = self.read()
        assert ftype == VMM_HELLO, ftype
        self.next_stream = 1

    def read(self):
        while True:
            if len(self.buf) >= HDR.size:
                n, stream, ftype, _, _ = HDR.unpack_from(self.buf)
                if len(self.buf) >= HDR.size + n:
                    payload = self.buf[HDR.size:HDR.size + n]
                    self.buf = self.buf[HDR.size + n:]
                    return stream, ftype, payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("monitor closed the control socket")
            self.buf += chunk

    def ping(self, agent, seq):
        payload = (b"A" if agent else b"") + struct.pack("<Q", seq)
        self.sock.sendall(frame(0, PING, payload))
        while True:
            stream, ftype, p = self.read()
            if stream == 0 and ftype == PONG and p == payload:
                return

    def exec_true(self):
        s = self.next_stream
        self.next_stream += 1
        body = tlv(T_ARGV, b"true") + tlv(T_WINDOW, struct.pack("<I", 262144))
        self.sock.sendall(frame(s, EXEC, body) + frame(s, STDIN_EOF))
        while True:
            stream, ftype, p = self.read()
            if stream != s:
                continue
            if ftype == ERROR:
                raise RuntimeError(f"exec refused: {p!r}")
            if ftype == EXIT:
                return

    def close(self):
        self.sock.close()
        os.close(self.dirfd)


def stats_ms(samples):
    s = sorted(samples)
    p99 = s[min(len(s) - 1, (len(s) * 99 + 99) // 100 - 1)]
    return {"median": statistics.median(s) * 1e3, "p99": p99 * 1e3, "min": s[0] * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    cocoon = os.path.join(build, "bin", "cocoon")
    home = tempfile.mkdtemp(prefix="cocoon-exec-bench-")
    env = dict(os.environ, COCOON_HOME=home,
               COCOON_SHARE_DIR=os.environ.get("COCOON_SHARE_DIR", os.path.join(REPO, "build", "share", "cocoon")),
               COCOON_VMM=os.environ.get("COCOON_VMM", os.path.join(build, "bin", "cocoon-vmm")))
    ex_dir = os.path.join(home, "examples")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "examples"), f"BUILD={build}", f"OUT={ex_dir}"],
                   check=True)
    load_before = os.getloadavg()[0]

    def cli(*a, **kw):
        return subprocess.run([cocoon, *a], env=env, check=True, **kw)

    box_id = cli("create", "--name", "bench", "--memory", "1G", capture_output=True).stdout.decode().strip()
    try:
        cli("start", "bench")
        box_dir = os.path.join(home, "boxes", box_id)
        ctl = Ctl(box_dir)
        lat = {k: [] for k in ("ping-agent", "ping-vmm", "exec-proto", "exec-cli")}
        for i in range(10):  # warm up
            ctl.ping(True, i)
            ctl.exec_true()
        for i in range(args.runs):
            t = time.perf_counter()
            ctl.ping(True, i)
            lat["ping-agent"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ctl.ping(False, i)
            lat["ping-vmm"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ctl.exec_true()
            lat["exec-proto"].append(time.perf_counter() - t)
            t = time.perf_counter()
            cli("exec", "bench", "--", "true")
            lat["exec-cli"].append(time.perf_counter() - t)
        ctl.close()
        r = subprocess.run([os.path.join(ex_dir, "exec_many"), "bench", "latency", str(args.runs)], env=env,
                           check=True, capture_output=True)
        capi = json.loads(r.stdout.decode())
        res = {k: stats_ms(v) for k, v in lat.items()}
        res["exec-capi"] = {"median": capi["median_ms"], "p99": capi["p99_ms"], "min": capi["min_ms"]}

        # throughput: a file in the guest, cached, then cat through exec vs dd inside
        cli("exec", "bench", "--", "sh", "-c", f"head -c {args.mb}M /dev/urandom > /root/big && "
            "dd if=/root/big of=/dev/null bs=1M 2>/dev/null")
        cat_mbs, dd_mbs = [], []
        for _ in range(3):
            t = time.perf_counter()
            p = subprocess.Popen([cocoon, "exec", "bench", "--", "cat", "/root/big"], env=env,
                                 stdout=subprocess.PIPE)
            n = 0
            while True:
                b = p.stdout.read(1 << 20)
                if not b:
                    break
                n += len(b)
            p.wait()
            el = time.perf_counter() - t
            assert n == args.mb << 20, n
            cat_mbs.append(n / (1 << 20) / el)
            out = cli("exec", "bench", "--", "dd", "if=/root/big", "of=/dev/null", "bs=1M",
                      capture_output=True).stderr.decode()
            m = re.search(r"copied, ([\d.]+) s", out)
            dd_mbs.append(args.mb / float(m.group(1)))
        res["cat"] = statistics.median(cat_mbs)
        res["dd"] = statistics.median(dd_mbs)
    finally:
        subprocess.run([cocoon, "rm", "-f", "bench"], env=env)
        shutil.rmtree(home, ignore_errors=True)
    load_after = os.getloadavg()[0]
    text = report(res, args, build, load_before, load_after)
    print(text)
    if args.write:
        path = os.path.join(REPO, "bench", "RESULTS.md")
        old = open(path).read() if os.path.exists(path) else ""
        title = "## Exec latency and throughput"
        m = re.search(r"^## Exec latency and throughput\n.*?(?=^## |\Z)", old, re.S | re.M)
        new = old[:m.start()] + text + "\n" + old[m.end():] if m else old.rstrip("\n") + "\n\n" + text + "\n"
        assert title in new
        open(path, "w").write(new)


def report(r, args, build, lb, la):
    def row(name, key, what):
        return f"| {name} | {r[key]['median']:.2f} | {r[key]['p99']:.2f} | {r[key]['median'] / r['ping-agent']['median']:.1f} | {what} |"
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True).stdout.decode().splitlines()[0]
    lines = [
        "## Exec latency and throughput",
        "",
        f"One running box (default image, 1 vCPU, 1 GiB). {args.runs} round trips of each kind, interleaved.",
        "",
        "| round trip | median (ms) | p99 (ms) | / agent ping | what |",
        "|---|---|---|---|---|",
        row("agent ping", "ping-agent", "PING 'A' on ctl.sock → monitor → agent → PONG"),
        row("monitor ping", "ping-vmm", "PING answered by cocoon-vmm itself"),
        row("exec `true`, raw protocol", "exec-proto", "EXEC+STDIN_EOF → STARTED → EXIT on ctl.sock from Python"),
        row("exec `true`, C API", "exec-capi", "cocoon_box_run on one open handle (examples/exec_many)"),
        row("exec `true`, CLI", "exec-cli", "`cocoon exec BOX -- true` (process start, db, connect)"),
        "",
        f"stdout throughput, {args.mb} MB file in the guest's page cache (median of 3): "
        f"`cocoon exec BOX -- cat FILE` to a host pipe **{r['cat']:.0f} MB/s**; "
        f"`dd if=FILE of=/dev/null bs=1M` inside the guest **{r['dd']:.0f} MB/s**; "
        f"ratio cat/dd **{r['cat'] / r['dd']:.2f}** (what the channel costs).",
        "",
        "- exec cost = exec round trip / agent ping: fork+exec of `true` in the guest, the",
        "  STARTED/EXIT frames and the exec table; the CLI adds its own start-up on the host.",
        "- the channel is virtio-console through QEMU's chardev to cocoon-vmm, then a unix socket",
        "  to the client, with per-exec credit windows of 1 MiB (PROTO_DEFAULT_WINDOW).",
        "",
        f"Command: `bench/exec_bench.py --build {os.path.relpath(build, REPO)} --runs {args.runs} --mb {args.mb} --write`. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, {qemu}, accel tcg; "
        f"load average {lb:.2f} before, {la:.2f} after (shared machine: absolute numbers are noisy).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
