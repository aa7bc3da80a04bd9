#!/usr/bin/python3
"""TLS interception benchmark (issue 17): HTTPS through cocoon's interception vs the
same HTTPS spliced untouched vs the same client run directly on the host, same run.

A network namespace holds an HTTPS server (198.18.100.10:443, certificates from a test
CA made here; `GET /N` answers N bytes, keep-alive) standing in for two names a test
resolver gives the box: api.example.com (intercepted: --tls-intercept) and
plain.example.com (spliced). One box (qemu backend, --net open) runs the python client
for both; "direct" runs the same client on the host against the server. Measured:
  req/s    keep-alive GETs of 16 bytes on one connection, for --secs seconds;
  conn/s   a new TLS connection (handshake + one GET) each time, for --secs seconds;
  MB/s     one GET of --mb MB.
Rounds alternate (--rounds); the table gives each case's median and spread (min-max)
and the ratios intercepted/spliced and intercepted/direct from the medians. Needs root
(ip netns).

Usage: bench/tls_bench.py [--build build] [--secs 5] [--mb 64] [--rounds 3] [--write]
--write replaces the "TLS interception" section of bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
SECTION = "## TLS interception: intercepted vs spliced vs direct (issue 17)"
NS_ADDR, NS_HOST = "198.18.100.10", "198.18.100.1"

SERVER = r"""
import socket, ssl, sys, threading
d, addr = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/api.pem", d + "/api.key")
BLOCK = b"x" * (1 << 20)
def conn(c):
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(c, server_side=True) as t:
            f = t.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    return
                n = int(line.split()[1][1:] or 0)
                close = False
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    close |= h.lower().startswith(b"connection: close")
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n
                if n <= len(BLOCK):  # one write: no Nagle / delayed-ACK stall on small answers
                    t.sendall(head + BLOCK[:n])
                    n = 0
                else:
                    t.sendall(head)
                while n:
                    k = min(n, len(BLOCK))
                    t.sendall(BLOCK[:k])
                    n -= k
                if close:
                    return
    except Exception:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, 443))
s.listen(256)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=conn, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import http.client, json, socket, ssl, sys, time
host, cadata, secs, mb, addr = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cadata=open(cadata).read() if cadata != "-" else None)
def conn():
    c = http.client.HTTPSConnection(host, 443, timeout=60, context=ctx)
    if addr != "-":  # the host: no resolver of ours, connect to the address, verify the name
        c.sock = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=60), server_hostname=host)
    return c
out = {}
c = conn()
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < secs:
    c.request("GET", "/16")
    c.getresponse().read()
    n += 1
out["req_s"] = n / (time.monotonic() - t0)
c.close()
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < secs:
    c = conn()
    c.request("GET", "/16", headers={"Connection": "close"})
    c.getresponse().read()
    c.close()
    n += 1
out["conn_s"] = n / (time.monotonic() - t0)
c = conn()
t0 = time.monotonic()
c.request("GET", "/%d" % (mb << 20))
r = c.getresponse()
got = 0
while True:
    b = r.read(1 << 20)
    if not b:
        break
    got += len(b)
out["mb_s"] = got / (1 << 20) / (time.monotonic() - t0)
print(json.dumps(out))
"""


def sh(*cmd, check=True, env=None, inp=None, timeout=900):
    return subprocess.run(cmd, capture_output=True, check=check, env=env, input=inp, timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("openssl"):
        sys.exit("tls_bench: needs root, ip and openssl (a network namespace)")
    import test_tls  # make_certs, dns_server
    cocoon = os.path.join(a.build, "bin", "cocoon")
    tmp = tempfile.mkdtemp(prefix="cocoon-tls-bench-")
    d = os.path.join(tmp, "up")
    os.makedirs(d)
    home = os.path.join(tmp, "home")
    os.makedirs(home, mode=0o700)
    ns, veth = f"cocoon-tlsb-{os.getpid()}", f"cctlb{os.getpid() % 100000}"
    stop = threading.Event()
    server = box = None
    results = {"intercepted": [], "spliced": [], "direct": []}
    try:
        test_tls.make_certs(d)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        sh("ip", "link", "set", veth + "n", "netns", ns)
        sh("ip", "addr", "add", f"{NS_HOST}/24", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NS_ADDR}/24", "dev", veth + "n")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", veth + "n", "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        with open(os.path.join(d, "server.py"), "w") as f:
            f.write(SERVER)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", os.path.join(d, "server.py"), d, NS_ADDR],
                                  stdout=subprocess.PIPE)
        assert server.stdout.readline().strip() == b"ready"
        dport, _ = test_tls.dns_server({"api.example.com": NS_ADDR, "plain.example.com": NS_ADDR}, stop)
        env = dict(os.environ, COCOON_HOME=home, COCOON_DNS_UPSTREAM=f"127.0.0.1:{dport}",
                   COCOON_TLS_EXTRA_CA=f"{d}/ca.pem",
                   COCOON_SHARE_DIR=os.environ.get("COCOON_SHARE_DIR", os.path.join(a.build, "share", "cocoon")))
        box = sh(cocoon, "run", "-d", "--vmm", "qemu", "--net", "open", "--tls-intercept", "api.example.com",
                 env=env).stdout.decode().strip()
        with open(f"{d}/ca.pem", "rb") as f:
            sh(cocoon, "exec", box, "--", "sh", "-c", "cat > /tmp/ca.pem", env=env, inp=f.read())
        with open(os.path.join(d, "client.py"), "w") as f:
            f.write(CLIENT)
        for r in range(a.rounds):
            order = ["intercepted", "spliced", "direct"]
            if r % 2:
                order.reverse()
            for case in order:
                args = [str(a.secs), str(a.mb)]
                if case == "direct":
                    p = sh(sys.executable, os.path.join(d, "client.py"), "api.example.com", f"{d}/ca.pem", *args,
                           NS_ADDR)
                else:
                    host, ca = ("api.example.com", "-") if case == "intercepted" else ("plain.example.com",
                                                                                        "/tmp/ca.pem")
                    p = sh(cocoon, "exec", box, "--", "python3", "-", host, ca, *args, "-", env=env,
                           inp=CLIENT.encode())
                results[case].append(json.loads(p.stdout.decode().strip().splitlines()[-1]))
                print(case, results[case][-1], flush=True)
    finally:
        stop.set()
        if box:
            sh(cocoon, "rm", "-f", box, check=False, env=dict(os.environ, COCOON_HOME=home))
        if server:
            server.kill()
            server.wait(10)
        sh("ip", "link", "del", veth, check=False)
        sh("ip", "netns", "del", ns, check=False)
    report(a, results)


def report(a, results):
    def med(case, key):
        return statistics.median(x[key] for x in results[case])

    def cell(case, key):
        v = [x[key] for x in results[case]]
        return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"

    lines = [SECTION, "",
             f"`bench/tls_bench.py --secs {a.secs:g} --mb {a.mb} --rounds {a.rounds}` on {platform.node()} "
             f"({os.cpu_count()} CPUs; boxes on the qemu backend, TCG here). Medians of {a.rounds} alternating "
             "rounds (min-max); a python client in the box for intercepted and spliced, the same client on the host "
             "for direct.", "",
             "| case | req/s keep-alive | new TLS conn/s | MB/s (one GET) |", "|---|---|---|---|"]
    for case in ("intercepted", "spliced", "direct"):
        lines.append(f"| {case} | {cell(case, 'req_s')} | {cell(case, 'conn_s')} | {cell(case, 'mb_s')} |")
    lines.append("")
    for key, what in (("req_s", "req/s"), ("conn_s", "conn/s"), ("mb_s", "MB/s")):
        lines.append(f"- {what}: intercepted/spliced {med('intercepted', key) / med('spliced', key):.2f}x, "
                     f"intercepted/direct {med('intercepted', key) / med('direct', key):.2f}x")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        path = os.path.join(REPO, "bench", "RESULTS.md")
        with open(path) as f:
            doc = f.read()
        if SECTION in doc:
            start = doc.index(SECTION)
            nxt = doc.find("\n## ", start + len(SECTION))
            doc = doc[:start] + text + (doc[nxt + 1:] if nxt >= 0 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        with open(path, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
