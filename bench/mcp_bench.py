#!/usr/bin/python3
"""MCP benchmark (issue 14): exec of `true` through the MCP server vs the REST API.

On one running box, interleaved in rounds so the shared machine's noise hits every
variant alike:
  rest-run    POST /v1/boxes/{id}/run {"command":"true"} on a kept-alive unix-socket
              connection to cocoon-serve (the baseline);
  mcp-http    tools/call exec {"argv":["true"]} as POST /mcp on a kept-alive
              unix-socket connection to the same server (one initialized session);
  mcp-stdio   the same tools/call over `cocoon mcp`'s stdin/stdout.
Each call is timed from the request's first byte to its whole answer.

Usage: bench/mcp_bench.py [--build build] [--rounds 10] [--per-round 20] [--write]
--write replaces the "MCP server: exec vs REST" section of bench/RESULTS.md.
"""
import argparse
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
TITLE = "## MCP server: exec vs REST"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def post(conn, path, body, headers=None):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers or {})
    conn.request("POST", path, body=json.dumps(body).encode(), headers=h)
    r = conn.getresponse()
    raw = r.read()
    if r.status >= 300:
        raise RuntimeError(f"POST {path}: {r.status} {raw[:300]!r}")
    return r, json.loads(raw) if raw else None


INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


def exec_call(i):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "exec", "arguments": {"box": "bench", "argv": ["true"]}}}


def check_exec(answer):
    sc = answer["result"].get("structuredContent") or {}
    if answer["result"].get("isError") or sc.get("exit_code") != 0:
        raise RuntimeError(f"exec failed: {answer}")


def summary(values):
    s = sorted(values)
    return {"median": statistics.median(s), "p25": s[len(s) // 4], "p75": s[(3 * len(s)) // 4], "n": len(s)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    build = os.path.join(REPO, args.build)
    cocoon = os.path.join(build, "bin", "cocoon")
    home = tempfile.mkdtemp(prefix="cocoon-mcp-bench.")
    os.chmod(home, 0o700)
    env = dict(os.environ, COCOON_HOME=home)
    sock = os.path.join(home, "cocoon.sock")
    server = subprocess.Popen([os.path.join(build, "bin", "cocoon-serve"), "--log-file", "none"], env=env,
                              stderr=subprocess.DEVNULL)
    stdio = None
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
        rest = UnixHTTP(sock)
        mcp = UnixHTTP(sock)
        r, _ = post(mcp, "/mcp", INIT)
        session = {"Mcp-Session-Id": r.getheader("Mcp-Session-Id"), "MCP-Protocol-Version": "2025-11-25"}
        mcp.request("POST", "/mcp", body=b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
                    headers={"Content-Type": "application/json", **session})
        mcp.getresponse().read()
        stdio = subprocess.Popen([cocoon, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, bufsize=0)

        def stdio_call(msg):
            stdio.stdin.write((json.dumps(msg) + "\n").encode())
            return json.loads(stdio.stdout.readline())

        stdio_call(INIT)
        lat = {"rest-run": [], "mcp-http": [], "mcp-stdio": []}
        n = 1
        for _ in range(args.rounds):
            for _ in range(args.per_round):
                t = time.perf_counter()
                _, out = post(rest, "/v1/boxes/bench/run", {"command": "true"})
                lat["rest-run"].append((time.perf_counter() - t) * 1e3)
                assert out["exit_code"] == 0, out
                n += 1
                t = time.perf_counter()
                _, out = post(mcp, "/mcp", exec_call(n), session)
                lat["mcp-http"].append((time.perf_counter() - t) * 1e3)
                check_exec(out)
                n += 1
                t = time.perf_counter()
                out = stdio_call(exec_call(n))
                lat["mcp-stdio"].append((time.perf_counter() - t) * 1e3)
                check_exec(out)
        stats = {k: summary(v) for k, v in lat.items()}
    finally:
        if stdio:
            stdio.stdin.close()
            stdio.wait(timeout=60)
        subprocess.run([cocoon, "rm", "-f", "bench"], env=env, capture_output=True)
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)

    base = stats["rest-run"]["median"]
    lines = [
        f"One run on {platform.machine()}, load {load0:.2f} at the start; {args.rounds} rounds x {args.per_round} "
        "calls of each variant, interleaved; exec of `true` on one running box (TCG).",
        "",
        "| variant | median (ms) | p25 / p75 (ms) | / rest-run |",
        "|---|---|---|---|",
    ]
    for k, s in stats.items():
        lines.append(f"| {k} | {s['median']:.2f} | {s['p25']:.2f} / {s['p75']:.2f} | {s['median'] / base:.2f}x |")
    lines += [
        "",
        "- **rest-run**: `POST /v1/boxes/bench/run {\"command\":\"true\"}` on a kept-alive unix-socket connection.",
        "- **mcp-http**: `tools/call exec {\"box\":\"bench\",\"argv\":[\"true\"]}` as `POST /mcp` (one session, "
        "kept-alive unix-socket connection to the same server).",
        "- **mcp-stdio**: the same call over `cocoon mcp`'s stdin/stdout.",
        "- Written by `bench/mcp_bench.py --write`.",
    ]
    body = "\n".join(lines)
    print(TITLE + "\n\n" + body)
    if args.write:
        from report import replace_section
        replace_section(os.path.join(REPO, "bench", "RESULTS.md"), TITLE, body)


if __name__ == "__main__":
    main()
