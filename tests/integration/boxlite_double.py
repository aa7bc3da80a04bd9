"""A stand-in for `cocoon serve` that speaks BoxLite's Box API v1 the way the published
@boxlite-ai/boxlite client needs it, with fake boxes whose commands are interpreted
in-process. It logs every request (method, path, query, headers, body) and WebSocket
frame, so it doubles as a probe of what the client sends. Standard library only.

Run alone:  python3 tests/integration/boxlite_double.py [--port N] [--token T]
(one JSON line per request on stderr). In tests: `with BoxliteDouble() as d: d.url`.
"""
import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_BODY = 64 << 20


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_body(status, code, message):
    kinds = {400: "InvalidArgumentError", 401: "AuthError", 404: "NotFoundError",
             405: "MethodNotAllowedError", 409: "InvalidStateError", 500: "InternalError"}
    return status, {"error": {"message": message, "type": kinds.get(status, "Error"), "code": code}}


class FakeExec:
    """One command of a fake box, run as a host process in a private mount namespace in
    which the box's own directory is /root (`unshare -rm`). Its output is queued until a
    WebSocket attach drains it; stdin, signals and kill reach the process."""

    def __init__(self, box, command, args, env, working_dir, timeout):
        self.id = "ex" + uuid.uuid4().hex[:12]
        self.command = command
        self.cond = threading.Condition()
        self.out = []          # [(channel, bytes)] not yet sent
        self.exit_code = None
        self.status = "running"
        self.error_message = None
        self.started = now_rfc3339()
        self.t0 = time.monotonic()
        self.stdin_q = []
        self.proc = None
        if command in ("__close_without_exit", "__error_frame"):  # probes of the client's fallbacks
            self.emit(1, b"partial\n")
            self._finish(5)
            return
        penv = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        penv.update(box.env)
        penv.update(env or {})
        wrapper = 'mount --bind "$0" /root && cd "$1" && shift && exec "$@"'
        try:
            self.proc = subprocess.Popen(
                ["unshare", "-rm", "sh", "-c", wrapper, box.root, working_dir or box.working_dir or "/",
                 command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=penv, start_new_session=True)
        except OSError as err:
            self.emit(2, f"cannot run {command}: {err}\n".encode())
            self._finish(127)
            return
        readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, 1), daemon=True),
                   threading.Thread(target=self._pump, args=(self.proc.stderr, 2), daemon=True)]
        for t in readers:
            t.start()
        threading.Thread(target=self._stdin_writer, daemon=True).start()
        threading.Thread(target=self._reap, args=(readers, timeout), daemon=True).start()

    def emit(self, channel, data):
        with self.cond:
            self.out.append((channel, data))
            self.cond.notify_all()

    def _pump(self, pipe, channel):
        for chunk in iter(lambda: pipe.read1(65536), b""):
            self.emit(channel, chunk)

    def _stdin_writer(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.stdin_q)
                item = self.stdin_q.pop(0)
            try:
                if item is None:
                    self.proc.stdin.close()
                    return
                self.proc.stdin.write(item)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                return

    def feed(self, data=None, eof=False):
        with self.cond:
            if self.proc is None or self.stdin_q[-1:] == [None]:
                return
            if data:
                self.stdin_q.append(data)
            if eof:
                self.stdin_q.append(None)
            self.cond.notify_all()

    def signal(self, sig, status=None):
        if self.proc is not None and self.exit_code is None:
            if status:
                self.status = status
            try:  # a kill takes the command's children too (its own session)
                (os.killpg if sig == signal.SIGKILL else os.kill)(self.proc.pid, sig)
            except OSError:
                pass

    def _reap(self, readers, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(9, "timed_out")
            rc = self.proc.wait()
        for t in readers:
            t.join()
        self._finish(128 - rc if rc < 0 else rc)

    def _finish(self, rc):
        with self.cond:
            self.exit_code = rc
            if self.status == "running":
                self.status = "completed"
            self.cond.notify_all()

    def info(self):
        return {"execution_id": self.id, "status": self.status, "exit_code": self.exit_code,
                "started_at": self.started, "duration_ms": int((time.monotonic() - self.t0) * 1000),
                "error_message": self.error_message}


class FakeBox:
    """A box of the double: metadata, its executions, and a host directory that is its /root."""

    def __init__(self, req, root):
        self.id = "bx" + uuid.uuid4().hex[:12]
        self.name = req.get("name")
        self.image = req.get("image") or "default"
        self.cpus = req.get("cpus") or 1
        self.memory_mib = req.get("memory_mib") or 512
        self.env = req.get("env") or {}
        self.working_dir = req.get("working_dir") or "/"
        self.status = "configured"
        self.created = self.updated = now_rfc3339()
        self.execs = {}
        self.commands = 0
        self.root = root

    def set_status(self, status):
        self.status, self.updated = status, now_rfc3339()

    def host_path(self, guest):
        """The host path behind a guest path; only /root is kept by the double."""
        guest = os.path.normpath(guest or "/")
        if guest == "/root":
            return self.root
        if guest.startswith("/root/"):
            return os.path.join(self.root, guest[len("/root/"):])
        return None

    def json(self):
        return {"box_id": self.id, "name": self.name, "status": self.status,
                "created_at": self.created, "updated_at": self.updated, "image": self.image,
                "cpus": self.cpus, "memory_mib": self.memory_mib, "labels": {}}


class WebSocket:
    """The server side of one RFC 6455 connection over a handler's socket."""

    def __init__(self, rfile, wfile, log):
        self.rfile, self.wfile, self.log = rfile, wfile, log
        self.lock = threading.Lock()
        self.closed = False

    def send(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        with self.lock:
            if self.closed and opcode != 8:
                return
            self.wfile.write(head + payload)
            self.wfile.flush()

    def recv(self):
        """(opcode, payload) of the next whole message, or None at end of stream."""
        data, first_op = b"", None
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return None
            fin, op = head[0] & 0x80, head[0] & 0x0F
            masked, n = head[1] & 0x80, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            if n > MAX_BODY:
                return None
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            payload = bytearray(self.rfile.read(n))
            for i in range(len(payload)):
                payload[i] ^= mask[i % 4]
            if op >= 8:  # control frames may come between fragments
                return op, bytes(payload)
            if first_op is None:
                first_op = op
            data += payload
            if fin:
                return first_op, data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "boxlite-double"

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing ----
    def _record(self, body):
        u = urlsplit(self.path)
        entry = {"t": round(time.monotonic() - self.server.double.t0, 3), "method": self.command,
                 "path": u.path, "query": parse_qs(u.query), "headers": dict(self.headers.items())}
        if body:
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                try:
                    entry["json"] = json.loads(body)
                except ValueError:
                    entry["body"] = body[:4000].decode("latin1")
            elif "tar" in ctype:
                entry["tar"] = tar_listing(body)
            else:
                entry["body"] = body[:4000].decode("latin1")
        self.server.double.record(entry)
        return entry

    def _send(self, status, obj=None, raw=None, ctype="application/json", headers=()):
        data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        self.send_response(status)
        if data or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.server.double.record({"reply": status, "len": len(data),
                                   "json": obj if raw is None else None})

    def _error(self, status, code, message):
        self._send(*error_body(status, code, message))

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self._error(413, "payload_too_large", "body too large")
        body = self.rfile.read(n) if n else b""
        self._record(body)
        d = self.server.double
        if urlsplit(self.path).path == "/__double/override" and self.command == "POST":
            o = json.loads(body)  # {method, path, status, json | raw}: the next such request gets it
            with d.lock:
                d.overrides[(o["method"], o["path"])] = (o["status"], o.get("json"), o.get("raw"))
            return self._send(204)
        with d.lock:
            override = d.overrides.pop((self.command, urlsplit(self.path).path), None)
        if override:
            status, obj, raw = override
            return self._send(status, obj, raw=raw.encode() if raw is not None else None)
        if d.token and urlsplit(self.path).path != "/v1/config":
            if self.headers.get("Authorization") != "Bearer " + d.token:
                return self._error(401, "unauthenticated", "missing or wrong bearer token")
        try:
            self.route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    # ---- routes ----
    def route(self, body):
        d = self.server.double
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        parts = [unquote(p) for p in u.path.split("/") if p]
        if parts[:1] != ["v1"]:
            return self._error(404, "not_found", f"no route {u.path}")
        parts = parts[1:]
        m = self.command
        if parts == ["config"]:
            return self._send(200, {"capabilities": {"snapshots_enabled": False, "clone_enabled": False,
                                                     "export_enabled": False, "import_enabled": False}})
        if parts == ["me"]:
            return self._send(200, {"id": "local", "name": "local"})
        if parts == ["metrics"] and m == "GET":
            with d.lock:
                return self._send(200, {"boxes_created_total": d.created, "boxes_failed_total": 0,
                                        "num_running_boxes": sum(b.status == "running" for b in d.boxes.values()),
                                        "total_commands_executed": d.commands, "total_exec_errors": 0})
        if parts == ["boxes"]:
            if m == "POST":
                try:
                    req = json.loads(body or b"{}")
                except ValueError:
                    return self._error(400, "invalid_argument", "body is not JSON")
                with d.lock:
                    if req.get("name") and any(b.name == req["name"] for b in d.boxes.values()):
                        return self._error(409, "already_exists", f"a box named {req['name']} exists")
                    b = FakeBox(req, tempfile.mkdtemp(prefix="box-", dir=d.root))
                    if d.autostart:
                        b.status = "running"
                    d.boxes[b.id] = b
                    d.created += 1
                return self._send(201, b.json())
            if m == "GET":
                with d.lock:
                    return self._send(200, {"boxes": [b.json() for b in d.boxes.values()], "next_page_token": None})
            return self._error(405, "method_not_allowed", "use GET or POST")
        if parts[0] != "boxes" or len(parts) < 2:
            return self._error(404, "not_found", f"no route {u.path}")
        with d.lock:
            b = d.find(parts[1])
        if b is None:
            return self._error(404, "not_found", f"no box has the id or name {parts[1]}")
        rest = parts[2:]
        if not rest:
            if m in ("GET", "HEAD"):
                return self._send(200, b.json())
            if m == "DELETE":
                if b.status == "running" and q.get("force") != "true":
                    return self._error(409, "invalid_state", f"box {b.id} is running (use force)")
                with d.lock:
                    d.boxes.pop(b.id, None)
                for e in b.execs.values():
                    e.signal(9, "killed")
                shutil.rmtree(b.root, ignore_errors=True)
                return self._send(204)
        if rest == ["start"] and m == "POST":
            b.set_status("running")
            return self._send(200, b.json())
        if rest == ["stop"] and m == "POST":
            for e in b.execs.values():
                e.signal(9, "killed")
            b.set_status("stopped")
            return self._send(200, b.json())
        if rest == ["metrics"] and m == "GET":
            return self._send(200, {"commands_executed_total": b.commands, "exec_errors_total": 0,
                                    "bytes_sent_total": 0, "bytes_received_total": 0, "cpu_percent": 1.5,
                                    "memory_bytes": 64 << 20, "network_bytes_sent": 0,
                                    "network_bytes_received": 0, "network_tcp_connections": 0,
                                    "network_tcp_errors": 0})
        if rest == ["exec"] and m == "POST":
            req = json.loads(body or b"{}")
            if b.status != "running":  # upstream: a box not running is started by exec
                b.set_status("running")
            e = FakeExec(b, req.get("command", ""), req.get("args") or [], req.get("env"),
                         req.get("working_dir"), req.get("timeout_seconds"))
            b.execs[e.id] = e
            b.commands += 1
            with d.lock:
                d.commands += 1
            return self._send(201, {"execution_id": e.id})
        if rest == ["executions"] and m == "GET":
            return self._send(200, [e.info() for e in b.execs.values()])
        if len(rest) >= 2 and rest[0] == "executions":
            e = b.execs.get(rest[1])
            if e is None:
                return self._error(404, "not_found", f"execution not found: {rest[1]}")
            tail = rest[2:]
            if not tail and m == "GET":
                return self._send(200, e.info())
            if not tail and m == "DELETE":
                e.signal(9, "killed")
                return self._send(204)
            if tail == ["signal"] and m == "POST":
                if e.exit_code is not None:
                    return self._error(409, "invalid_state", f"execution {e.id} has ended")
                e.signal(int(json.loads(body)["signal"]))
                return self._send(204)
            if tail == ["resize"] and m == "POST":
                return self._send(204)
            if tail == ["attach"] and m == "GET":
                return self.attach(e)
        if rest == ["files"]:
            path = q.get("path", "")
            if m == "PUT":
                return self.files_in(b, path, body, q.get("overwrite", "true") != "false")
            if m == "GET":
                return self.files_out(b, path)
        return self._error(404, "not_found", f"no route {m} {u.path}")

    def files_in(self, b, dest, body, overwrite):
        """Upstream reference server semantics: `path` is a directory (made when missing) into
        which the tar's entries are extracted."""
        root = b.host_path(dest)
        if root is None:
            return self._error(400, "invalid_argument", f"the double keeps files under /root only, not {dest}")
        try:
            os.makedirs(root, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(body)) as t:
                for m in t.getmembers():
                    target = os.path.normpath(os.path.join(root, m.name))
                    if target != root and not target.startswith(root + "/"):
                        return self._error(400, "invalid_argument", f"tar entry {m.name} leaves {dest}")
                    if os.path.lexists(target) and m.isfile() and not overwrite:
                        return self._error(409, "already_exists", f"{m.name} exists in {dest}")
                t.extractall(root)
        except (tarfile.TarError, OSError) as err:
            return self._error(400, "invalid_argument", f"cannot extract the tar into {dest}: {err}")
        return self._send(204)

    def files_out(self, b, src):
        """Docker-cp semantics, as upstream's reference server: the entry is named after the
        source (a directory comes with its own name on top)."""
        host = b.host_path(src)
        if host is None or not os.path.lexists(host):
            return self._error(404, "not_found", f"no such file or directory in the box: {src}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(host, arcname=os.path.basename(os.path.normpath(src)) or ".")
        return self._send(200, raw=buf.getvalue(), ctype="application/x-tar")

    def attach(self, e):
        d = self.server.double
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            return self._error(400, "invalid_argument", "attach needs a WebSocket upgrade")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        ws = WebSocket(self.rfile, self.wfile, d.record)

        def reader():
            while True:
                try:
                    msg = ws.recv()
                except (OSError, ValueError):  # the client drops the connection after the exit frame
                    return
                if msg is None:
                    return
                op, payload = msg
                if op == 2:
                    d.record({"ws_in": "binary", "exec": e.id, "data": payload.decode("latin1")})
                    e.feed(data=payload)
                elif op == 1:
                    d.record({"ws_in": "text", "exec": e.id, "data": payload.decode()})
                    try:
                        ctl = json.loads(payload)
                    except ValueError:
                        continue
                    if ctl.get("type") == "stdin_eof":
                        e.feed(eof=True)
                    elif ctl.get("type") == "signal":
                        e.signal(int(ctl.get("sig", 15)))
                elif op == 9:
                    d.record({"ws_in": "ping", "exec": e.id})
                    ws.send(10, payload)
                elif op == 8:
                    d.record({"ws_in": "close", "exec": e.id, "data": payload.hex()})
                    return

        threading.Thread(target=reader, daemon=True).start()
        last = time.monotonic()
        try:
            while True:
                with e.cond:
                    e.cond.wait_for(lambda: e.out or e.exit_code is not None, timeout=d.ping_interval or 1.0)
                    out, e.out = e.out, []
                    done = e.exit_code is not None
                for ch, data in out:
                    ws.send(2, bytes([ch]) + data)
                    d.record({"ws_out": "binary", "exec": e.id, "channel": ch, "data": data.decode("latin1")})
                    last = time.monotonic()
                if done and e.command == "__close_without_exit":  # probes the client's fallback
                    ws.send(8, struct.pack(">H", 1000))
                    ws.closed = True
                    return
                if done and e.command == "__error_frame":
                    frame = json.dumps({"type": "error", "message": "the double reports an error"})
                    ws.send(1, frame.encode())
                    d.record({"ws_out": "text", "exec": e.id, "data": frame})
                if done:
                    frame = json.dumps({"type": "exit", "exit_code": e.exit_code})
                    ws.send(1, frame.encode())
                    d.record({"ws_out": "text", "exec": e.id, "data": frame})
                    ws.send(8, struct.pack(">H", 1000))
                    ws.closed = True
                    return
                if d.ping_interval and time.monotonic() - last >= d.ping_interval:
                    ws.send(9, b"keepalive")
                    last = time.monotonic()
        except OSError:
            return


def tar_listing(data):
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            return [{"name": m.name, "type": m.type.decode(), "size": m.size, "mode": oct(m.mode),
                     "uid": m.uid, "uname": m.uname} for m in t.getmembers()]
    except tarfile.TarError as err:
        return f"not a tar ({len(data)} bytes): {err}"


class BoxliteDouble:
    def __init__(self, host="127.0.0.1", port=0, token=None, log=None, autostart=False, ping_interval=2.0):
        self.token, self.log, self.autostart, self.ping_interval = token, log, autostart, ping_interval
        self.lock = threading.RLock()
        self.boxes, self.created, self.commands = {}, 0, 0
        self.requests = []
        self.overrides = {}  # (method, path) -> (status, json): answered once, for probing
        self.t0 = time.monotonic()
        self.root = tempfile.mkdtemp(prefix="boxlite-double-")
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.double = self
        self.url = "http://%s:%d" % self.httpd.server_address[:2]

    def find(self, id_or_name):
        b = self.boxes.get(id_or_name)
        return b or next((x for x in self.boxes.values() if x.name == id_or_name), None)

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
        if self.log:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            for b in self.boxes.values():
                for e in b.execs.values():
                    e.signal(9, "killed")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--autostart", action="store_true", help="boxes are created running, not configured")
    ap.add_argument("--port-file", help="write the URL here once listening")
    ap.add_argument("--ping-interval", type=float, default=2.0, help="seconds; 0: never ping")
    a = ap.parse_args()
    d = BoxliteDouble(port=a.port, token=a.token, log=sys.stderr, autostart=a.autostart,
                      ping_interval=a.ping_interval)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(d.url)
        os.rename(a.port_file + ".tmp", a.port_file)
    print(d.url, flush=True)
    try:
        d.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
