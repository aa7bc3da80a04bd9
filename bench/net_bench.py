#!/usr/bin/python3
"""Network benchmark (issue 6): cocoon's own user-space stack vs QEMU's user
networking (libslirp) and vs passt, same guest, same accelerator, same run.

For each stack one box is started (`cocoon run -d --net public --allow host:PORT`,
qemu backend); for slirp the monitor is given COCOON_BENCH_NETDEV=user,... (a
bench-only knob in src/vmm/qemu.c that swaps the -netdev; the guest config is the
same: 10.0.2.15/24, gateway 10.0.2.2 = the host's loopback in all three). For passt
(Debian's passt, scripts/setup installs it) a `passt -f -s SOCK -a 10.0.2.15 -n 24
-g 10.0.2.2` is started per box (passt maps the gateway address to the host's
loopback) and the box gets COCOON_BENCH_NETDEV=stream,...,addr.type=unix,addr.path=SOCK
(skipped with a note when passt is not installed). A python client
in the guest (cocoon exec) measures against servers on 127.0.0.1:
  guest->host  MB/s sending --mb MB to a sink;
  host->guest  MB/s receiving --mb MB from a source;
  conn/s       sequential connect+1-byte echo+close, --conns times.
Rounds alternate between the stacks (--rounds); the table gives the median of the
rounds (and the best round) of each, ratios from the medians.

Usage: bench/net_bench.py [--build build] [--mb 256] [--conns 300] [--rounds 2] [--no-passt] [--write]
--write replaces the "Network ..." section of bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Network: cocoon stack vs QEMU user networking (libslirp) and passt"
OLD_SECTION = "## Network: cocoon stack vs QEMU user networking (libslirp)"


def servers():
    """sink (counts bytes), source (sends N bytes asked for), echo (one byte)."""
    def serve(kind):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(256)

        def conn(c):
            try:
                if kind == "sink":
                    while c.recv(1 << 20):
                        pass
                    c.sendall(b"k")
                elif kind == "source":
                    n = int(c.recv(64).split()[0])
                    buf = b"x" * (1 << 20)
                    while n > 0:
                        c.sendall(buf[:min(n, len(buf))])
                        n -= len(buf)
                else:
                    b = c.recv(1)
                    if b:
                        c.sendall(b)
            finally:
                c.close()

        def loop():
            while True:
                c, _ = ls.accept()
                threading.Thread(target=conn, args=(c,), daemon=True).start()
        threading.Thread(target=loop, daemon=True).start()
        return ls.getsockname()[1]
    return serve("sink"), serve("source"), serve("echo")


GUEST = r"""
import socket, time, json
H = "10.0.2.2"
MB, CONNS = {mb}, {conns}
n = MB << 20
buf = b"y" * (1 << 18)
t = time.time()
s = socket.create_connection((H, {sink}))
left = n
while left > 0:
    k = s.send(buf[:min(left, len(buf))]); left -= k
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
out = n / (time.time() - t) / 1e6
t = time.time()
s = socket.create_connection((H, {source}))
s.sendall(b"%d\n" % n)
got = 0
while got < n:
    b = s.recv(1 << 18)
    if not b: break
    got += len(b)
inn = got / (time.time() - t) / 1e6
t = time.time()
for i in range(CONNS):
    s = socket.create_connection((H, {echo}))
    s.sendall(b"e"); s.recv(1); s.close()
cps = CONNS / (time.time() - t)
print(json.dumps({{"guest_to_host": out, "host_to_guest": inn, "conns": cps}}))
"""


def run(cocoon, env, *args, timeout=600):
    return subprocess.run([cocoon, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-passt", action="store_true")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    cocoon = os.path.join(a.build, "bin", "cocoon")
    home = tempfile.mkdtemp(prefix="cocoon-netbench-")
    sink, source, echo = servers()
    base = dict(os.environ, COCOON_HOME=home)
    base.setdefault("COCOON_SHARE_DIR", os.path.join(a.build, "share", "cocoon"))
    base.setdefault("COCOON_VMM", os.path.join(a.build, "bin", "cocoon-vmm"))
    stacks = {
        "cocoon": {},
        "slirp": {"COCOON_BENCH_NETDEV": "user,id=n0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,restrict=off"},
    }
    passt = None if a.no_passt else shutil.which("passt")
    passt_proc = None
    if passt:
        # passt drops to nobody before binding its socket: give it a directory it may write
        sockdir = tempfile.mkdtemp(prefix="cocoon-passt-")
        os.chmod(sockdir, 0o755)
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(sockdir, nobody.pw_uid, nobody.pw_gid)
        sock = os.path.join(sockdir, "passt.socket")
        # -1: quit when the one client (this box's QEMU) goes; -4: IPv4 only, as the others
        passt_proc = subprocess.Popen([passt, "-f", "-q", "-4", "-1", "-s", sock, "-a", "10.0.2.15", "-n", "24",
                                       "-g", "10.0.2.2", "-D", "10.0.2.3"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline and passt_proc.poll() is None:
            time.sleep(0.05)
        if not os.path.exists(sock):
            sys.exit(f"passt did not start: {passt_proc.stderr.read().decode() if passt_proc.poll() is not None else ''}")
        stacks["passt"] = {"COCOON_BENCH_NETDEV": f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"}
    boxes, rounds, info = {}, {}, {}
    try:
        for name, extra in stacks.items():
            r = run(cocoon, dict(base, **extra), "run", "-d", "--vmm", "qemu", "--net", "public",
                    "--allow", f"host:{sink}", "--allow", f"host:{source}", "--allow", f"host:{echo}")
            if r.returncode:
                sys.exit(f"{name}: cannot start a box: {r.stderr.decode()}")
            boxes[name] = r.stdout.decode().strip()
        r = run(cocoon, base, "inspect", "--json", boxes["cocoon"])
        try:
            j = json.loads(r.stdout)
            info = {"accel": json.dumps(j).split('"accel": "')[1].split('"')[0]}
        except Exception:
            info = {}
        code = GUEST.format(mb=a.mb, conns=a.conns, sink=sink, source=source, echo=echo)
        for rnd in range(a.rounds):
            for name in stacks:
                r = run(cocoon, base, "exec", boxes[name], "--", "python3", "-c", code)
                if r.returncode:
                    sys.exit(f"{name}: guest client failed: {r.stdout.decode()} {r.stderr.decode()}")
                res = json.loads(r.stdout.decode().strip().splitlines()[-1])
                print(f"round {rnd + 1} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in res.items()), flush=True)
                rounds.setdefault(name, []).append(res)
    finally:
        for box in boxes.values():
            run(cocoon, base, "rm", "-f", box)
        if passt_proc:
            passt_proc.kill()  # only the passt this run started
            passt_proc.wait(10)
            subprocess.run(["rm", "-rf", sockdir])
        subprocess.run(["rm", "-rf", home])
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in rounds.items()}
    top = {n: {k: max(r[k] for r in rs) for k in rs[0]} for n, rs in rounds.items()}
    c, s, p = med["cocoon"], med["slirp"], med.get("passt")

    def cell(n, k):
        return f"{med[n][k]:.1f} ({top[n][k]:.1f})"
    rows = [("TCP guest -> host (MB/s)", "guest_to_host"), ("TCP host -> guest (MB/s)", "host_to_guest"),
            ("connections/s (connect, 1-byte echo, close)", "conns")]
    if p:
        table = ["| metric | cocoon stack | QEMU user (libslirp) | passt | cocoon / slirp | cocoon / passt |",
                 "|---|---|---|---|---|---|"]
        for label, k in rows:
            table.append(f"| {label} | {cell('cocoon', k)} | {cell('slirp', k)} | {cell('passt', k)} | {c[k] / s[k]:.2f} | "
                         f"{c[k] / p[k]:.2f} |")
    else:
        table = ["| metric | cocoon stack | QEMU user (libslirp) | cocoon / slirp |", "|---|---|---|---|"]
        for label, k in rows:
            table.append(f"| {label} | {cell('cocoon', k)} | {cell('slirp', k)} | {c[k] / s[k]:.2f} |")
    passt_ver = ""
    if passt:
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "passt"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        passt_ver = "passt " + (v.stdout.decode(errors="replace").strip() or "(version unknown)")
    body = "\n".join([
        f"`bench/net_bench.py --mb {a.mb} --conns {a.conns} --rounds {a.rounds} --write` "
        f"({platform.node()}, {os.cpu_count()} CPUs, qemu backend, accel {info.get('accel', '?')}, "
        f"{time.strftime('%Y-%m-%d')}; median (best) of {a.rounds} alternating rounds, ratios of the medians; "
        f"one guest python client "
        f"via `cocoon exec` against python servers on 127.0.0.1, reached as 10.0.2.2 in all).",
        "", *table, "",
        (f"passt: {passt_ver} (Debian), `passt -f -4 -1 -s SOCK -a 10.0.2.15 -n 24 -g 10.0.2.2`, QEMU "
         f"`-netdev stream,server=off,addr.type=unix,addr.path=SOCK`; the guest keeps its MTU of 1500 in all three."
         if p else "passt: not measured (not installed; scripts/setup installs Debian's passt)."),
    ])
    print(body)
    if a.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from report import replace_section
        path = os.path.join(REPO, "bench", "RESULTS.md")
        with open(path) as f:
            text = f.read()
        if OLD_SECTION + "\n" in text and SECTION not in text:  # the section's earlier title
            with open(path, "w") as f:
                f.write(text.replace(OLD_SECTION + "\n", SECTION + "\n", 1))
        replace_section(path, SECTION, body)


if __name__ == "__main__":
    main()
