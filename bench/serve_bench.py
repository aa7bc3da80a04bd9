#!/usr/bin/python3
"""`cocoon serve` benchmark (issue 12): what the HTTP API adds on top of libcocoon.

On one running box, interleaved in rounds so the shared machine's noise hits every
variant alike:
  exec-capi   `true` through the C API on one open handle (examples/exec_many latency:
              the library at its best, no process start-up);
  rest-run    POST /v1/boxes/{id}/run {"command":"true"} on a kept-alive unix-socket
              connection (run to completion: one request, collected output);
  rest-ws     POST /exec, then the WebSocket attach until the exit frame (BoxLite's
              two-step model, what its client does per command);
  cli         `cocoon exec BOX -- true`.
Life cycle: create -> start -> exec `true` -> delete, over REST vs the same four CLI
commands (--cycles times each, interleaved).
Streams: one WebSocket attach of `head -c SIZE /dev/zero` vs 50 at once on the same
box: aggregate MB/s of the 50 vs the one.

Usage: bench/serve_bench.py [--build build] [--rounds 10] [--per-round 20] [--cycles 5]
                            [--streams 50] [--stream-mb 4] [--write]
--write replaces the "HTTP API (cocoon serve)" section of bench/RESULTS.md.
"""
import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import websockets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("cocoon")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class Api:
    def __init__(self, sock):
        self.sock = sock
        self.conn = UnixHTTP(sock)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = self.conn.getresponse()
        raw = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values):
    return {"median": statistics.median(values), "p25": pct(values, 0.25), "p75": pct(values, 0.75),
            "min": min(values), "max": max(values), "n": len(values)}


async def ws_exec(sock, box, cmd, args, sink=None):
    api = Api(sock)
    eid = api.call("POST", f"/v1/boxes/{box}/exec", {"command": cmd, "args": args})["execution_id"]
    api.conn.close()
    total = 0
    async with websockets.unix_connect(sock, f"ws://cocoon/v1/boxes/{box}/executions/{eid}/attach",
                                       max_size=None) as ws:
        async for m in ws:
            if isinstance(m, bytes):
                total += len(m) - 1
            else:
                msg = json.loads(m)
                if msg.get("type") == "exit":
                    if msg["exit_code"] != 0:
                        raise RuntimeError(f"{cmd} exited {msg['exit_code']}")
                    break
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--stream-mb", type=int, default=4)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    build = os.path.join(REPO, args.build)
    cocoon = os.path.join(build, "bin", "cocoon")
    home = tempfile.mkdtemp(prefix="cocoon-serve-bench.")
    os.chmod(home, 0o700)
    env = dict(os.environ, COCOON_HOME=home)
    sock = os.path.join(home, "cocoon.sock")
    ex_dir = tempfile.mkdtemp(prefix="cocoon-exmany.")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "examples"), f"BUILD={build}", f"OUT={ex_dir}"],
                   check=True, capture_output=True)
    server = subprocess.Popen([os.path.join(build, "bin", "cocoon-serve"), "--log-file", "none"], env=env,
                              stderr=subprocess.DEVNULL)
    load0 = os.getloadavg()[0]

    def cli(*a):
        return subprocess.run([cocoon, *a], env=env, check=True, capture_output=True, text=True).stdout.strip()

    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        cli("create", "--name", "bench", "--memory", "512")
        cli("start", "bench")
        api = Api(sock)
        lat = {"exec-capi": [], "rest-run": [], "rest-ws": [], "cli": []}
        for _ in range(args.rounds):
            r = subprocess.run([os.path.join(ex_dir, "exec_many"), "bench", "latency", str(args.per_round)],
                               env=env, check=True, capture_output=True)
            lat["exec-capi"].append(json.loads(r.stdout.decode())["median_ms"])
            for _ in range(args.per_round):
                t = time.perf_counter()
                out = api.call("POST", "/v1/boxes/bench/run", {"command": "true"})
                assert out["exit_code"] == 0, out
                lat["rest-run"].append((time.perf_counter() - t) * 1e3)
            for _ in range(args.per_round):
                t = time.perf_counter()
                asyncio.run(ws_exec(sock, "bench", "true", []))
                lat["rest-ws"].append((time.perf_counter() - t) * 1e3)
            for _ in range(max(1, args.per_round // 4)):
                t = time.perf_counter()
                cli("exec", "bench", "--", "true")
                lat["cli"].append((time.perf_counter() - t) * 1e3)
        res = {k: summary(v) for k, v in lat.items()}

        cyc = {"rest": [], "cli": []}
        for i in range(args.cycles):
            t = time.perf_counter()
            box = api.call("POST", "/v1/boxes", {"name": f"cyc-r{i}", "memory_mib": 256})["box_id"]
            api.call("POST", f"/v1/boxes/{box}/start")
            assert api.call("POST", f"/v1/boxes/{box}/run", {"command": "true"})["exit_code"] == 0
            api.call("DELETE", f"/v1/boxes/{box}?force=true")
            cyc["rest"].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            box = cli("create", "--name", f"cyc-c{i}", "--memory", "256")
            cli("start", box)
            cli("exec", box, "--", "true")
            cli("rm", "-f", box)
            cyc["cli"].append((time.perf_counter() - t) * 1e3)
        res["cycle-rest"] = summary(cyc["rest"])
        res["cycle-cli"] = summary(cyc["cli"])

        size = args.stream_mb << 20
        cmd_args = ["-c", str(size), "/dev/zero"]
        one = []
        for _ in range(3):
            t = time.perf_counter()
            got = asyncio.run(ws_exec(sock, "bench", "head", cmd_args))
            assert got == size, got
            one.append(size / (time.perf_counter() - t) / 1e6)

        async def many():
            return await asyncio.gather(*[ws_exec(sock, "bench", "head", cmd_args) for _ in range(args.streams)])

        agg = []
        for _ in range(3):
            t = time.perf_counter()
            got = asyncio.run(many())
            assert all(g == size for g in got), got
            agg.append(size * args.streams / (time.perf_counter() - t) / 1e6)
        res["stream-one"] = summary(one)
        res["stream-many"] = summary(agg)
    finally:
        subprocess.run([cocoon, "rm", "-f", "bench"], env=env, capture_output=True)
        for b in subprocess.run([cocoon, "ls", "-a", "-q"], env=env, capture_output=True, text=True).stdout.split():
            subprocess.run([cocoon, "rm", "-f", b], env=env, capture_output=True)
        server.terminate()
        server.wait()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(ex_dir, ignore_errors=True)
    load1 = os.getloadavg()[0]
    print(json.dumps(res, indent=1))
    if args.write:
        write(res, args, load0, load1)


def write(res, args, load0, load1):
    from report import replace_section
    capi = res["exec-capi"]["median"]

    def row(name, key, what):
        s = res[key]
        return (f"| {name} | {s['median']:.1f} | {s['p25']:.1f}–{s['p75']:.1f} | {s['min']:.1f}–{s['max']:.1f} | "
                f"{s['median'] / capi:.2f} | {what} |")

    def cycle_row(name, key):
        s = res[key]
        return f"| {name} | {s['median']:.0f} | {s['min']:.0f}–{s['max']:.0f} | {s['median'] / res['cycle-cli']['median']:.2f} |"

    one, many = res["stream-one"]["median"], res["stream-many"]["median"]
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = "\n".join([
        f"One running box (default image, 1 vCPU, 512 MiB), one `cocoon serve` on its unix socket. Exec "
        f"`true` round trips in {args.rounds} interleaved rounds of {args.per_round} (C API: the median of "
        "each round's batch; the others: every call).",
        "",
        "| exec `true` | median (ms) | p25–p75 | min–max | / C API | what |",
        "|---|---|---|---|---|---|",
        row("C API (baseline)", "exec-capi", "cocoon_box_run on one open handle (examples/exec_many)"),
        row("REST run to completion", "rest-run", "POST /v1/boxes/{id}/run, kept-alive connection"),
        row("REST exec + WebSocket", "rest-ws", "POST /exec, attach, read to the exit frame (Python websockets)"),
        row("CLI", "cli", "`cocoon exec BOX -- true`"),
        "",
        f"Life cycle create → start → exec `true` → delete ({args.cycles} each, interleaved):",
        "",
        "| path | median (ms) | min–max | / CLI |",
        "|---|---|---|---|",
        cycle_row("REST (4 requests)", "cycle-rest"),
        cycle_row("CLI (4 commands)", "cycle-cli"),
        "",
        f"Streams: `head -c {args.stream_mb}M /dev/zero` attached over WebSocket. One stream "
        f"**{one:.1f} MB/s** (median of 3); {args.streams} at once **{many:.1f} MB/s** aggregate "
        f"(median of 3); ratio **{many / one:.2f}**.",
        "",
        f"Command: `bench/serve_bench.py --rounds {args.rounds} --per-round {args.per_round} --cycles "
        f"{args.cycles} --streams {args.streams} --stream-mb {args.stream_mb} --write`. Date: {when}.",
        f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, {qemu}, accel tcg; load average "
        f"{load0:.2f} before, {load1:.2f} after (shared machine: absolute numbers are noisy, ratios less so).",
    ])
    replace_section(os.path.join(REPO, "bench", "RESULTS.md"), "## HTTP API (cocoon serve)", body)


if __name__ == "__main__":
    main()
