"""`cocoon serve` (cocoon-serve) on real boxes: who may talk to it (the unix socket 0600,
a bearer token on TCP, TLS), that it shares boxes with the CLI and loses nothing when it
restarts, the box and execution routes (lazy start, create-time defaults, timeouts, kill,
signals, stdin, run to completion with its limits and binary output, Idempotency-Key,
pages and the status filter), the access log, and that bad requests get a clear 4xx in
the error envelope and change nothing. The tests of this module share one home, one
server and two boxes (module-scoped fixtures) to keep the boots few; they run in file
order. Requests go through serve_client's client; the server is started here (its
default socket in the home, restarts on the same socket, a kill)."""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Cocoon, decode, leftover_problems, vm_missing_reason
from serve_client import SERVE, ServeClient, free_port

# Seconds a request may take when it boots a box (TCG on two shared cores): a bound
# against hangs, not a speed check.
BOOT_S = 300
REQUEST_S = 120


# ---- the client: serve_client's, with TLS and a few shorthands ----------------------

class Api(ServeClient):
    """serve_client.ServeClient, also over TLS (tls: an ssl context), with get/post/delete
    and call(), which takes a JSON body as a dict or list and a raw one as bytes or str."""

    def __init__(self, socket_path=None, host=None, port=None, token=None, tls=None, timeout=REQUEST_S):
        super().__init__(socket_path=socket_path, host=host, port=port, token=token, timeout=timeout)
        self.tls = tls

    def connection(self, timeout=None):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, context=self.tls,
                                               timeout=self.timeout if timeout is None else timeout)
        return super().connection(timeout)

    def call(self, method, path, body=None, headers=None, timeout=None):
        if isinstance(body, (dict, list)):
            return self.request(method, path, json=body, headers=headers, timeout=timeout)
        return self.request(method, path, body=body, headers=headers, timeout=timeout)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def stream(self, path, timeout=None):
        """GET path, answered 200 with a streamed body: (connection, response)."""
        conn, r = self.open("GET", path, timeout=timeout)
        if r.status != 200:
            conn.close()
            raise AssertionError(f"GET {path}: {r.status} {r.read()[:600]!r}")
        return conn, r


def read_ndjson(r):
    """The NDJSON lines of a streamed response up to its end: (stdout, stderr, exit line)."""
    out, err, end = bytearray(), bytearray(), None
    for line in iter(r.readline, b""):
        msg = json.loads(line)
        assert end is None, f"a line after the exit line: {msg}"
        if msg["type"] == "stdout":
            out += base64.b64decode(msg["data"])
        elif msg["type"] == "stderr":
            err += base64.b64decode(msg["data"])
        elif msg["type"] == "exit":
            end = msg
        else:
            assert msg["type"] == "keepalive", msg
    assert end is not None, "the stream ended without an exit line"
    return bytes(out), bytes(err), end


def assert_error(reply, status, code=None, *words):
    """A 4xx/5xx in the API's error envelope, with a message naming words."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
    body = json.loads(reply.body)  # valid JSON, valid UTF-8
    err = body["error"]
    assert set(err) >= {"message", "type", "code"}, body
    assert isinstance(err["message"], str) and err["message"].strip(), body
    assert isinstance(err["type"], str) and isinstance(err["code"], str), body
    if code:
        assert err["code"] == code, body
    for w in words:
        assert w.lower() in err["message"].lower(), f"{w!r} not in {err['message']!r}"
    return err["message"]


# ---- the server -------------------------------------------------------------------

class Server:
    """cocoon-serve for a home, with its access log and stderr in files of the test's
    directory. The arguments stay for restarts."""

    def __init__(self, c, *args, socket_path=None):
        self.c = c
        self.args = list(args)
        self.socket = socket_path or os.path.join(c.home, "cocoon.sock")
        if socket_path:
            self.args += ["--socket", socket_path]
        self.access_log = os.path.join(str(c.tmp_path), "access.log")
        self.stderr_path = os.path.join(str(c.tmp_path), "serve.stderr")
        self.proc = None

    def command(self, *extra):
        return [SERVE, "--log-file", self.access_log, *self.args, *extra]

    def start(self, timeout=60):
        with open(self.stderr_path, "ab") as errf:
            start_at = errf.tell()
            self.proc = subprocess.Popen(self.command(), env=self.c.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf)
        listeners = ("--socket" not in self.args or self.socket != "none") + ("--listen" in self.args)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()[start_at:]
            if text.count("listening on ") >= listeners:
                return self
            if self.proc.poll() is not None:
                pytest.fail(f"cocoon-serve exited {self.proc.returncode}: {text}")
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"cocoon-serve did not listen within {timeout} s: {self.stderr()[start_at:]}")

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("cocoon-serve did not stop within 30 s of SIGTERM")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    @property
    def client(self):
        return Api(socket_path=self.socket)

    def log_lines(self):
        with open(self.access_log, errors="replace") as f:
            return f.read().splitlines()


def run_serve(c, *args, timeout=30):
    """cocoon-serve that is expected to refuse to start: its CompletedProcess."""
    p = subprocess.run([SERVE, "--log-file", "none", *args], env=c.env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    p.text = decode(p.stderr)
    return p


def box_table(c):
    """The boxes as the CLI sees them: (id, name, status), sorted."""
    r = c.run("ls", "-a", "--json", check=0)
    return sorted((b["id"], b["name"], b["status"]) for b in json.loads(r.stdout))


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.2)


# ---- execution helpers ------------------------------------------------------------

def start_exec(api, box, body, timeout=BOOT_S):
    r = api.post(f"/v1/boxes/{box}/exec", body, timeout=timeout)
    assert r.status == 201, r
    return r.json["execution_id"]


def exec_output(api, box, eid, timeout=REQUEST_S):
    conn, r = api.stream(f"/v1/boxes/{box}/executions/{eid}/output", timeout=timeout)
    try:
        return read_ndjson(r)
    finally:
        conn.close()


def exec_info(api, box, eid):
    r = api.get(f"/v1/boxes/{box}/executions/{eid}")
    assert r.status == 200, r
    return r.json


def wait_exec_done(api, box, eid, timeout=REQUEST_S):
    return wait_for(lambda: (lambda i: i if i["status"] != "running" else None)(exec_info(api, box, eid)),
                    timeout, f"execution {eid} to end")


def run(api, box, body, timeout=BOOT_S):
    r = api.post(f"/v1/boxes/{box}/run", body, timeout=timeout)
    assert r.status == 200, r
    return r.json


def sh(api, box, script, **extra):
    return run(api, box, {"command": "sh", "args": ["-c", script], **extra})


def guest_processes(api, box):
    return sh(api, box, "ps -eo args")["stdout"]


# ---- fixtures ---------------------------------------------------------------------

def module_home(tmp_path_factory, name, asan_options=""):
    """A home for one module's fixture (a generator): skipped without guest artefacts;
    at the end every box in it is removed, pass or fail, and nothing of it may be left
    running or have written a sanitizer report."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")
    assert os.access(SERVE, os.X_OK), f"{SERVE} is not built (make all)"
    tmp = tmp_path_factory.mktemp(name)
    os.makedirs(tmp / "home", mode=0o700)
    c = Cocoon(str(tmp / "home"), tmp)
    c.env["ASAN_OPTIONS"] = c.env.get("ASAN_OPTIONS", "") + asan_options
    yield c
    boxes = json.loads(c.run("ls", "-a", "--json").stdout or b"[]")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: c.run("rm", "-f", b["id"]), boxes))
    problems = leftover_problems(c)
    assert not problems, "\n".join(problems)


def module_server(c):
    """The server of one module's fixture (a generator): it must stop cleanly."""
    s = Server(c).start()
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    yield from module_home(tmp_path_factory, "serve")


@pytest.fixture(scope="module")
def server(home):
    yield from module_server(home)


@pytest.fixture(scope="module")
def api(server):
    return server.client


@pytest.fixture(scope="module")
def dev(api):
    """A box made over the API with create-time env and working directory; booted by
    the first exec (lazy start)."""
    r = api.post("/v1/boxes", {"name": "dev", "memory_mib": 256, "working_dir": "/tmp",
                               "env": {"FOO": "from-create", "BAR": "create-bar"}, "labels": {"team": "qa"}})
    assert r.status == 201, r
    return "dev"


@pytest.fixture(scope="module")
def clibox(home):
    """A box made by the CLI, never started (bad requests must not boot it)."""
    home.run("create", "--name", "clibox", "--memory", "128M", check=0)
    return "clibox"


# ---- who may talk to the server ---------------------------------------------------

def test_unix_socket_is_private_and_needs_no_token(server, api):
    st = os.lstat(server.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    cfg = api.get("/v1/config")
    assert cfg.status == 200 and cfg.json["auth_required"] is False, cfg
    r = api.get("/v1/boxes")
    assert r.status == 200 and "boxes" in r.json, r


def test_tcp_needs_the_bearer_token(cocoon):
    if vm_missing_reason():
        pytest.skip(f"skipped: {vm_missing_reason()}")
    cocoon.run("create", "--name", "keep", "--memory", "128M", check=0)
    port = free_port()
    srv = Server(cocoon, "--listen", f"127.0.0.1:{port}").start()
    try:
        token_file = os.path.join(cocoon.home, "serve.token")
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = open(token_file).read().strip()
        assert len(token) >= 32
        before = box_table(cocoon)
        anon = Api(host="127.0.0.1", port=port)
        wrong = Api(host="127.0.0.1", port=port, token=token[:-1] + ("0" if token[-1] != "0" else "1"))
        for who in (anon, wrong):
            r = who.get("/v1/boxes")
            assert_error(r, 401, "unauthenticated", "token")
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
            assert_error(who.post("/v1/boxes", {"name": "intruder"}), 401, "unauthenticated")
            assert_error(who.delete("/v1/boxes/keep?force=true"), 401, "unauthenticated")
            assert_error(who.post("/v1/boxes/keep/run", {"command": "true"}), 401, "unauthenticated")
        assert_error(anon.get("/v1/boxes", headers={"Authorization": "Basic " + token}), 401, "unauthenticated")
        assert_error(anon.get("/v1/boxes", headers={"Authorization": "Bearer " + token + "x"}), 401)
        assert_error(anon.get("/v1/boxes", headers={"Authorization": "Bearer"}), 401)
        assert box_table(cocoon) == before
        # /v1/config is open (clients read auth_required there), the rest takes the token.
        cfg = anon.get("/v1/config")
        assert cfg.status == 200 and cfg.json["auth_required"] is True, cfg
        ok = Api(host="127.0.0.1", port=port, token=token)
        r = ok.get("/v1/boxes")
        assert r.status == 200 and [b["name"] for b in r.json["boxes"]] == ["keep"], r
        assert anon.get("/v1/boxes", headers={"X-API-Key": token}).status == 200
        # The unix socket next to it needs none.
        assert srv.client.get("/v1/boxes").status == 200
    finally:
        assert srv.stop() == 0


def test_token_file_and_no_token_rules(cocoon, tmp_path):
    port = free_port()
    p = run_serve(cocoon, "--listen", f"0.0.0.0:{port}", "--no-token")
    assert p.returncode != 0
    assert "--no-token is refused" in p.text and "loopback" in p.text, p.text
    assert not os.path.exists(os.path.join(cocoon.home, "cocoon.sock"))
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    p = run_serve(cocoon, "--listen", f"127.0.0.1:{port}", "--token-file", str(short))
    assert p.returncode != 0 and "16 to 255 characters" in p.text, p.text
    p = run_serve(cocoon, "--listen", f"127.0.0.1:{port}", "--token-file", str(tmp_path / "missing"))
    assert p.returncode != 0 and "cannot read the token file" in p.text, p.text
    # On loopback, --no-token is allowed and needs nothing.
    srv = Server(cocoon, "--listen", f"127.0.0.1:{port}", "--no-token").start()
    try:
        r = Api(host="127.0.0.1", port=port).get("/v1/boxes")
        assert r.status == 200, r
    finally:
        assert srv.stop() == 0


def test_tls_with_a_self_signed_certificate(cocoon, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    srv = Server(cocoon, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key)).start()
    try:
        assert f"https://127.0.0.1:{port}" in srv.stderr()
        token = open(os.path.join(cocoon.home, "serve.token")).read().strip()
        ctx = ssl.create_default_context(cafile=str(cert))
        tls = Api(host="127.0.0.1", port=port, token=token, tls=ctx)
        r = tls.get("/v1/boxes")
        assert r.status == 200 and r.json["boxes"] == [], r
        assert_error(Api(host="127.0.0.1", port=port, tls=ctx).get("/v1/boxes"), 401, "unauthenticated")
        # A client that does not trust the certificate, or speaks plain HTTP, gets nothing.
        with pytest.raises(ssl.SSLError):
            Api(host="127.0.0.1", port=port, token=token, tls=ssl.create_default_context()).get("/v1/boxes")
        try:
            r = Api(host="127.0.0.1", port=port, token=token).get("/v1/boxes", timeout=10)
            assert r.status != 200, f"plain HTTP was answered on the TLS port: {r}"
        except (http.client.HTTPException, OSError):
            pass
    finally:
        assert srv.stop() == 0
    # A key that is not the certificate's is refused at start, with a message.
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other), "2048"], check=True, capture_output=True, timeout=120)
    p = run_serve(cocoon, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(other))
    assert p.returncode != 0 and "TLS" in p.text, p.text
    p = run_serve(cocoon, "--tls-cert", str(cert), "--tls-key", str(key))
    assert p.returncode != 0 and "--listen" in p.text, p.text


# ---- boxes, shared with the CLI ---------------------------------------------------

def test_boxes_are_shared_with_the_cli(home, api, clibox):
    r = api.get("/v1/boxes/clibox")
    assert r.status == 200, r
    b = r.json
    assert b["name"] == "clibox" and b["status"] == "configured" and b["memory_mib"] == 128, b
    assert api.call("HEAD", "/v1/boxes/clibox").status == 204
    assert api.get(f"/v1/boxes/{b['box_id']}").json["name"] == "clibox"
    r = api.post("/v1/boxes", {"name": "apibox", "memory_mib": 128})
    assert r.status == 201, r
    made = r.json
    assert made["name"] == "apibox" and re.fullmatch(r"[0-9a-f]{12}", made["box_id"]), made
    assert (made["box_id"], "apibox") in [(i, n) for i, n, _ in box_table(home)]
    home.run("rm", "apibox", check=0)
    assert_error(api.get("/v1/boxes/apibox"), 404, "not_found", "apibox")
    assert api.call("HEAD", "/v1/boxes/apibox").status == 404


# ---- executions -------------------------------------------------------------------

def test_exec_starts_the_box_lazily_with_its_create_time_defaults(home, api, dev):
    b = api.get("/v1/boxes/dev").json
    assert b["status"] == "configured" and b["env"] == {"FOO": "from-create", "BAR": "create-bar"}, b
    assert b["working_dir"] == "/tmp" and b["labels"] == {"team": "qa"}, b
    eid = start_exec(api, "dev", {"command": "sh", "args": ["-c", 'echo "$FOO|$BAR|$REQ"; pwd; id -un'],
                                  "env": {"REQ": "from-request"}})
    assert re.fullmatch(r"exec_[0-9a-f]{24}", eid), eid
    out, err, end = exec_output(api, "dev", eid)
    assert out == b"from-create|create-bar|from-request\n/tmp\nroot\n" and err == b"", (out, err)
    assert end["status"] == "completed" and end["exit_code"] == 0 and end["execution_id"] == eid, end
    b = api.get("/v1/boxes/dev").json
    assert b["status"] == "running" and isinstance(b["pid"], int), b
    assert ("dev", "running") in [(n, s) for _, n, s in box_table(home)]
    listed = api.get("/v1/boxes/dev/executions").json["executions"]
    assert eid in [e["execution_id"] for e in listed], listed


def test_exec_env_working_dir_and_user(api, dev):
    eid = start_exec(api, "dev", {"command": "sh", "args": ["-c", 'echo "$FOO|$BAR"; pwd; id -un; id -u'],
                                  "env": {"FOO": "from-request"}, "working_dir": "/var", "user": "nobody"})
    out, err, end = exec_output(api, "dev", eid)
    assert out == b"from-request|create-bar\n/var\nnobody\n65534\n", (out, err)
    r = run(api, "dev", {"command": 'echo "$0:$1:$FOO"; pwd', "args": ["zero", "one"], "shell": True})
    assert r["stdout"] == "zero:one:from-create\n/tmp\n" and r["exit_code"] == 0, r


def test_execution_with_a_long_non_ascii_command(api, dev):
    # 606 bytes: the execution shows the command cut short, at a character's end.
    script = "echo x" + "\u00e9" * 300
    eid = start_exec(api, "dev", {"command": script, "shell": True})
    out, _, end = exec_output(api, "dev", eid)
    assert out == ("x" + "\u00e9" * 300 + "\n").encode() and end["exit_code"] == 0, (out, end)
    info = exec_info(api, "dev", eid)
    assert info["command"].startswith("echo x\u00e9\u00e9") and len(info["command"].encode()) < 600, info


def test_run_exit_codes(api, dev):
    for code in (0, 1, 42, 255):
        r = sh(api, "dev", f"exit {code}")
        assert r["exit_code"] == code and r["signal"] is None and r["timed_out"] is False, r
    r = sh(api, "dev", "kill -9 $$")
    assert r["exit_code"] == 137 and r["signal"] == 9, r
    # A command that cannot start: 127, and why on stderr.
    r = run(api, "dev", {"command": "/no/such/program"})
    assert r["exit_code"] == 127 and "No such file" in r["stderr"] and "/no/such/program" in r["stderr"], r


def test_run_truncates_at_max_output_bytes(api, dev):
    script = "head -c 5000 /dev/zero | tr '\\0' a; head -c 3000 /dev/zero | tr '\\0' b >&2"
    r = sh(api, "dev", script, max_output_bytes=1000)
    assert r["stdout"] == "a" * 1000 and r["stderr"] == "b" * 1000, r
    assert r["stdout_truncated"] is True and r["stderr_truncated"] is True, r
    assert r["stdout_bytes"] == 5000 and r["stderr_bytes"] == 3000 and r["exit_code"] == 0, r
    r = sh(api, "dev", script, max_output_bytes=5000)
    assert r["stdout"] == "a" * 5000 and r["stderr"] == "b" * 3000, r
    assert r["stdout_truncated"] is False and r["stderr_truncated"] is False, r
    r = sh(api, "dev", script, max_output_bytes=0)
    assert r["stdout"] == "" and r["stdout_truncated"] is True and r["stdout_bytes"] == 5000, r


def test_run_binary_output_is_base64(api, dev):
    r = run(api, "dev", {"command": "python3", "args": [
        "-c", "import sys; sys.stdout.buffer.write(bytes(range(256))); sys.stderr.write('ok')"]})
    assert r["encoding"] == "base64", r
    assert base64.b64decode(r["stdout"]) == bytes(range(256)) and base64.b64decode(r["stderr"]) == b"ok", r
    r = sh(api, "dev", "printf 'h\\303\\251llo \\342\\234\\223'")
    assert r["encoding"] == "utf-8" and r["stdout"] == "h\u00e9llo \u2713", r
    # A cut in the middle of a character leaves bytes that are not UTF-8: base64 then.
    r = sh(api, "dev", "for i in $(seq 600); do printf '\\303\\251'; done", max_output_bytes=1001)
    assert r["encoding"] == "base64" and r["stdout_truncated"] is True, r
    assert base64.b64decode(r["stdout"]) == ("\u00e9" * 600).encode()[:1001], r


def test_run_stdin(api, dev):
    r = run(api, "dev", {"command": "cat", "stdin": "hello\nw\u00f6rld"})
    assert r["stdout"] == "hello\nw\u00f6rld", r
    data = os.urandom(100_000)
    r = run(api, "dev", {"command": "sha256sum", "stdin_base64": base64.b64encode(data).decode()})
    assert r["stdout"].split()[0] == hashlib.sha256(data).hexdigest(), r


def test_timeouts(api, dev):
    r = run(api, "dev", {"command": "sleep", "args": ["60"], "timeout_seconds": 1})
    assert r["timed_out"] is True and r["exit_code"] != 0, r
    eid = start_exec(api, "dev", {"command": "sleep", "args": ["60"], "timeout_seconds": 1})
    info = wait_exec_done(api, "dev", eid)
    assert info["status"] == "timed_out" and info["exit_code"] not in (None, 0), info
    _, _, end = exec_output(api, "dev", eid)
    assert end["status"] == "timed_out", end


def test_delete_kills_an_execution(api, dev):
    eid = start_exec(api, "dev", {"command": "sleep", "args": ["3001"]})
    wait_for(lambda: "sleep 3001" in guest_processes(api, "dev"), 60, "sleep 3001 to run in the guest")
    assert api.delete(f"/v1/boxes/dev/executions/{eid}").status == 204
    info = wait_exec_done(api, "dev", eid)
    assert info["status"] == "killed" and info["exit_code"] == 137 and info["signal"] == 9, info
    assert "sleep 3001" not in guest_processes(api, "dev")
    # Once it ended: a delete changes nothing, a signal is refused.
    assert api.delete(f"/v1/boxes/dev/executions/{eid}").status == 204
    assert exec_info(api, "dev", eid)["status"] == "killed"
    assert_error(api.post(f"/v1/boxes/dev/executions/{eid}/signal", {"signal": 15}), 409, "invalid_state", "ended")


def test_output_nobody_reads_ends_the_execution(home, api, dev):
    """An execution whose held output (1 MiB) nobody reads for --unread-output-timeout
    is killed (it cannot hold a thread and a box handle for ever); a detached one drops
    its oldest output instead and runs to its end; one that is read is never cut."""
    api.post("/v1/boxes/dev/run", {"command": "true"}, timeout=BOOT_S)  # booted before the second server
    sock = os.path.join(str(home.tmp_path), "unread.sock")
    srv = Server(home, "--unread-output-timeout", "2", socket_path=sock).start()
    try:
        fast = srv.client
        flood = {"command": "sh", "args": ["-c", "head -c 8000000 /dev/zero; echo never-read >&2; sleep 600"]}
        eid = start_exec(fast, "dev", flood)
        info = wait_exec_done(fast, "dev", eid, timeout=120)
        assert info["status"] == "killed" and "nobody read its output" in (info["error_message"] or ""), info
        assert "sleep 600" not in guest_processes(fast, "dev")
        # detached: the oldest output goes, the command is not held back
        eid = start_exec(fast, "dev", {"command": "sh", "args": ["-c", "head -c 8000000 /dev/zero; echo tail"],
                                       "detach": True})
        info = wait_exec_done(fast, "dev", eid, timeout=120)
        assert info["status"] == "completed" and info["exit_code"] == 0, info
        assert info["output_dropped_bytes"] >= 8000000 - (1 << 20) - 65536, info
        out, _, end = exec_output(fast, "dev", eid)
        assert out.endswith(b"tail\n") and len(out) <= (1 << 20) + 65536 and end["status"] == "completed", end
        # attached and read slowly (longer than the timeout in all): never cut
        eid = start_exec(fast, "dev", {"command": "head", "args": ["-c", "3000000", "/dev/zero"]})
        conn, r = fast.stream(f"/v1/boxes/dev/executions/{eid}/output", timeout=REQUEST_S)
        try:
            got, end = 0, None
            for line in iter(r.readline, b""):
                msg = json.loads(line)
                if msg["type"] == "stdout":
                    got += len(base64.b64decode(msg["data"]))
                    time.sleep(0.1)  # ~46 chunks of 64 KiB: about 5 s of slow reading
                elif msg["type"] == "exit":
                    end = msg
        finally:
            conn.close()
        assert got == 3000000 and end["status"] == "completed", (got, end)
    finally:
        assert srv.stop() == 0


def test_signal_reaches_the_command(api, dev):
    eid = start_exec(api, "dev", {"command": "sh", "args": [
        "-c", 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done']})
    conn, r = api.stream(f"/v1/boxes/dev/executions/{eid}/output")
    try:
        line = json.loads(r.readline())
        assert line["type"] == "stdout" and base64.b64decode(line["data"]) == b"ready\n", line
        assert api.post(f"/v1/boxes/dev/executions/{eid}/signal", {"signal": 10}).status == 204
        out, _, end = read_ndjson(r)
    finally:
        conn.close()
    assert b"got-usr1\n" in out and end["exit_code"] == 7 and end["status"] == "completed", (out, end)
    eid = start_exec(api, "dev", {"command": "sleep", "args": ["3002"]})
    wait_for(lambda: "sleep 3002" in guest_processes(api, "dev"), 60, "sleep 3002 to run in the guest")
    assert api.post(f"/v1/boxes/dev/executions/{eid}/signal", {"signal": 15}).status == 204
    info = wait_exec_done(api, "dev", eid)
    assert info["status"] == "killed" and info["signal"] == 15 and info["exit_code"] == 143, info


def test_stdin_posted_to_an_execution(api, dev):
    eid = start_exec(api, "dev", {"command": "sha256sum"})
    parts = [os.urandom(200_000) for _ in range(3)]
    for p in parts[:-1]:
        r = api.post(f"/v1/boxes/dev/executions/{eid}/stdin", p,
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status == 204, r
    r = api.post(f"/v1/boxes/dev/executions/{eid}/stdin?eof=true", parts[-1],
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status == 204, r
    out, _, end = exec_output(api, "dev", eid)
    assert out.split()[0].decode() == hashlib.sha256(b"".join(parts)).hexdigest() and end["exit_code"] == 0
    assert_error(api.post(f"/v1/boxes/dev/executions/{eid}/stdin", b"late"), 409, "invalid_state")


def test_output_stream_has_one_reader(api, dev):
    eid = start_exec(api, "dev", {"command": "sh", "args": ["-c", "echo out; echo err >&2; sleep 2; echo more"]})
    conn, r = api.stream(f"/v1/boxes/dev/executions/{eid}/output")
    try:
        assert_error(api.get(f"/v1/boxes/dev/executions/{eid}/output"), 409, "invalid_state", "already")
        out, err, end = read_ndjson(r)
    finally:
        conn.close()
    assert (out, err, end["exit_code"]) == (b"out\nmore\n", b"err\n", 0), (out, err, end)
    # After the end, a new reader gets the exit line alone.
    assert exec_output(api, "dev", eid) == (b"", b"", end)


# ---- creates, lists, deletes ------------------------------------------------------

def test_idempotency_key(home, api):
    body = {"name": "idem-1", "memory_mib": 128}
    first = api.post("/v1/boxes", body, headers={"Idempotency-Key": "key-1"})
    assert first.status == 201, first
    again = api.post("/v1/boxes", body, headers={"Idempotency-Key": "key-1"})
    assert again.status == 201 and again.json["box_id"] == first.json["box_id"], again
    other = api.post("/v1/boxes", {"name": "idem-2", "memory_mib": 128}, headers={"Idempotency-Key": "key-1"})
    assert_error(other, 422, "invalid_argument", "key-1", "different")
    names = [n for _, n, _ in box_table(home)]
    assert names.count("idem-1") == 1 and "idem-2" not in names, names
    # Concurrent duplicates of an unnamed create make one box.
    before = box_table(home)
    replies, barrier = [], threading.Barrier(8)

    def create():
        barrier.wait()
        replies.append(api.post("/v1/boxes", {"memory_mib": 128, "labels": {"dup": "yes"}},
                                headers={"Idempotency-Key": "key-2"}))
    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_S)
    assert len(replies) == 8 and all(r.status == 201 for r in replies), replies
    assert len({r.json["box_id"] for r in replies}) == 1, replies
    after = box_table(home)
    assert len(after) == len(before) + 1 and set(before) < set(after), (before, after)
    # A key the server cannot keep is refused, not ignored (ignored, each retry made a box).
    assert_error(api.post("/v1/boxes", {"memory_mib": 128}, headers={"Idempotency-Key": "k" * 256}), 400,
                 "invalid_argument", "Idempotency-Key", "255")
    assert box_table(home) == after


def test_list_pages_and_status_filter(home, api, dev, clibox):
    for i in range(5):
        assert api.post("/v1/boxes", {"name": f"page-{i}", "memory_mib": 128}).status == 201
    table = box_table(home)
    seen, token, pages = [], None, 0
    while True:
        r = api.get("/v1/boxes?page_size=2" + (f"&page_token={token}" if token else ""))
        assert r.status == 200, r
        page = r.json
        assert len(page["boxes"]) <= 2, page
        seen += [b["box_id"] for b in page["boxes"]]
        token = page["next_page_token"]
        pages += 1
        assert pages <= len(table), "the pages do not end"
        if token is None:
            break
    assert sorted(seen) == [i for i, _, _ in table], (seen, table)
    # The API's statuses: running, stopped, and configured for a box that never booted
    # (the CLI says stopped for both).
    running = api.get("/v1/boxes?status=running").json
    assert sorted(b["box_id"] for b in running["boxes"]) == [i for i, _, s in table if s == "running"], running
    assert running["next_page_token"] is None, running
    idle = []
    for status in ("configured", "stopped"):
        token = None
        while True:
            page = api.get(f"/v1/boxes?status={status}&page_size=1" + (f"&page_token={token}" if token else ""))
            assert page.status == 200, page
            assert all(b["status"] == status for b in page.json["boxes"]), page
            idle += [b["box_id"] for b in page.json["boxes"]]
            token = page.json["next_page_token"]
            if token is None:
                break
    assert sorted(idle) == [i for i, _, s in table if s != "running"], (idle, table)
    page_0 = api.get("/v1/boxes/page-0").json
    assert page_0["status"] == "configured" and page_0["box_id"] in idle, page_0


def test_delete_of_a_running_box_needs_force(home, api, dev):
    sh(api, "dev", "true")
    assert api.post("/v1/boxes", {"name": "gone-soon", "memory_mib": 128}).status == 201
    before = box_table(home)
    assert_error(api.delete("/v1/boxes/dev"), 409, "invalid_state", "force")
    assert_error(api.delete("/v1/boxes/dev?force=false"), 409, "invalid_state")
    assert box_table(home) == before
    assert api.delete("/v1/boxes/gone-soon").status == 204
    assert "gone-soon" not in [n for _, n, _ in box_table(home)]
    assert_error(api.delete("/v1/boxes/gone-soon"), 404, "not_found")


def test_stop_then_exec_starts_it_again(home, api, dev):
    sh(api, "dev", "echo kept > /root/marker; sync")
    r = api.post("/v1/boxes/dev/stop", {"timeout_seconds": 30}, timeout=BOOT_S)
    assert r.status == 200 and r.json["status"] == "stopped", r
    assert ("dev", "stopped") in [(n, s) for _, n, s in box_table(home)]
    assert "dev" in [b["name"] for b in api.get("/v1/boxes?status=stopped").json["boxes"]]
    r = sh(api, "dev", "cat /root/marker")
    assert r["stdout"] == "kept\n", r
    assert api.get("/v1/boxes/dev").json["status"] == "running"


def test_restart_loses_nothing(home, server, api, dev):
    listed = sorted((b["box_id"], b["status"]) for b in api.get("/v1/boxes").json["boxes"])
    table = box_table(home)
    # A second server on the same socket is refused while the first runs.
    p = run_serve(home)
    assert p.returncode != 0 and "another cocoon serve is listening" in p.text, p.text
    assert api.get("/v1/health").status == 200
    # Boxes outlive the server.
    assert server.stop() == 0
    assert not os.path.exists(server.socket)
    assert box_table(home) == table
    assert decode(home.run("exec", "dev", "--", "cat", "/root/marker", check=0).stdout) == "kept\n"
    server.start()
    assert sorted((b["box_id"], b["status"]) for b in api.get("/v1/boxes").json["boxes"]) == listed
    assert sh(api, "dev", "cat /root/marker")["stdout"] == "kept\n"
    # A server that died leaves its socket file; the next one takes it over.
    server.kill()
    assert stat.S_ISSOCK(os.lstat(server.socket).st_mode)
    with pytest.raises(ConnectionRefusedError):
        api.get("/v1/health")
    server.start()
    assert api.get("/v1/health").status == 200
    assert box_table(home) == table


def test_access_log(server, api):
    api.get("/v1/boxes?page_size=1&status=secret-query-value")
    api.get("/v1/boxes/no-such-box-for-the-log")
    api.get("/v1/boxes/two%0Alines")
    # A line is written once its answer went out (so not always in the order of the requests).
    wait_for(lambda: all(any(m in line for line in server.log_lines())
                         for m in ("GET /v1/boxes 400", "/v1/boxes/two", "for-the-log")), 30, "the access log lines")
    lines = server.log_lines()
    pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [A-Z]+ /\S* \d{3} \d+\.\dms( \((client went away|failed|timed out)\))?")
    bad = [line for line in lines if not pattern.fullmatch(line)]
    assert not bad, bad
    assert any(re.fullmatch(r"\S+ GET /v1/boxes/no-such-box-for-the-log 404 \S+ms", line) for line in lines), lines[-5:]
    assert any(re.fullmatch(r"\S+ GET /v1/boxes 400 \S+ms", line) for line in lines), lines[-5:]
    assert not any("secret-query-value" in line for line in lines)
    assert not any(line.startswith("lines ") for line in lines), lines[-5:]


# ---- bad requests -----------------------------------------------------------------

MIB = 1 << 20

# (method, path, body, headers, status, code, words in the message)
BAD_REQUESTS = [
    ("POST", "/v1/boxes", "{bad", None, 400, "invalid_argument", ["not valid JSON"]),
    ("POST", "/v1/boxes", "[1]", None, 400, "invalid_argument", ["JSON object"]),
    ("POST", "/v1/boxes", '{"name":"x","name":"y"}', None, 400, "invalid_argument", ["duplicate"]),
    ("POST", "/v1/boxes", '{"name":"a\\u0000b"}', None, 400, "invalid_argument", ["JSON", "u0000"]),
    ("POST", "/v1/boxes", b'{"name":"\xff"}', None, 400, "invalid_argument", ["JSON"]),
    ("POST", "/v1/boxes", {"cpus": "2"}, None, 400, "invalid_argument", ["cpus", "integer"]),
    ("POST", "/v1/boxes", {"cpus": 1e300}, None, 400, "invalid_argument", ["cpus"]),
    ("POST", "/v1/boxes", {"memory_mib": 1.5}, None, 400, "invalid_argument", ["memory_mib"]),
    ("POST", "/v1/boxes", {"memory_mib": 32}, None, 400, "invalid_argument", ["memory_mib", "between"]),
    ("POST", "/v1/boxes", {"cpus": -1}, None, 400, "invalid_argument", ["cpus"]),
    ("POST", "/v1/boxes", {"name": 7}, None, 400, "invalid_argument", ["name", "string"]),
    ("POST", "/v1/boxes", {"name": "n" * 65}, None, 400, "invalid_argument", ["name", "longer"]),
    ("POST", "/v1/boxes", {"env": {"A": 1}}, None, 400, "invalid_argument", ["env"]),
    ("POST", "/v1/boxes", {"env": {"A=B": "x"}}, None, 400, "invalid_argument", ["env", "="]),
    ("POST", "/v1/boxes", {"env": ["A=1"]}, None, 400, "invalid_argument", ["env"]),
    ("POST", "/v1/boxes", {"network": {"outbound": {"mode": "sideways"}}}, None, 400, "invalid_argument",
     ["sideways"]),
    ("POST", "/v1/boxes", {"network": "x"}, None, 400, "invalid_argument", ["network"]),
    ("POST", "/v1/boxes", {"network": {"mode": "x"}}, None, 400, "invalid_argument", ["mode"]),
    ("POST", "/v1/boxes", {"labels": {"a": 1}}, None, 400, "invalid_argument", ["label"]),
    ("POST", "/v1/boxes", {"labels": ["a"]}, None, 400, "invalid_argument", ["labels"]),
    ("POST", "/v1/boxes", {"ports": [5]}, None, 400, "invalid_argument", ["ports"]),
    ("POST", "/v1/boxes", {"ports": "8080:80"}, None, 400, "invalid_argument", ["ports"]),
    ("POST", "/v1/boxes", {"auto_delete": "soon"}, None, 400, "invalid_argument", ["auto_delete"]),
    ("POST", "/v1/boxes", {"auto_stop": -1}, None, 400, "invalid_argument", ["auto_stop"]),
    ("POST", "/v1/boxes", {"bogus": 1}, None, 400, "invalid_argument", ['unknown field "bogus"']),
    ("POST", "/v1/boxes", {"a" + "\u00e9" * 150: 1}, None, 400, "invalid_argument", ["unknown field"]),
    ("POST", "/v1/boxes", {"name": "dev"}, None, 409, "already_exists", ["dev"]),
    ("POST", "/v1/boxes", {"entrypoint": ["/bin/true"], "restart": "often"}, None, 400, "invalid_argument",
     ["restart"]),
    ("POST", "/v1/boxes", "{" + " " * MIB + "}", None, 413, "invalid_argument", ["larger"]),
    ("POST", "/v1/boxes/clibox/run", "{bad", None, 400, "invalid_argument", ["JSON"]),
    ("POST", "/v1/boxes/clibox/run", {}, None, 400, "invalid_argument", ["command"]),
    ("POST", "/v1/boxes/clibox/run", {"command": "true", "args": "x"}, None, 400, "invalid_argument", ["args"]),
    ("POST", "/v1/boxes/clibox/run", {"command": "true", "timeout_seconds": -1}, None, 400, "invalid_argument",
     ["timeout_seconds"]),
    ("POST", "/v1/boxes/clibox/run", {"command": "true", "max_output_bytes": 1 << 40}, None, 400,
     "invalid_argument", ["max_output_bytes"]),
    ("POST", "/v1/boxes/clibox/run", {"command": "true", "stdin": "a", "stdin_base64": "YQ=="}, None, 400,
     "invalid_argument", ["stdin"]),
    ("POST", "/v1/boxes/clibox/run", {"command": "true", "stdin_base64": "!!!"}, None, 400, "invalid_argument",
     ["base64"]),
    ("POST", "/v1/boxes/clibox/exec", {"command": ""}, None, 400, "invalid_argument", ["command"]),
    ("POST", "/v1/boxes/clibox/exec", {"command": "true", "tty": "yes"}, None, 400, "invalid_argument", ["tty"]),
    ("POST", "/v1/boxes/clibox/exec", {"command": "true", "cmd": "x"}, None, 400, "invalid_argument", ["cmd"]),
    ("POST", "/v1/boxes/dev/stop", {"timeout_seconds": -5}, None, 400, "invalid_argument", ["timeout_seconds"]),
    ("POST", "/v1/boxes/dev/stop", {"timeout": "soon"}, None, 400, "invalid_argument", ["timeout"]),
    ("POST", "/v1/boxes/dev/stop?timeout=abc", None, None, 400, "invalid_argument", ["timeout"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/signal", {"signal": 0}, None, 400, "invalid_argument", ["signal"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/signal", {"signal": 65}, None, 400, "invalid_argument", ["signal"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/signal", {"signal": "TERM"}, None, 400, "invalid_argument",
     ["signal"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/signal", {}, None, 400, "invalid_argument", ["signal"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/stdin", b"x" * (MIB + 1), None, 413, "invalid_argument", ["larger"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/stdin?eof=maybe", b"x", None, 400, "invalid_argument", ["eof"]),
    # ids and routes
    ("GET", "/v1/boxes/no-such-box", None, None, 404, "not_found", ["no-such-box"]),
    ("GET", "/v1/boxes/..", None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/%2e%2e", None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/a%20b", None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/" + "x" * 200, None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/dev%00x", None, None, 404, "not_found", []),
    ("DELETE", "/v1/boxes/clibox%00x?force=true", None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/dev/executions/exec_000000000000000000000000", None, None, 404, "not_found", ["exec_"]),
    ("GET", "/v1/%ff", None, None, 404, "not_found", []),
    ("GET", "/v1/nope", None, None, 404, "not_found", ["/v1/nope"]),
    ("GET", "/v2/boxes", None, None, 404, "not_found", []),
    ("GET", "/", None, None, 404, "not_found", []),
    ("GET", "/v1/boxes/dev/nope", None, None, 404, "not_found", []),
    ("PUT", "/v1/boxes", None, None, 405, "method_not_allowed", ["PUT"]),
    ("DELETE", "/v1/config", None, None, 405, "method_not_allowed", []),
    ("GET", "/v1/boxes/dev/run", None, None, 405, "method_not_allowed", []),
    ("PATCH", "/v1/boxes/dev", {"name": "x"}, None, 405, "method_not_allowed", ["PATCH"]),
    ("POST", "/v1/boxes/dev/executions/exec_0/attach", None, None, 405, "method_not_allowed", []),
    # query parameters
    ("GET", "/v1/boxes?page_size=0", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_size=-1", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_size=abc", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_size=1001", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_size=", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_size=2.5", None, None, 400, "invalid_argument", ["page_size"]),
    ("GET", "/v1/boxes?page_token=abc", None, None, 400, "invalid_argument", ["page_token"]),
    ("GET", "/v1/boxes?status=sleeping", None, None, 400, "invalid_argument", ["status"]),
    ("DELETE", "/v1/boxes/clibox?force=maybe", None, None, 400, "invalid_argument", ["force"]),
    ("DELETE", "/v1/boxes/dev?force=yes", None, None, 400, "invalid_argument", ["force"]),
    ("GET", "/v1/boxes/dev/logs?follow=sometimes", None, None, 400, "invalid_argument", ["follow"]),
]


def test_bad_requests_get_a_clear_error_and_change_nothing(home, api, dev, clibox):
    sh(api, "dev", "true")  # dev runs, clibox does not: neither may change
    before = box_table(home)
    assert ("dev", "running") in [(n, s) for _, n, s in before]
    assert ("clibox", "configured") in [(n, s) for _, n, s in before] or ("clibox", "stopped") in [
        (n, s) for _, n, s in before]
    failures = []
    for method, path, body, headers, status, code, words in BAD_REQUESTS:
        r = api.call(method, path, body, headers=headers)
        try:
            assert_error(r, status, code, *words)
            if status == 405:
                assert r.headers.get("Allow"), r.headers
        except AssertionError as e:
            failures.append(f"{method} {path} {str(body)[:80]!r}: {e}")
    assert not failures, "\n".join(failures)
    assert api.get("/v1/health").status == 200
    assert box_table(home) == before


def test_a_refused_command_does_not_run(api, dev):
    sh(api, "dev", "rm -f /tmp/ran")
    ran = {"command": "sh", "args": ["-c", "echo ran >> /tmp/ran"]}
    for route in ("run", "exec"):
        for extra, words in (({"stdin": "a", "stdin_base64": "YQ=="}, ["stdin"]), ({"stdin_base64": "!!!"}, ["base64"])):
            r = api.post(f"/v1/boxes/dev/{route}", ran | extra)
            assert 400 <= r.status < 500, (route, extra, r)
            assert_error(r, r.status, None, *words)
    time.sleep(1)  # an execution started by mistake would have written by now
    assert sh(api, "dev", "cat /tmp/ran 2>/dev/null || echo none")["stdout"] == "none\n"


def test_a_refused_file_transfer_changes_nothing(home, api, clibox):
    before = box_table(home)
    assert ("clibox", "running") not in [(n, s) for _, n, s in before]
    tar = {"Content-Type": "application/x-tar"}
    for method, path, body, headers, words in (
            ("GET", "/v1/boxes/clibox/files?path=/etc&follow_symlinks=maybe", None, None, ["follow_symlinks"]),
            ("PUT", "/v1/boxes/clibox/files?path=/tmp&overwrite=maybe", b"\0" * 1024, tar, ["overwrite"]),
            ("PUT", "/v1/boxes/clibox/files?path=/tmp", b"this is not a tar archive" * 40, tar, [])):
        assert_error(api.call(method, path, body, headers=headers), 400, "invalid_argument", *words)
    assert box_table(home) == before


def test_allow_header_names_the_methods(api, dev):
    cases = {("PUT", "/v1/boxes"): "GET, POST", ("DELETE", "/v1/config"): "GET, HEAD",
             ("GET", "/v1/boxes/dev/run"): "POST", ("PATCH", "/v1/boxes/dev"): "GET, HEAD, DELETE",
             ("POST", "/v1/boxes/dev/executions/exec_0/attach"): "GET"}
    for (method, path), allow in cases.items():
        r = api.call(method, path)
        assert r.status == 405 and r.headers.get("Allow") == allow, (method, path, r, r.headers)


def test_oversized_header_and_url_leave_the_server_serving(api):
    for headers, path in (({"X-Big": "h" * 100_000}, "/v1/config"), (None, "/v1/boxes/" + "u" * 100_000)):
        try:
            r = api.call("GET", path, headers=headers)
            assert 400 <= r.status < 500, r
        except (ConnectionError, http.client.HTTPException):
            pass  # libmicrohttpd may close such a connection instead of answering
    assert api.get("/v1/health").status == 200


def test_too_many_connections_get_an_answer(cocoon):
    srv = Server(cocoon, "--max-connections", "4").start()
    held = []
    try:
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(srv.socket)
            held.append(s)
        # The held connections are open (a request half sent); the fifth is answered.
        for s in held:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        r = srv.client.get("/v1/health", timeout=30)
        assert_error(r, 503, "resource_exhausted", "--max-connections")
        assert r.headers.get("Retry-After"), r.headers
        for s in held:
            s.close()
        held = []
        wait_for(lambda: srv.client.get("/v1/health").status == 200, 30, "the server to answer again")
    finally:
        for s in held:
            s.close()
        assert srv.stop() == 0


# ---- the end of the shared boxes --------------------------------------------------

def test_force_delete_of_a_running_box(home, api, dev):
    sh(api, "dev", "true")
    assert api.get("/v1/boxes/dev").json["status"] == "running"
    r = api.delete("/v1/boxes/dev?force=true", timeout=BOOT_S)
    assert r.status == 204, r
    assert "dev" not in [n for _, n, _ in box_table(home)]
    assert_error(api.get("/v1/boxes/dev"), 404, "not_found")
