"""A `cocoon serve` for a test, and a small HTTP client for it.

    from serve_client import ServeServer

    def test_x(cocoon):                       # conftest's fixture: a private COCOON_HOME
        with ServeServer(cocoon) as server:   # cocoon-serve on a unix socket of its own
            api = server.client()
            status, headers, data = api.request("POST", "/v1/boxes", json={"name": "b1"})

ServeServer starts build/bin/cocoon-serve (COCOON_BIN_DIR) with the test's COCOON_HOME
and environment (the sanitizer log path included) on a socket in a short private
directory (a unix socket path has a 108-byte limit that pytest's tmp paths can pass), and
optionally on TCP (`listen=True`: a free 127.0.0.1 port, with the token the server makes
in $COCOON_HOME/serve.token, a `token=` of the test's, or `no_token=True`). It waits
until the server answers and stops it (SIGTERM, then SIGKILL) on exit. Boxes outlive the
server: a test removes the ones it made.

ServeClient.request(method, path, json=None, body=None, headers=None) sends one request
on a fresh connection and reads the whole answer: a Response that unpacks as
(status, headers, data), data being the parsed JSON for a JSON answer, else the bytes.
A client made with check=openapi_check.check_response checks every answer against
docs/openapi.yaml. ServeClient.open() gives the raw http.client response of a streamed
answer (NDJSON, logs with follow) to read as it comes.
"""
import http.client
import json as jsonlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from conftest import BIN_DIR

SERVE = os.path.join(BIN_DIR, "cocoon-serve")
START_TIMEOUT_S = 30.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the Host header says localhost)."""

    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    """One answer: status, reason, headers (case-insensitive), body (bytes) and json
    (the parsed body when it is application/json, else None). Unpacks as
    (status, headers, data) with data = json if the answer is JSON, else body."""

    def __init__(self, method, path, status, reason, headers, body):
        self.method, self.path = method, path
        self.status, self.reason, self.headers, self.body = status, reason, headers, body
        self.content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        self.json = None
        if self.content_type == "application/json" and body:
            self.json = jsonlib.loads(body)

    @property
    def data(self):
        return self.json if self.json is not None else self.body

    def __iter__(self):
        return iter((self.status, self.headers, self.data))

    def error_code(self):
        """The error envelope's code, or None."""
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None

    def __repr__(self):
        return f"<{self.method} {self.path} -> {self.status} {self.content_type} {self.body[:300]!r}>"


class ServeClient:
    """Requests to one cocoon-serve, over its unix socket or TCP. token: sent as
    'Authorization: Bearer TOKEN'. check(method, path, status, headers, body): called on
    every answer (e.g. openapi_check.check_response)."""

    def __init__(self, socket_path=None, host=None, port=None, token=None, timeout=180.0, check=None):
        if (socket_path is None) == (host is None):
            raise ValueError("give socket_path or host/port")
        self.socket_path, self.host, self.port = socket_path, host, port
        self.token, self.timeout, self.check = token, timeout, check

    def connection(self, timeout=None):
        t = self.timeout if timeout is None else timeout
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, timeout=t)
        return http.client.HTTPConnection(self.host, self.port, timeout=t)

    def _send(self, conn, method, path, json, body, headers):
        hdrs = dict(headers or {})
        if self.token and not any(k.lower() in ("authorization", "x-api-key") for k in hdrs):
            hdrs["Authorization"] = "Bearer " + self.token
        if json is not None:
            if body is not None:
                raise ValueError("give json or body, not both")
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (an error) before taking the body, and closed: read its answer
        return conn.getresponse()

    def request(self, method, path, json=None, body=None, headers=None, timeout=None):
        """Sends one request and reads the whole answer (a Response)."""
        conn = self.connection(timeout)
        try:
            resp = self._send(conn, method, path, json, body, headers)
            data = resp.read()
            r = Response(method, path, resp.status, resp.reason, resp.headers, data)
        finally:
            conn.close()
        if self.check:
            self.check(method, path, r.status, dict(r.headers.items()), r.body)
        return r

    def open(self, method, path, json=None, body=None, headers=None, timeout=None):
        """(connection, http.client.HTTPResponse) of a request whose answer is read as
        it streams; close the connection when done."""
        conn = self.connection(timeout)
        try:
            return conn, self._send(conn, method, path, json, body, headers)
        except BaseException:
            conn.close()
            raise


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class ServeServer:
    """cocoon-serve for one test (a context manager). cocoon: conftest's Cocoon (its
    home and environment), or give home= and env= yourself. listen: also TCP on
    127.0.0.1 (self.port); token: the token to require there (written to a file for
    --token-file), else the server's own ($COCOON_HOME/serve.token, read into
    self.token); no_token: TCP without one. args: more options for cocoon-serve."""

    def __init__(self, cocoon=None, home=None, env=None, listen=False, token=None, no_token=False, args=()):
        self.home = home or cocoon.home
        self.env = dict(env if env is not None else cocoon.env)
        self.env["COCOON_HOME"] = self.home
        self.listen, self.token, self.no_token, self.args = listen, token, no_token, list(args)
        self.proc = None
        self.port = None
        self.dir = None

    # ---- life ----

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="cocoon-serve-")
        self.socket_path = os.path.join(self.dir, "api.sock")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.access_log_path = os.path.join(self.dir, "access.log")
        last_error = ""
        for _ in range(5):  # a free port may be taken between the probe and the bind
            cmd = [SERVE, "--socket", self.socket_path, "--log-file", self.access_log_path, *self.args]
            if self.listen:
                self.port = free_port()
                cmd += ["--listen", f"127.0.0.1:{self.port}"]
                if self.no_token:
                    cmd.append("--no-token")
                elif self.token:
                    token_file = os.path.join(self.dir, "token")
                    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(self.token + "\n")
                    cmd += ["--token-file", token_file]
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err)
            if self._wait_ready():
                if self.listen and not self.no_token and not self.token:
                    with open(os.path.join(self.home, "serve.token")) as f:
                        self.token = f.read().strip()
                return self
            last_error = self.stderr()
            self._kill()
            if "cannot listen" not in last_error:
                break
        self._cleanup()
        raise RuntimeError(f"cocoon-serve did not start ({' '.join(cmd)}): {last_error[-3000:]}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.05)
        return False

    def _answers(self):
        try:
            r = ServeClient(socket_path=self.socket_path, timeout=5).request("GET", "/v1/health")
            if r.status != 200:
                return False
            if self.listen:
                r = ServeClient(host="127.0.0.1", port=self.port, timeout=5).request("GET", "/v1/health")
                return r.status == 200
            return True
        except OSError:
            return False

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _cleanup(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def stop(self):
        """Stops the server; returns its exit status."""
        self._kill()
        rc = self.proc.returncode if self.proc else None
        self._cleanup()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # pytest shows a failed test's output: the server's side of it
            print(f"cocoon-serve stderr:\n{self.stderr()[-4000:]}\naccess log:\n{self.access_log()[-4000:]}")
        self.stop()

    # ---- use ----

    def client(self, check=None, timeout=180.0):
        """A client on the unix socket (no token needed there)."""
        return ServeClient(socket_path=self.socket_path, timeout=timeout, check=check)

    def tcp_client(self, token=None, check=None, timeout=180.0):
        """A client on the TCP listener, sending token (none when None)."""
        if not self.listen:
            raise RuntimeError("this server has no TCP listener (listen=True)")
        return ServeClient(host="127.0.0.1", port=self.port, token=token, timeout=timeout, check=check)

    def stderr(self):
        return _read_text(self.stderr_path)

    def access_log(self):
        """Lines of time, method, path, status, duration."""
        return _read_text(self.access_log_path)


def _read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""
