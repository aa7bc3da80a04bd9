"""Networking of real boxes through cocoon's own user-space stack (qemu backend).

Traffic only ever goes to servers these tests start on 127.0.0.1, reached from the
guest as host.cocoon.internal (the host alias, --allow host:PORT), and to a tiny DNS
server on 127.0.0.1 that the stack is pointed at with COCOON_DNS_UPSTREAM. The
default image has python3, so guest-side clients are python one-liners.
"""
import contextlib
import hashlib
import os
import socket
import socketserver
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import COCOON, decode

BLOCK = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(1 << 20 | 1))  # 1 MiB + 1: misalignment shows
TRANSFER_MB = int(os.environ.get("COCOON_NET_TRANSFER_MB", "256"))


def pattern(n):
    out = bytearray()
    while len(out) < n:
        out += BLOCK
    return bytes(out[:n])


class Servers:
    """An HTTP-ish data server (GET n / PUT n / ECHO) and a test resolver."""

    def __init__(self):
        self.threads = []
        self.stop = threading.Event()
        self.dns_sizes = []  # (name, UDP size the query advertised) as the resolver saw them

    def tcp(self):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                f = self.request.makefile("rb")
                line = f.readline().decode().split()
                if not line:
                    return
                if line[0] == "GET":
                    n = int(line[1])
                    data = pattern(n)
                    self.request.sendall(data)
                elif line[0] == "PUT":
                    n, h, got = int(line[1]), hashlib.sha256(), 0
                    while got < n:
                        b = f.read(min(1 << 16, n - got))
                        if not b:
                            break
                        h.update(b)
                        got += len(b)
                    self.request.sendall((h.hexdigest() + "\n").encode())
                elif line[0] == "ECHO":
                    while True:
                        b = f.readline()
                        if not b:
                            break
                        self.request.sendall(b)
                elif line[0] == "HTTP":
                    self.request.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello from the host\n")

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 512

        srv = S(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.threads.append(srv)
        return srv.server_address[1]

    def dns(self, answers):
        """answers: name -> list of IPv4 strings; other names get NXDOMAIN."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)

        def serve():
            while not self.stop.is_set():
                try:
                    q, peer = s.recvfrom(4096)
                except socket.timeout:
                    continue
                qid, _, qd = struct.unpack("!HHH", q[:6])
                off, labels = 12, []
                while q[off]:
                    labels.append(q[off + 1:off + 1 + q[off]].decode())
                    off += 1 + q[off]
                qtype = struct.unpack("!H", q[off + 1:off + 3])[0]
                question = q[12:off + 5]
                name = ".".join(labels).lower()
                ips = answers.get(name) if qtype == 1 else ([] if name in answers else None)
                rcode = 3 if ips is None else 0
                ans = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
                               for ip in (ips or []))
                # As a real server: the UDP size is 512 bytes unless the query's EDNS0 OPT
                # record says more; an answer over it goes with TC and no records.
                size, opt = 512, b""
                if struct.unpack("!H", q[10:12])[0] and q[off + 5:off + 8] == b"\0\0\x29":
                    size = max(512, struct.unpack("!H", q[off + 8:off + 10])[0])
                    opt = b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)
                hdr = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(ips or []), 0, 1 if opt else 0)
                msg = hdr + question + ans + opt
                if len(msg) > size:
                    msg = struct.pack("!HHHHHH", qid, 0x8380 | rcode, 1, 0, 0, 1 if opt else 0) + question + opt
                self.dns_sizes.append((name, size))
                s.sendto(msg, peer)
            s.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        return s.getsockname()[1]

    def close(self):
        self.stop.set()
        for srv in self.threads:
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.close()


def guest_py(vm, code, *opts, env=None, check=0, timeout=300):
    r = vm.run("run", *opts, "--", "python3", "-c", code, env=env, timeout=timeout)
    if check is not None:
        assert r.returncode == check, (decode(r.stdout), decode(r.stderr))
    return decode(r.stdout)


def net_logs(vm):
    out = ""
    for d in vm.box_dirs():
        p = os.path.join(vm.boxes_dir(), d, "net.log")
        if os.path.exists(p):
            out += open(p).read()
    return out


def test_default_public_and_none(vm):
    out = guest_py(vm, "import os; print(sorted(os.listdir('/sys/class/net')))", "--rm")
    assert "eth0" in out and "lo" in out, out  # --net public is the default on every backend
    out = guest_py(vm, "import os; print(sorted(os.listdir('/sys/class/net')))", "--rm", "--net", "none")
    assert "eth0" not in out, out


# Guest-side Python the tests below prepend to their programs.
# tcp_get: one line a test server (servers.tcp) answers, or the error's name.
GUEST_TCP_GET = r"""
import socket
def tcp_get(host, port):
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"HTTP\n")
        return s.recv(100).decode().split("\r\n\r\n")[1].strip()
    except Exception as e:
        return "error " + type(e).__name__
"""
# csum: the Internet checksum, for the ICMP and raw IP packets the guest builds.
GUEST_CSUM = r"""
import struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
"""


def test_host_alias_allowed_and_denied(vm, servers):
    port = servers.tcp()
    code = GUEST_TCP_GET + f"""
print("alias:", tcp_get("host.cocoon.internal", {port}))
print("metadata:", tcp_get("169.254.169.254", 80))
print("private:", tcp_get("192.168.1.1", 80))
print(open("/etc/resolv.conf").read().split()[-1])
"""
    out = guest_py(vm, code, "--net", "public", "--allow", f"host:{port}")
    assert "alias: hello from the host" in out, out
    assert "metadata: error ConnectionRefusedError" in out, out
    assert "private: error ConnectionRefusedError" in out, out
    assert out.strip().endswith("10.0.2.3"), out
    log = net_logs(vm)
    assert "169.254.169.254:80" in log and "not a public address" in log, log
    # without the rule the host is denied
    out = guest_py(vm, code, "--rm", "--net", "public")
    assert "alias: error ConnectionRefusedError" in out, out


def test_dns_policy_and_rebinding(vm, servers):
    dport = servers.dns({"good.test": ["93.184.216.34"], "bad.test": ["93.184.216.35"],
                         "rebind.test": ["192.168.1.10", "93.184.216.36", "127.0.0.1"]})
    code = """
import socket
for n in ["good.test", "bad.test", "rebind.test", "missing.test", "host.cocoon.internal"]:
    try:
        print(n, sorted({a[4][0] for a in socket.getaddrinfo(n, 80, socket.AF_INET)}))
    except socket.gaierror as e:
        print(n, "error", e.errno)
"""
    out = guest_py(vm, code, "--net", "public", "--deny", "bad.test",
                   env={"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}"})
    assert "good.test ['93.184.216.34']" in out, out
    assert "bad.test error" in out, out
    assert "rebind.test ['93.184.216.36']" in out, out  # private and loopback answers stripped
    assert "missing.test error" in out, out
    assert "host.cocoon.internal ['10.0.2.2']" in out, out
    log = net_logs(vm)
    assert "dns bad.test" in log and 'rule="deny bad.test"' in log, log


DNS_SIZES = r"""
import socket, struct, subprocess
def udpq(name, edns):
    m = struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 1 if edns else 0) + b"".join(
        bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    if edns:
        m += b"\0" + struct.pack("!HHIH", 41, edns, 0, 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(m, ("10.0.2.3", 53))
    r = s.recv(65535)
    return "len %d tc %d an %d" % (len(r), (r[2] >> 1) & 1, struct.unpack("!H", r[6:8])[0])
print("plain", udpq("big.test", 0))
print("edns", udpq("big.test", 1232))
print("huge", udpq("huge.test", 4096))
for n in ["big.test", "huge.test"]:
    print("gai", n, len({a[4][0] for a in socket.getaddrinfo(n, 80, socket.AF_INET)}))
out = subprocess.run(["getent", "ahostsv4", "big.test"], stdout=subprocess.PIPE).stdout.decode()
print("getent", len({l.split()[0] for l in out.splitlines()}))
"""


def test_dns_large_answer_truncated_then_tcp(vm, servers):
    """A UDP answer over the client's size (512 bytes without EDNS0, or one MTU-sized
    frame) comes back as TC with no records; glibc then retries over TCP and gets all
    the records. With EDNS0 an answer over 512 bytes that fits the MTU comes whole."""
    big = [f"93.184.217.{i}" for i in range(1, 41)]  # 666 bytes
    huge = [f"93.184.218.{i}" for i in range(1, 121)]  # 1946 bytes: over a 1500-byte MTU
    dport = servers.dns({"big.test": big, "huge.test": huge})
    out = guest_py(vm, DNS_SIZES, "--rm", "--net", "public", env={"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}"})
    assert "plain len 26 tc 1 an 0" in out, out
    assert "edns len %d tc 0 an 40" % (26 + 40 * 16 + 11) in out, out  # with the upstream's OPT
    assert "huge len 27 tc 1 an 0" in out, out  # huge.test: a question one byte longer
    assert "gai big.test 40" in out, out
    assert "gai huge.test 120" in out, out
    assert "getent 40" in out, out
    # the stack asked its upstream with EDNS0 (4096), whatever the guest asked with
    assert servers.dns_sizes and all(size == 4096 for _, size in servers.dns_sizes), servers.dns_sizes


@contextlib.contextmanager
def udp_reply_server(reply):
    """A UDP server on 127.0.0.1 answering each datagram with reply(datagram), in a
    thread, for the length of the with block; yields its port."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                d, peer = srv.recvfrom(65535)
            except socket.timeout:
                continue
            srv.sendto(reply(d), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        srv.close()


def test_guest_big_udp_datagram_reassembled(vm):
    """A UDP datagram the guest sends over its MTU leaves it as IP fragments; the stack
    reassembles them (bounded, overlaps dropped) and the host gets one datagram."""
    def reply(d):
        return b"%d %s" % (len(d), hashlib.sha256(d).hexdigest()[:16].encode())

    with udp_reply_server(reply) as port:
        code = f"""
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for n in (3000, 30000, 65000):
    d = bytes((i * 7 + 1) % 251 for i in range(n))
    s.sendto(d, ("host.cocoon.internal", {port}))
    print("sent", n, hashlib.sha256(d).hexdigest()[:16], "got", s.recv(200).decode())
"""
        out = guest_py(vm, code, "--rm", "--net", "public", "--allow", f"host:{port}/udp")
    for n in (3000, 30000, 65000):
        want = hashlib.sha256(bytes((i * 7 + 1) % 251 for i in range(n))).hexdigest()[:16]
        assert f"sent {n} {want} got {n} {want}" in out, out


def test_big_udp_datagram_fragmented(vm):
    """A relayed UDP datagram from the host bigger than the guest's MTU arrives whole,
    as IP fragments the guest reassembles. (The other way, the guest's own fragments
    are dropped: see the honest limits.)"""
    def reply(d):
        return (b"%d " % len(d)) + pattern(int(d.split()[0]))

    with udp_reply_server(reply) as port:
        code = f"""
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for n in (1000, 4000, 30000):
    s.sendto(b"%d " % n + b"x" * 1000, ("host.cocoon.internal", {port}))
    r = s.recv(65535)
    got, data = r.split(b" ", 1)
    print("size", n, int(got), len(data), hashlib.sha256(data).hexdigest()[:16])
"""
        out = guest_py(vm, code, "--rm", "--net", "public", "--allow", f"host:{port}/udp")
    for n in (1000, 4000, 30000):
        sent = len(b"%d " % n) + 1000
        want = hashlib.sha256(pattern(n)).hexdigest()[:16]
        assert f"size {n} {sent} {n} {want}" in out, out


def test_transfer_both_directions(vm, servers):
    port = servers.tcp()
    n = TRANSFER_MB << 20
    want = hashlib.sha256(pattern(n)).hexdigest()
    code = f"""
import hashlib, socket, time
n = {n}
t = time.time()
s = socket.create_connection(("host.cocoon.internal", {port}))
s.sendall(b"GET %d\\n" % n)
h, got = hashlib.sha256(), 0
while got < n:
    b = s.recv(1 << 18)
    if not b: break
    h.update(b); got += len(b)
dt_in = time.time() - t
print("in", got, h.hexdigest(), round(n / dt_in / 1e6, 1), "MB/s")
block = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(1 << 20 | 1))
t = time.time()
s = socket.create_connection(("host.cocoon.internal", {port}))
s.sendall(b"PUT %d\\n" % n)
sent = 0
while sent < n:
    chunk = block[: min(len(block), n - sent)]
    s.sendall(chunk); sent += len(chunk)
print("out", s.makefile().readline().strip(), round(n / (time.time() - t) / 1e6, 1), "MB/s")
"""
    out = guest_py(vm, code, "--rm", "--net", "public", "--allow", f"host:{port}", timeout=900)
    print(out)
    lines = dict((l.split()[0], l.split()[1:]) for l in out.splitlines() if l.split())
    assert lines["in"][0] == str(n) and lines["in"][1] == want, out
    assert lines["out"][0] == want, out


def test_200_concurrent_connections(vm, servers):
    port = servers.tcp()
    code = f"""
import socket
socks = []
for i in range(200):
    s = socket.create_connection(("host.cocoon.internal", {port}), timeout=30)
    s.sendall(b"ECHO\\n")
    socks.append(s)
for i, s in enumerate(socks):
    s.sendall(b"line %d\\n" % i)
ok = 0
for i, s in enumerate(socks):
    if s.makefile().readline() == "line %d\\n" % i:
        ok += 1
print("ok", ok)
"""
    out = guest_py(vm, code, "--rm", "--net", "public", "--allow", f"host:{port}")
    assert "ok 200" in out, out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_published_tcp_port(vm):
    hp = free_port()
    p = vm.popen("run", "--rm", "--net", "public", "-p", f"127.0.0.1:{hp}:8000", "--",
                 "sh", "-c", "cd /tmp && echo published > index.html && exec python3 -m http.server 8000",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body, deadline = None, time.time() + 120
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{hp}/index.html", timeout=5).read()
            except Exception:
                time.sleep(0.5)
        assert body == b"published\n", body
    finally:
        p.terminate()
        p.wait(60)


def test_published_udp_port(vm):
    hp = free_port()
    echo = ("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353))\n"
            "while True:\n d, a = s.recvfrom(2048); s.sendto(b'echo ' + d, a)")
    p = vm.popen("run", "--rm", "--net", "public", "-p", f"127.0.0.1:{hp}:5353/udp", "--", "python3", "-c", echo,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        got, deadline = None, time.time() + 120
        while time.time() < deadline and got is None:
            s.sendto(b"hi", ("127.0.0.1", hp))
            try:
                got = s.recv(100)
            except socket.timeout:
                pass
        assert got == b"echo hi", got
    finally:
        p.terminate()
        p.wait(60)


def test_bad_rules_are_refused(vm):
    r = vm.run("run", "--rm", "--net", "public", "--allow", "10.0.0.0/33", "--", "true")
    assert r.returncode != 0 and b"prefix" in r.stderr, r.stderr
    r = vm.run("run", "--rm", "--net", "none", "--allow", "example.com", "--", "true")
    assert r.returncode != 0 and b"--net public" in r.stderr, r.stderr


DNS_TCP = r"""
import socket, struct
def recvall(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def tcpq(name, server="10.0.2.3"):
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    try:
        s = socket.create_connection((server, 53), timeout=10)
        s.sendall(struct.pack("!H", len(q)) + q)
        r = recvall(s, struct.unpack("!H", recvall(s, 2))[0])
        s.close()
    except Exception as e:
        return "error " + type(e).__name__
    an = struct.unpack("!H", r[6:8])[0]
    return "rcode %d %s" % (r[3] & 15, socket.inet_ntoa(r[-4:]) if an else "-")
""" + GUEST_TCP_GET


def wait_stats(vm, box, pred, secs=15):
    import json
    st, deadline = None, time.time() + secs
    while time.time() < deadline:
        r = vm.run("stats", "--json", box)
        if r.returncode == 0:
            st = json.loads(decode(r.stdout))
            if st.get("net") and pred(st["net"]):
                return st
        time.sleep(0.5)
    return st


def test_dns_over_tcp_logs_and_stats(vm, servers):
    """DNS over TCP to our resolver (and to a foreign resolver address, intercepted);
    denials show in `cocoon logs --net` with their rule and in `cocoon stats`."""
    dport = servers.dns({"good.test": ["93.184.216.34"], "bad.test": ["93.184.216.35"]})
    port = servers.tcp()
    env = {"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}"}
    box = decode(vm.run("run", "-d", "--net", "public", "--deny", "bad.test", "--allow", f"host:{port}",
                        env=env, check=0).stdout).strip()
    try:
        code = DNS_TCP + f"""
print("good", tcpq("good.test"))
print("bad", tcpq("bad.test"))
print("foreign", tcpq("good.test", "8.8.8.8"))
print("foreignbad", tcpq("bad.test", "8.8.8.8"))
print("alias", tcpq("host.cocoon.internal"))
print("meta", tcp_get("169.254.169.254", 80))
print("host", tcp_get("host.cocoon.internal", {port}))
"""
        r = vm.run("exec", box, "--", "python3", "-c", code, check=0)
        out = decode(r.stdout)
        assert "good rcode 0 93.184.216.34" in out, out
        assert "bad rcode 5 -" in out, out  # REFUSED
        assert "foreign rcode 0 93.184.216.34" in out, out  # answered by our resolver
        assert "foreignbad rcode 5 -" in out, out
        assert "alias rcode 0 10.0.2.2" in out, out
        assert "meta error ConnectionRefusedError" in out, out
        assert "host hello from the host" in out, out
        log = decode(vm.run("logs", "--net", box, check=0).stdout)
        assert 'dns/tcp bad.test' in log and 'rule="deny bad.test"' in log, log
        assert "169.254.169.254:80" in log and "not a public address" in log, log
        st = wait_stats(vm, box, lambda n: n["denied"]["dns"] >= 2 and n["denied"]["tcp"] >= 1)
        net = st["net"]
        assert net["denied"]["dns"] >= 2 and net["denied"]["tcp"] >= 1, st
        assert net["denied"]["total"] >= 3 and net["tcp_connections"] >= 6 and net["dns_queries"] >= 5, st
        text = decode(vm.run("stats", box, check=0).stdout)
        assert "denied" in text and "cocoon logs --net" in text, text
    finally:
        vm.run("rm", "-f", box)


FLOOD = GUEST_CSUM + r"""
import os, random, socket, struct, time
def ip4(a): return socket.inet_aton(a)
src = "10.0.2.15"
# learn the gateway's MAC with one ordinary connection
print("before", tcp_get("host.cocoon.internal", PORT))
gw = None
for line in open("/proc/net/arp").read().splitlines()[1:]:
    f = line.split()
    if f[0] == "10.0.2.2": gw = bytes.fromhex(f[3].replace(":", ""))
me = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
p.bind(("eth0", 0))
def syn(dst, dport, sport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6, 0, ip4(src), ip4(dst))
    iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
    return gw + me + b"\x08\x00" + iph + tcp
n = sent = 0
t = time.time()
while time.time() - t < SECS:
    n += 1
    if n % 10 == 0:
        fr = syn("10.0.2.2", PORT, random.randint(1024, 65535))
    elif n % 10 < 5:
        fr = syn("169.254.169.254", 80, random.randint(1024, 65535))
    else:  # garbage: random ethertype / truncated or corrupt IPv4 / random bytes
        k = n % 5
        body = os.urandom(random.randint(0, 1500))
        if k == 0: fr = gw + me + b"\x08\x00" + body
        elif k == 1: fr = gw + me + b"\x08\x00" + b"\x4f" + body[:30]
        elif k == 2: fr = gw + me + b"\x08\x06" + body[:40]
        elif k == 3: fr = gw + me + os.urandom(2) + body
        else: fr = syn("10.0.2.2", PORT, 1234)[:random.randint(14, 54)]
    try:
        p.send(fr); sent += 1
    except OSError:
        pass
print("sent", sent)
time.sleep(1)
print("after", tcp_get("host.cocoon.internal", PORT))
"""


def test_flood_and_garbage_frames(vm, servers):
    """A guest flooding SYNs and sending malformed frames: its stack keeps working and
    another box is unaffected."""
    port = servers.tcp()
    a = decode(vm.run("run", "-d", "--net", "public", "--allow", f"host:{port}", check=0).stdout).strip()
    b = decode(vm.run("run", "-d", "--net", "public", "--allow", f"host:{port}", check=0).stdout).strip()
    try:
        code = DNS_TCP + FLOOD.replace("PORT", str(port)).replace("SECS", "5")
        flood = vm.popen("exec", a, "--", "python3", "-c", code)
        # box b works while a floods
        probe = DNS_TCP + f"""
import time
ok = 0
for i in range(5):
    ok += tcp_get("host.cocoon.internal", {port}) == "hello from the host"
    time.sleep(0.5)
print("ok", ok)
"""
        out_b = decode(vm.run("exec", b, "--", "python3", "-c", probe, check=0).stdout)
        out, err = flood.communicate(timeout=240)
        out = decode(out)
        assert flood.returncode == 0, (out, decode(err))
        assert "before hello from the host" in out, out
        assert "after hello from the host" in out, out
        assert int(out.split("sent")[1].split()[0]) > 1000, out
        assert "ok 5" in out_b, out_b
        # the flooded box still does ordinary work
        again = decode(vm.run("exec", a, "--", "python3", "-c", probe, check=0).stdout)
        assert "ok 5" in again, again
        st = wait_stats(vm, a, lambda n: n["dropped_malformed"] > 0 and n["denied"]["tcp"] > 0)
        assert st["net"]["dropped_malformed"] > 0 and st["net"]["denied"]["tcp"] > 100, st
    finally:
        vm.run("rm", "-f", a)
        vm.run("rm", "-f", b)


DENY_SEQ = r"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(COUNT):
    s.sendto(b"x", ("10.9.9.9", 1000 + i))  # not public: one denial (and one log line) each
    if i % 4 == 3:
        time.sleep(0.25)
print("sent", COUNT)
"""


def _denied_ports(text):
    return [int(l.split("-> 10.9.9.9:")[1].split()[0]) - 1000 for l in text.splitlines() if "-> 10.9.9.9:" in l]


def test_net_log_rotation(vm):
    """net.log is rotated to net.log.1 above its bound (COCOON_NET_LOG_MAX): the latest
    denials are kept, disk use stays bounded, `cocoon logs --net` shows the old part
    first, and `cocoon logs --net -f` keeps following across rotations."""
    n, bound = 160, 4096  # about 100 bytes a line: a rotation every ~40 denials
    box = decode(vm.run("run", "-d", "--net", "public", env={"COCOON_NET_LOG_MAX": str(bound)}, check=0).stdout).strip()
    follower = None
    try:
        follower = vm.popen("logs", "--net", "-f", box)
        time.sleep(1)  # the follower is reading before the first denial
        out = decode(vm.run("exec", box, "--", "python3", "-c", DENY_SEQ.replace("COUNT", str(n)), check=0).stdout)
        assert f"sent {n}" in out, out
        log, deadline = "", time.time() + 60
        while time.time() < deadline:
            log = decode(vm.run("logs", "--net", box, check=0).stdout)
            if _denied_ports(log)[-1:] == [n - 1]:
                break
            time.sleep(0.5)
        seen = _denied_ports(log)
        # the whole log: the latest denials, oldest first, each once; the first ones rotated away
        assert seen and seen[-1] == n - 1 and 0 not in seen, log
        assert seen == list(range(seen[0], n)), seen
        d = os.path.join(vm.boxes_dir(), vm.box_dirs()[0])  # the only box
        sizes = [os.path.getsize(os.path.join(d, f)) for f in ("net.log", "net.log.1")]
        assert all(0 < z <= bound for z in sizes), sizes
        st = wait_stats(vm, box, lambda ns: ns["log_rotations"] >= 2 and ns["denied"]["udp"] >= n)
        assert st and st["net"]["log_rotations"] >= 2 and st["net"]["denied"]["udp"] >= n, st  # `cocoon stats` too
        vm.run("stop", box, check=0)  # the follower reads to the end, then exits
        fout, ferr = follower.communicate(timeout=120)
        follower = None
        fseen = _denied_ports(decode(fout))
        # following across rotations: in order, nothing twice, up to the latest, and
        # more than the two files could hold at any one time
        assert fseen and fseen[-1] == n - 1, decode(fout)
        assert fseen == sorted(set(fseen)), fseen
        assert len(fseen) > 2 * bound // 90, (len(fseen), decode(fout))
    finally:
        if follower:
            follower.kill()
            follower.communicate()
        vm.run("rm", "-f", box)


def test_ping_gateway(vm):
    code = GUEST_CSUM + r"""
import socket, struct, os
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
payload = b"cocoon-ping" * 4
pkt = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + payload
pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
s.sendto(pkt, ("10.0.2.2", 0))
while True:
    r = s.recv(2048)
    ihl = (r[0] & 15) * 4
    t, code, _, ident, seq = struct.unpack("!BBHHH", r[ihl:ihl + 8])
    if t == 0:
        print("reply", socket.inet_ntoa(r[12:16]), ident == 0x4242, seq, r[ihl + 8:] == payload)
        break
"""
    out = guest_py(vm, code, "--rm", "--net", "public")
    assert "reply 10.0.2.2 True 1 True" in out, out


# ---- domain pinning and SNI against a TLS server in a network namespace ----
#
# The namespace (cocoon-t-PID) is the only place this traffic goes: a veth pair with
# 203.0.113.1/24 on the host side and 203.0.113.10/24 inside, a python TLS server on
# :443 (self-signed, CN=allowed.example) and a plain TCP server on :8080 in it. The
# test resolver answers allowed.example and other.example with 203.0.113.10.
#
# 203.0.113.0/24 is TEST-NET-3, which `--net public` rightly treats as not public:
# its DNS answers are stripped there (rebinding protection) and it is unreachable. So
# the boxes run `--net open` (nothing stripped) with explicit rules standing in for
# "a public address": `--allow allowed.example --deny 203.0.113.0/24` (first match
# wins: a pinned address passes the domain rule, anything else hits the deny), and,
# for the fronting case, `--allow allowed.example` alone (the address is otherwise
# allowed, as a public address is in public mode, so only the SNI check refuses).

NS_ADDR, NS_HOST = "203.0.113.10", "203.0.113.1"

NS_SERVER = r"""
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
seen = threading.local()  # the ClientHello's server name, as the server saw it
def on_sni(sock, name, c):
    seen.name = name
ctx.sni_callback = on_sni
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[3], port))
    s.listen(64)
    return s
def tls_conn(c):
    seen.name = None
    try:
        with ctx.wrap_socket(c, server_side=True) as t:
            t.sendall(b"hello tls " + (seen.name or "-").encode() + b"\n")
            t.recv(10)
    except Exception:
        c.close()
def plain_conn(c):
    with c:
        c.sendall(b"hello plain\n")
def loop(s, fn):
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
tls, plain = listen(443), listen(8080)
threading.Thread(target=loop, args=(plain, plain_conn), daemon=True).start()
print("ready", flush=True)
loop(tls, tls_conn)
"""

NS_CLIENT = r"""
import socket, ssl
def resolve(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 443, socket.AF_INET)})
    except socket.gaierror as e:
        return "error %s" % e.errno
def tls(ip, sni):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        s = socket.create_connection((ip, 443), timeout=15)
        t = ctx.wrap_socket(s, server_hostname=sni)
        line = t.recv(100).decode().strip()
        t.close()
        return "ok " + line
    except Exception as e:
        return "error " + type(e).__name__
def plain(ip, port=8080):
    try:
        s = socket.create_connection((ip, port), timeout=15)
        line = s.recv(100).decode().strip()
        s.close()
        return "ok " + line
    except Exception as e:
        return "error " + type(e).__name__
"""


def _sh(*cmd, check=True):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check, timeout=60)


@pytest.fixture
def tls_netns(tmp_path):
    """A network namespace with a TLS server on 203.0.113.10:443 and a plain one on
    :8080; everything removed afterwards."""
    import shutil
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("openssl"):
        pytest.skip("skipped: needs root, ip and openssl to create a network namespace")
    ns = f"cocoon-t-{os.getpid()}"
    veth = f"cct{os.getpid() % 100000}"
    r = _sh("ip", "netns", "add", ns, check=False)
    if r.returncode:
        pytest.skip(f"skipped: ip netns add is impossible here: {decode(r.stderr).strip()}")
    server = None
    try:
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        _sh("ip", "link", "set", veth + "n", "netns", ns)
        _sh("ip", "addr", "add", f"{NS_HOST}/24", "dev", veth)
        _sh("ip", "link", "set", veth, "up")
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NS_ADDR}/24", "dev", veth + "n")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", veth + "n", "up")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        cert, key, script = (str(tmp_path / n) for n in ("cert.pem", "key.pem", "server.py"))
        _sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=allowed.example",
            "-days", "1", "-keyout", key, "-out", cert)
        with open(script, "w") as f:
            f.write(NS_SERVER)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", script, cert, key, NS_ADDR],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert server.stdout.readline().strip() == b"ready", decode(server.stderr.read())
        yield ns
    finally:
        if server:
            server.kill()
            server.wait(10)
        _sh("ip", "link", "del", veth, check=False)  # removes the peer in the namespace too
        _sh("ip", "netns", "del", ns, check=False)


def test_domain_pinning_and_sni(vm, servers, tls_netns):
    """--allow DOMAIN holds at the IP level: a pinned address with the right SNI passes
    (TLS and plain TCP), another SNI on the same address (domain fronting) is reset,
    and a box that never resolved the name cannot reach the address at all."""
    dport = servers.dns({"allowed.example": [NS_ADDR], "other.example": [NS_ADDR]})
    env = {"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}"}
    rules = ["--net", "open", "--allow", "allowed.example", "--deny", "203.0.113.0/24"]
    a = decode(vm.run("run", "-d", *rules, env=env, check=0).stdout).strip()
    b = decode(vm.run("run", "-d", *rules, env=env, check=0).stdout).strip()
    c = decode(vm.run("run", "-d", "--net", "open", "--allow", "allowed.example", env=env, check=0).stdout).strip()
    try:
        # (c) box b never resolved allowed.example: the address is not pinned
        out = decode(vm.run("exec", b, "--", "python3", "-c", NS_CLIENT + f"""
print("direct-tls", tls("{NS_ADDR}", "allowed.example"))
print("direct-plain", plain("{NS_ADDR}"))
""", check=0).stdout)
        assert "direct-tls error ConnectionRefusedError" in out, out
        assert "direct-plain error ConnectionRefusedError" in out, out
        log = decode(vm.run("logs", "--net", b, check=0).stdout)
        assert f"deny tcp 10.0.2.15:" in log and f"{NS_ADDR}:443" in log and f"{NS_ADDR}:8080" in log, log
        assert 'rule="deny 203.0.113.0/24"' in log, log

        # (a) resolve, then TLS with the matching SNI; (d) plain TCP to the pinned address;
        # (b) the same pinned address with another SNI (resolved too, but not allowed)
        out = decode(vm.run("exec", a, "--", "python3", "-c", NS_CLIENT + f"""
print("resolve", resolve("allowed.example"), resolve("other.example"))
print("good", tls("{NS_ADDR}", "allowed.example"))
print("plain", plain("{NS_ADDR}"))
print("fronted", tls("{NS_ADDR}", "other.example"))
print("nosni", tls("{NS_ADDR}", None))
print("good-again", tls("{NS_ADDR}", "allowed.example"))
""", check=0).stdout)
        assert f"resolve ['{NS_ADDR}'] ['{NS_ADDR}']" in out, out
        assert "good ok hello tls allowed.example" in out, out
        assert "good-again ok hello tls allowed.example" in out, out
        assert "plain ok hello plain" in out, out
        assert "fronted error" in out and "fronted ok" not in out, out
        assert "nosni error" in out and "nosni ok" not in out, out
        log = decode(vm.run("logs", "--net", a, check=0).stdout)
        assert f"deny tls 10.0.2.15:" in log and f"{NS_ADDR}:443" in log, log
        assert 'rule="deny 203.0.113.0/24"' in log, log  # other.example's pin is no allow rule's
        assert 'rule="TLS without a server name on a domain rule"' in log, log

        # (b) domain fronting where the address is otherwise allowed (like a public
        # address in public mode): only the SNI check stands in the way
        out = decode(vm.run("exec", c, "--", "python3", "-c", NS_CLIENT + f"""
print("resolve", resolve("allowed.example"))
print("good", tls("{NS_ADDR}", "allowed.example"))
print("fronted", tls("{NS_ADDR}", "other.example"))
""", check=0).stdout)
        assert "good ok hello tls allowed.example" in out, out
        assert "fronted error" in out and "fronted ok" not in out, out
        log = decode(vm.run("logs", "--net", c, check=0).stdout)
        assert "deny tls" in log and "TLS server name does not match" in log, log
        st = wait_stats(vm, c, lambda n: n["denied"]["tls"] >= 1)
        assert st and st["net"]["denied"]["tls"] >= 1, st
    finally:
        for box in (a, b, c):
            vm.run("rm", "-f", box)


def test_domain_rule_on_reserved_range_public_mode(vm, servers, tls_netns):
    """In --net public a domain rule does not open a reserved range: the answer
    203.0.113.10 (TEST-NET-3) is stripped, nothing is pinned, the address is refused."""
    dport = servers.dns({"allowed.example": [NS_ADDR]})
    out = guest_py(vm, NS_CLIENT + f"""
print("resolve", resolve("allowed.example"))
print("tls", tls("{NS_ADDR}", "allowed.example"))
""", "--rm", "--net", "public", "--allow", "allowed.example", env={"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}"})
    assert f"resolve ['{NS_ADDR}']" not in out and "tls error ConnectionRefusedError" in out, out


# ---- ICMP echo relayed through an unprivileged ICMP socket, in a network namespace ----
#
# The stack relays a guest's ping with socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP),
# which the kernel allows only to groups in net.ipv4.ping_group_range (per network
# namespace; this host may well have "1 0", nobody). So the box's monitor runs inside
# a namespace the test creates (`ip netns exec NS cocoon run ...`: the CLI starts the
# monitor and QEMU there), with the sysctl set in that namespace only, and its
# loopback holding 198.51.100.1 and .2 (TEST-NET-2) for the pings to reach (the
# kernel here has no dummy interfaces).

PING = GUEST_CSUM + r"""
import socket, struct, time
def ping(dst, wait, ident=0x4343):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.5)
    payload = b"cocoon-ping-out" * 3
    pkt = struct.pack("!BBHHH", 8, 0, 0, ident, 7) + payload
    pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
    end = time.time() + wait
    s.sendto(pkt, (dst, 0))
    while time.time() < end:
        try:
            r = s.recv(2048)
        except socket.timeout:
            continue
        ihl = (r[0] & 15) * 4
        t, _, _, i, seq = struct.unpack("!BBHHH", r[ihl:ihl + 8])
        if t == 0 and socket.inet_ntoa(r[12:16]) == dst:
            return "reply %s %s" % (i == ident and seq == 7, r[ihl + 8:] == payload)
    return "none"
"""


@pytest.fixture
def ping_netns():
    """A network namespace where unprivileged ICMP sockets are allowed, holding
    198.51.100.1 and 198.51.100.2; yields a function that runs a command in it."""
    import shutil
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("skipped: needs root and ip to create a network namespace")
    ns = f"cocoon-p-{os.getpid()}"
    r = _sh("ip", "netns", "add", ns, check=False)
    if r.returncode:
        pytest.skip(f"skipped: ip netns add is impossible here: {decode(r.stderr).strip()}")
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"],
                    ["ip", "addr", "add", "198.51.100.2/32", "dev", "lo"],
                    ["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]):
            _sh("ip", "netns", "exec", ns, *cmd)
        yield ns
    finally:
        _sh("ip", "netns", "del", ns, check=False)


def ns_cocoon(vm, ns, *args, env=None, timeout=180):
    """`cocoon ARGS` run inside network namespace ns (the monitor it starts stays there)."""
    cmd = ["ip", "netns", "exec", ns, COCOON, *vm._args(args)]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=vm._env(env), timeout=timeout)
    return r


def ns_pings(vm, ns, rules, pings):
    """Starts a box in namespace ns with --net public and rules, runs PING's program
    with pings (its print lines) in it and removes it: (exec result, stdout, net.log)."""
    r = ns_cocoon(vm, ns, "run", "-d", "--net", "public", *rules)
    assert r.returncode == 0, decode(r.stderr)
    box = decode(r.stdout).strip()
    try:
        r = ns_cocoon(vm, ns, "exec", box, "--", "python3", "-c", PING + pings)
        return r, decode(r.stdout), decode(ns_cocoon(vm, ns, "logs", "--net", box).stdout)
    finally:
        ns_cocoon(vm, ns, "rm", "-f", box)


def test_ping_outside_in_netns(vm, ping_netns):
    """With ICMP sockets allowed, a ping to an allowed destination gets its reply and a
    denied one gets none, logged with its rule; where they are not allowed, net.log
    explains it once, naming the sysctl."""
    ns = ping_netns
    r, out, log = ns_pings(vm, ns, ["--allow", "198.51.100.1", "--deny", "198.51.100.2"], """
print("allowed", ping("198.51.100.1", 15))
print("allowed-again", ping("198.51.100.1", 15))
print("denied", ping("198.51.100.2", 3))
""")
    assert r.returncode == 0, (out, decode(r.stderr))
    assert "allowed reply True True" in out, out
    assert "allowed-again reply True True" in out, out
    assert "denied none" in out, out
    assert 'deny icmp 10.0.2.15:0 -> 198.51.100.2:0 rule="deny 198.51.100.2"' in log, log
    assert "198.51.100.1" not in log and "ping_group_range" not in log, log

    # the same namespace with ICMP sockets not allowed: no reply, and the reason once
    _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    r, out, log = ns_pings(vm, ns, ["--allow", "198.51.100.1"], """
print("first", ping("198.51.100.1", 3))
print("second", ping("198.51.100.1", 3))
print("gateway", ping("10.0.2.2", 15))
""")
    assert "first none" in out and "second none" in out, out
    assert "gateway reply True True" in out, out
    assert sum("ping_group_range" in line for line in log.splitlines()) == 1, log  # once, for two pings
    assert 'icmp echo to 198.51.100.1 is allowed but not relayed' in log, log
    assert 'sysctl net.ipv4.ping_group_range="1 0" does not include group 0' in log, log
    assert 'sysctl -w net.ipv4.ping_group_range="0 0"' in log, log


# ---- descriptors: a monitor started with a low RLIMIT_NOFILE ----

def run_nofile(vm, nofile, *args, timeout=180):
    """`cocoon ARGS` with RLIMIT_NOFILE nofile (soft and hard): a box it starts gets a
    monitor (and QEMU) that cannot raise it."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    p = subprocess.run([COCOON, *vm._args(args)], env=vm.env, preexec_fn=limit, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert p.returncode == 0, decode(p.stderr)
    return decode(p.stdout).strip()


def box_dir(vm, box):
    for d in vm.box_dirs():
        if d.startswith(box[:12]):
            return os.path.join(vm.boxes_dir(), d)
    raise AssertionError(f"no directory for box {box}")


def monitor_pid(vm, box):
    with open(os.path.join(box_dir(vm, box), "vmm.pid")) as f:
        return int(f.read().split()[0])


def cpu_and_log_growth(vm, box, secs=3.0):
    """The monitor's CPU use (fraction of one core) and vmm.log's growth (bytes) over
    secs: a spinning event loop shows as ~1.0 and a line per pass."""
    pid, log = monitor_pid(vm, box), os.path.join(box_dir(vm, box), "vmm.log")

    def cpu():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

    c0, s0, t0 = cpu(), os.path.getsize(log), time.monotonic()
    time.sleep(secs)
    c1, s1, t1 = cpu(), os.path.getsize(log), time.monotonic()
    return (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0), s1 - s0


def nofile_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def copy_round_trip(vm, box, tmp_path):
    """cocoon cp in and out of the box; returns (ok, message) within bounded time."""
    src, back = tmp_path / "in.bin", tmp_path / "back.bin"
    src.write_bytes(os.urandom(200000))
    r = vm.run("cp", str(src), f"{box}:/tmp/in.bin", timeout=60)
    if r.returncode != 0:
        return False, decode(r.stderr)
    r = vm.run("cp", f"{box}:/tmp/in.bin", str(back), timeout=60)
    if r.returncode != 0:
        return False, decode(r.stderr)
    return back.read_bytes() == src.read_bytes(), "copied"


HOLD_CONNECTIONS = r"""
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
socks, refused, other = [], 0, 0
for i in range(COUNT):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("host.cocoon.internal", PORT))
        socks.append(s)
    except ConnectionRefusedError:
        refused += 1
        s.close()
    except OSError:
        other += 1
        s.close()
print("opened", len(socks), "refused", refused, "other", other, flush=True)
sys.stdin.read()  # hold them until the test closes our stdin
"""


def test_guest_connections_within_the_monitors_descriptors(vm, tmp_path):
    """A monitor with RLIMIT_NOFILE 512 (it cannot raise it) and a guest opening 700
    connections to an allowed host port: the stack's caps leave the monitor its
    reserve, so `cocoon exec` and `cocoon cp` keep working, the monitor does not spin
    and vmm.log does not grow."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(4096)  # connections complete in the backlog: no descriptor of ours each
    port = sink.getsockname()[1]
    box = run_nofile(vm, 512, "run", "-d", "--net", "public", "--allow", f"host:{port}")
    holder = None
    try:
        if vm.backend == "qemu":
            assert nofile_of(monitor_pid(vm, box)) == 512
        code = HOLD_CONNECTIONS.replace("COUNT", "700").replace("PORT", str(port))
        holder = vm.popen("exec", "-i", box, "--", "python3", "-c", code, stdin=subprocess.PIPE)
        line = decode(holder.stdout.readline())
        assert line.startswith("opened"), line
        opened, refused = int(line.split()[1]), int(line.split()[3])
        assert 0 < opened < 512 - 320 and refused > 0, line  # capped under the limit minus the reserve
        r = vm.run("exec", box, "--", "echo", "alive", timeout=60)
        assert r.returncode == 0 and decode(r.stdout).strip() == "alive", decode(r.stderr)
        assert r.elapsed < 30, r.elapsed
        ok, msg = copy_round_trip(vm, box, tmp_path)
        assert ok, msg
        cpu, grew = cpu_and_log_growth(vm, box)
        assert cpu < 0.5, cpu  # a spin detector, not a speed test
        assert grew < 2000, grew
        net_log = open(os.path.join(box_dir(vm, box), "net.log")).read()
        vmm_log = open(os.path.join(box_dir(vm, box), "vmm.log")).read()
        if vm.backend == "qemu":
            assert "RLIMIT_NOFILE is 512" in net_log, net_log
            assert "at most %d TCP connections" % opened in vmm_log, vmm_log[-3000:]
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(60)
        vm.run("rm", "-f", box)
        sink.close()


def ctl_connect(vm, box):
    """A raw control connection (ctl.sock through the box directory's descriptor: the
    path may be too long for a unix socket address)."""
    d = os.open(box_dir(vm, box), os.O_PATH | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(f"/proc/self/fd/{d}/ctl.sock")
    finally:
        os.close(d)
    return s


def test_control_clients_beyond_the_descriptors(vm, tmp_path):
    """Control connections that use up the monitor's descriptors (RLIMIT_NOFILE 96):
    the next client gets a clear error at once (never a hang), the monitor backs off
    instead of spinning on its listener and says so once in vmm.log; when descriptors
    free up, clients are served again."""
    box = run_nofile(vm, 96, "run", "-d", "--net", "public")
    held = []
    try:
        for _ in range(120):
            s = ctl_connect(vm, box)
            held.append(s)
            try:
                s.recv(1)  # VMM_HELLO when accepted; the refusal's ERROR (or EOF) when not
            except socket.timeout:
                pytest.fail("a control client got neither a greeting nor an error in 10 s")
        r = vm.run("exec", box, "--", "echo", "alive", timeout=60)
        assert r.returncode != 0 and "out of file descriptors" in decode(r.stderr), (r.returncode, decode(r.stderr))
        assert r.elapsed < 10, r.elapsed
        ok, msg = copy_round_trip(vm, box, tmp_path)
        assert not ok and "out of file descriptors" in msg, msg
        cpu, grew = cpu_and_log_growth(vm, box)
        assert cpu < 0.5, cpu
        assert grew < 2000, grew
        vmm_log = open(os.path.join(box_dir(vm, box), "vmm.log")).read()
        assert vmm_log.count("control clients are refused for now") == 1, vmm_log[-3000:]
        for s in held:
            s.close()
        held = []
        deadline, r = time.time() + 10, None
        while time.time() < deadline:
            r = vm.run("exec", box, "--", "echo", "alive", timeout=60)
            if r.returncode == 0:
                break
            time.sleep(0.3)
        assert r.returncode == 0 and decode(r.stdout).strip() == "alive", decode(r.stderr)
    finally:
        for s in held:
            s.close()
        vm.run("rm", "-f", box)
