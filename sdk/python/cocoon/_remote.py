"""The remote transport: the `cocoon serve` REST API (docs/openapi.yaml) over its unix
socket or a URL with a bearer token, with http.client only. Collected commands use
POST .../run; streamed ones POST .../exec, then read GET .../output (NDJSON) and send
stdin, signals and resizes through their routes."""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import socket
import tarfile
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

from . import _websocket as ws
from ._transport import (AttachEnd, AttachHandle, BoxHandle, ExecHandle, ExecRequest, ExitInfo, Sink, Transport, feed,
                         wait_condition)
from .errors import (CocoonError, ExecError, HostIOError, InvalidArgument, InvalidState, NotFound, ProtocolError,
                     ResourceExhausted, SnapshotNotFound, Timeout, Unsupported, from_rest)
from .types import (BoxInfo, ExecInfo, FileInfo, HealthStatus, ImageInfo, LogLine, MainStatus, Network, NetworkStats, PullProgress,
                    Snapshot, Stats)

RUN_OUTPUT_MAX = 16 << 20  # the server's bound on POST .../run output per stream
STDIN_CHUNK = 1 << 20  # the server's bound on one POST .../stdin body
INLINE_STDIN_MAX = 768 << 10  # stdin sent inside an exec request (base64: 1 MiB, the server's bound)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float] = None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError as e:
            s.close()
            raise CocoonError(f"cannot connect to cocoon serve at {self.unix_path}: {e.strerror or e} "
                              "(start it with `cocoon serve`, or use the embedded transport)") from None
        self.sock = s


def _parse_time(text: Optional[str]) -> float:
    """Unix seconds of an RFC 3339 time (nanoseconds allowed)."""
    if not text:
        return 0.0
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        return 0.0
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3)
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)
    secs = base.replace(tzinfo=timezone.utc).timestamp() - offset
    frac = m.group(2) or ""
    return secs + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _box_info(d: dict) -> BoxInfo:
    return BoxInfo(id=d["box_id"], name=d.get("name"), status=d.get("status", "unknown"), image=d.get("image", ""),
                   cpus=d.get("cpus", 0), memory_mib=d.get("memory_mib", 0), ephemeral=bool(d.get("ephemeral")),
                   created=d.get("created_at"), image_id=d.get("image_id", ""),
                   disk_size=d.get("disk_size_bytes", 0), pid=d.get("pid"))


def _image_info(d: dict) -> ImageInfo:
    return ImageInfo(id=d["id"], reference=d.get("reference", ""), repository=d.get("repository", ""),
                     tag=d.get("tag", ""), size=d.get("size_bytes", 0), boxes=d.get("boxes", 0),
                     builtin=bool(d.get("builtin")))


def _file_info(d: dict) -> FileInfo:
    return FileInfo(name=d["name"], path=d.get("path", ""), type=d["type"], mode=d["mode"], uid=d["uid"],
                    gid=d["gid"], size=d["size"], mtime=_parse_time(d.get("mtime")), link_target=d.get("link_target"))


def _snapshot(d: dict) -> Snapshot:
    return Snapshot(id=d["id"], name=d.get("name", ""), box_id=d.get("box_id", ""), box_name=d.get("box_name"),
                    parent=d.get("parent"), image=d.get("image", ""), created=d.get("created_at", 0),
                    size=d.get("size_bytes", 0), virtual_size=d.get("virtual_size_bytes", 0),
                    depth=d.get("depth", 0), users=d.get("users", 0))


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class Http:
    """Requests to one server, keeping idle connections for reuse."""

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: Optional[float] = None):
        self.socket_path = socket_path
        self.token = token
        self.timeout = timeout
        self.prefix = "/v1"
        if url:
            u = urllib.parse.urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise InvalidArgument(f"url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
            self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
            path = u.path.rstrip("/")
            if path and path != "/v1":
                self.prefix = path + "/v1" if not path.endswith("/v1") else path
        self.url = url
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def where(self) -> str:
        return self.url or f"unix:{self.socket_path}"

    def _new(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self.url is None:
            return _UnixConnection(self.socket_path or "", timeout=timeout)
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def _headers(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        h = {"Host": "localhost"} if self.url is None else {}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def open(self, method: str, path: str, body=None, headers: Optional[Dict[str, str]] = None,
             reuse: bool = True, timeout: Optional[float] = None):
        """Sends a request; returns (connection, response) with the response unread.
        An error status raises the mapped exception (its body read)."""
        conn = None
        if reuse:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        fresh = conn is None
        if conn is None:
            conn = self._new(timeout if timeout is not None else self.timeout)
        h = self._headers(headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, self.prefix + path, body=body, headers=h)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
            conn.close()
            if fresh or (body is not None and not isinstance(body, (bytes, str))):
                raise CocoonError(f"{method} {path} on {self.where()}: {e}") from None
            return self.open(method, path, body, headers, reuse=False, timeout=timeout)  # a stale kept connection
        except OSError as e:
            conn.close()
            if isinstance(e, CocoonError):
                raise
            raise CocoonError(f"{method} {path} on {self.where()}: {e}") from None
        if resp.status >= 400:
            data = resp.read()
            self.release(conn, resp)
            raise self.error(resp.status, data, f"{method} {path}")
        return conn, resp

    @staticmethod
    def error(status: int, data: bytes, what: str) -> CocoonError:
        try:
            e = json.loads(data)["error"]
            return from_rest(status, e.get("code", ""), e.get("message", ""))
        except (ValueError, KeyError, TypeError):
            return from_rest(status, "", f"{what}: HTTP {status} {data[:200].decode(errors='replace')}".strip())

    def release(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        """Keeps conn for the next request when its response was read whole."""
        if resp.will_close or not resp.isclosed():
            conn.close()
            return
        with self._lock:
            if len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()

    def call(self, method: str, path: str, body=None, headers: Optional[Dict[str, str]] = None):
        """A whole request: the decoded JSON answer (None for an empty body)."""
        conn, resp = self.open(method, path, body, headers)
        data = resp.read()
        self.release(conn, resp)
        if not data:
            return None
        ctype = resp.getheader("Content-Type", "")
        if "json" in ctype:
            return json.loads(data)
        return data

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


def _ndjson(resp: http.client.HTTPResponse) -> Iterator[dict]:
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if line:
            yield json.loads(line)


def _exit_from(d: dict, what: str) -> ExitInfo:
    code = d.get("exit_code")
    sig = d.get("signal")
    msg = d.get("error_message")
    status = d.get("status", "completed")
    timed_out = bool(d.get("timed_out")) or status == "timed_out"
    if msg and code in (126, 127) and not sig and not timed_out:
        raise ExecError(msg, code)
    if code is None or code < 0:
        raise CocoonError(f"{what}: the server could not learn how the command ended" + (f": {msg}" if msg else ""))
    return ExitInfo(code, sig, timed_out, d.get("duration_ms"))


class _RemoteExec(ExecHandle):
    def __init__(self, box: "RemoteBox", req: ExecRequest, sinks: Tuple[Sink, Sink]):
        self.box = box
        self.http = box.http
        self.sinks = sinks
        body = box._exec_body(req)
        if not req.interactive and len(req.stdin or b"") <= INLINE_STDIN_MAX:
            body["stdin_base64"] = base64.b64encode(req.stdin or b"").decode()  # then EOF
        else:  # stdin stays open: feed() sends what there is through the stdin route
            self.pending_stdin, self.pending_eof = req.stdin or None, not req.interactive
        self.id = self.http.call("POST", f"/boxes/{box.id}/exec", body)["execution_id"]
        self.base = f"/boxes/{box.id}/executions/{self.id}"
        # The output stream is opened now: output waits for it on the server, and the
        # execution is tied to this consumer (it is killed when we go away).
        self.conn, self.resp = self.http.open("GET", self.base + "/output", reuse=False, timeout=None)

    def write(self, data: bytes) -> None:
        data = bytes(data)
        for i in range(0, len(data), STDIN_CHUNK):
            self.http.call("POST", self.base + "/stdin", data[i:i + STDIN_CHUNK],
                           {"Content-Type": "application/octet-stream"})

    def close_stdin(self) -> None:
        self.http.call("POST", self.base + "/stdin?eof=true", b"", {"Content-Type": "application/octet-stream"})

    def signal(self, signo: int) -> None:
        self.http.call("POST", self.base + "/signal", {"signal": int(signo)})

    def resize(self, rows: int, cols: int) -> None:
        self.http.call("POST", self.base + "/resize", {"rows": int(rows), "cols": int(cols)})

    def wait(self) -> ExitInfo:
        try:
            for ev in _ndjson(self.resp):
                t = ev.get("type")
                if t == "stdout":
                    self.sinks[0](base64.b64decode(ev["data"]))
                elif t == "stderr":
                    self.sinks[1](base64.b64decode(ev["data"]))
                elif t == "exit":
                    return _exit_from(ev, f"execution {self.id}")
        finally:
            self.conn.close()
        raise CocoonError(f"execution {self.id}: the output stream from {self.http.where()} ended without its exit")

    def close(self) -> None:
        self.conn.close()


ATTACH_STDIN_CHUNK = 64 << 10  # bytes per binary message (the server takes up to 1 MiB)


class _RemoteAttach(AttachHandle):
    """GET /boxes/{id}/attach: the WebSocket of the main process (docs/openapi.yaml,
    attachBox). Refusals (no main process, not running, 8 attached) come before the
    upgrade as ordinary error answers; leaving (a close frame) only detaches."""

    def __init__(self, box: "RemoteBox", rows: int, cols: int, sinks: Tuple[Sink, Sink]):
        self.sinks = sinks
        self.where = f"box {box.id}"
        path = f"{box.http.prefix}/boxes/{_q(box.id)}/attach"
        conn = box.http._new(None)
        try:
            conn.connect()
            headers = box.http._headers(None)
            if "Host" not in headers:
                headers["Host"] = f"{conn.host}:{conn.port}"
            status, _, body, reader = ws.handshake(conn.sock, path, headers)
        except OSError as e:
            conn.close()
            if isinstance(e, CocoonError):
                raise
            raise CocoonError(f"GET {path} on {box.http.where()}: {e}") from None
        except BaseException:
            conn.close()
            raise
        if status != 101:
            conn.close()
            raise Http.error(status, body, f"GET {path}")
        self.ws = ws.WebSocket(conn.sock, reader)
        self._detached = False
        if rows and cols:
            self.resize(rows, cols)

    def _send(self, fn, *args) -> None:
        try:
            fn(*args)
        except ws.Closed:
            raise InvalidState(f"{self.where}: the attachment ended") from None

    def write(self, data: bytes) -> None:
        data = bytes(data)
        for i in range(0, len(data), ATTACH_STDIN_CHUNK):
            self._send(self.ws.send_binary, data[i:i + ATTACH_STDIN_CHUNK])

    def close_stdin(self) -> None:
        self._send(self.ws.send_text, json.dumps({"type": "stdin_eof"}))

    def resize(self, rows: int, cols: int) -> None:
        self._send(self.ws.send_text, json.dumps({"type": "resize", "rows": int(rows), "cols": int(cols)}))

    def signal(self, signo: int) -> None:
        self._send(self.ws.send_text, json.dumps({"type": "signal", "sig": int(signo)}))

    def detach(self) -> None:
        self._detached = True
        self.ws.send_close()

    def wait(self) -> AttachEnd:
        exit_code: Optional[int] = None
        why = "the server ended the attachment"
        try:
            while True:
                op, data = self.ws.recv()
                if op == ws.OP_BINARY and data and data[0] in (1, 2):
                    if len(data) > 1:
                        self.sinks[data[0] - 1](data[1:])
                elif op == ws.OP_TEXT:
                    msg = json.loads(data)
                    if msg.get("type") == "exit":
                        exit_code = int(msg["exit_code"])
                    elif msg.get("type") == "error":
                        why = str(msg.get("message"))
        except ws.Closed:
            pass
        except (ValueError, KeyError, TypeError) as e:
            raise ProtocolError(f"{self.where}: a malformed attach message: {e}") from None
        finally:
            self.ws.close()
        if exit_code is not None:
            return AttachEnd(exit_code, False)
        if self._detached:
            return AttachEnd(None, True)
        raise InvalidState(f"{self.where}: {why}")

    def close(self) -> None:
        self.ws.close()


WAIT_STEP_S = 3600.0  # the server's longest wait


def _health_body(hc: dict) -> dict:
    """A health_spec dict as the create body's "health"."""
    body: dict = {"test": hc["test"]} if hc["test"] else {"cmd": hc["cmd"]}
    for key in ("interval", "timeout", "start_period"):
        if hc[key] is not None:
            body[key + "_seconds"] = hc[key]
    for key in ("retries", "on_failure"):
        if hc[key] is not None:
            body[key] = hc[key]
    return body


def _main_status(d: dict) -> MainStatus:
    return MainStatus(state=d["state"], pid=d.get("pid"), exit_code=d.get("exit_code"), signal=d.get("signal"),
                      error=d.get("error"), started_at=d.get("started_at"), finished_at=d.get("finished_at"),
                      command=d.get("command", ""), restart=d.get("restart", "no"), restarts=d.get("restarts", 0))


class RemoteBox(BoxHandle):
    def __init__(self, http_: Http, info: dict):
        self.http = http_
        self.id = info["box_id"]
        self._info = info

    def info(self) -> BoxInfo:
        return _box_info(self.http.call("GET", f"/boxes/{self.id}"))

    def start(self) -> None:
        self.http.call("POST", f"/boxes/{self.id}/start")

    def stop(self, timeout: Optional[float]) -> None:
        body = {} if timeout is None else {"timeout_seconds": timeout}
        self.http.call("POST", f"/boxes/{self.id}/stop", body)

    def restart(self, timeout: Optional[float]) -> None:
        self.stop(timeout)
        self.start()

    def remove(self, force: bool) -> None:
        self.http.call("DELETE", f"/boxes/{self.id}" + ("?force=true" if force else ""))

    # ---- exec ----
    @staticmethod
    def _exec_body(req: ExecRequest) -> dict:
        if not req.argv:
            raise InvalidArgument("empty command: give at least the program")
        body: dict = {"command": req.argv[0], "args": list(req.argv[1:])}
        if req.env:
            body["env"] = dict(req.env)
        if req.cwd:
            body["working_dir"] = req.cwd
        if req.user:
            body["user"] = req.user
        if req.timeout:
            body["timeout_seconds"] = req.timeout
        if req.tty:
            body["tty"] = True
            if req.rows:
                body["rows"] = req.rows
            if req.cols:
                body["cols"] = req.cols
        return body

    def run(self, req: ExecRequest, on_stdout: Optional[Sink], on_stderr: Optional[Sink]) -> ExitInfo:
        if req.tty or req.interactive or len(req.stdin or b"") > INLINE_STDIN_MAX:
            noop: Sink = lambda _b: None  # noqa: E731
            ex = _RemoteExec(self, req, (on_stdout or noop, on_stderr or noop))
            ex.pending_eof = True
            feed(ex)
            return ex.wait()
        body = self._exec_body(req)
        if req.stdin:
            body["stdin_base64"] = base64.b64encode(req.stdin).decode()
        body["max_output_bytes"] = RUN_OUTPUT_MAX
        r = self.http.call("POST", f"/boxes/{self.id}/run", body)
        if r.get("stdout_truncated") or r.get("stderr_truncated"):
            raise ResourceExhausted(f"the command wrote more than {RUN_OUTPUT_MAX >> 20} MiB to a stream, the most a "
                                    "collected remote run returns: stream it (box.spawn) instead")
        dec = (lambda s: base64.b64decode(s)) if r.get("encoding") == "base64" else (lambda s: s.encode())
        if on_stdout and r.get("stdout"):
            on_stdout(dec(r["stdout"]))
        if on_stderr and r.get("stderr"):
            on_stderr(dec(r["stderr"]))
        return _exit_from(r, f"run in box {self.id}")

    def exec_start(self, req: ExecRequest, on_stdout: Sink, on_stderr: Sink) -> ExecHandle:
        return _RemoteExec(self, req, (on_stdout, on_stderr))

    def list_execs(self) -> List[ExecInfo]:
        r = self.http.call("GET", f"/boxes/{self.id}/executions")
        return [ExecInfo(e["execution_id"], " ".join([e.get("command", "")]))  # type: ignore[arg-type]
                for e in r["executions"] if e.get("status") == "running"]

    def signal_exec(self, exec_id, signo: int) -> int:
        if exec_id == 0:
            hit = 0
            for e in self.list_execs():
                self.http.call("POST", f"/boxes/{self.id}/executions/{e.id}/signal", {"signal": signo})
                hit += 1
            return hit
        self.http.call("POST", f"/boxes/{self.id}/executions/{exec_id}/signal", {"signal": signo})
        return 1

    # ---- files ----
    def _files(self, path: str, **q: str) -> str:
        return f"/boxes/{self.id}/files?path={_q(path)}" + "".join(f"&{k}={v}" for k, v in q.items())

    def read_file(self, path: str, max_bytes: int) -> bytes:
        conn, resp = self.http.open("GET", self._files(path, follow_symlinks="true"), reuse=False)
        try:
            with tarfile.open(fileobj=resp, mode="r|") as tf:
                for m in tf:
                    if m.isdir():
                        raise InvalidArgument(f"{path}: is a directory, not a file (read it with download)")
                    if not m.isfile():
                        raise InvalidArgument(f"{path}: not a regular file")
                    if m.size > max_bytes:
                        raise InvalidArgument(f"{path}: {m.size} bytes, more than the {max_bytes} asked for at most")
                    f = tf.extractfile(m)
                    return f.read() if f else b""
        finally:
            conn.close()
        raise NotFound(f"{path}: the box sent no file")

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo(os.path.basename(path.rstrip("/")) or "file")
            ti.size = len(data)
            ti.mode = mode or 0o644
            ti.mtime = int(time.time())
            tf.addfile(ti, io.BytesIO(data))
        self.http.call("PUT", self._files(path), buf.getvalue(), {"Content-Type": "application/x-tar"})

    def put_archive(self, box_dir: str, reader: BinaryIO, overwrite: bool) -> None:
        with tempfile.TemporaryFile() as spool:  # a Content-Length, and no half-sent body on a read error
            while True:
                chunk = reader.read(1 << 20)
                if not chunk:
                    break
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            q = {} if overwrite else {"overwrite": "false"}
            conn, resp = self.http.open("PUT", self._files(box_dir.rstrip("/") + "/", **q), spool,
                                        {"Content-Type": "application/x-tar", "Content-Length": str(size)},
                                        reuse=False)
            resp.read()
            conn.close()

    def get_archive(self, path: str, writer: BinaryIO, follow: bool) -> None:
        q = {"follow_symlinks": "true"} if follow else {}
        conn, resp = self.http.open("GET", self._files(path, **q), reuse=False)
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                writer.write(chunk)
        except http.client.IncompleteRead as e:
            raise CocoonError(f"archive of {path}: cut short by the server ({e})") from None
        finally:
            conn.close()

    def _is_dir(self, path: str) -> Optional[bool]:
        """True/False when path exists, None when it does not."""
        try:
            return self.stat(path).is_dir
        except NotFound:
            return None
        except Unsupported:  # a server without the file operations: ask a shell
            probe = 'if [ -d "$1" ]; then echo d; elif [ -e "$1" ] || [ -L "$1" ]; then echo f; fi'
            out: List[bytes] = []
            self.run(ExecRequest(argv=["/bin/sh", "-c", probe, "sh", path]), out.append, None)
            kind = b"".join(out).strip()
            return None if not kind else kind == b"d"

    def copy_to(self, host_path: str, box_path: str) -> None:
        from ._archive import tar_of
        if not os.path.lexists(host_path):
            raise NotFound(f"{host_path}: No such file or directory")
        target_dir = self._is_dir(box_path)
        if target_dir:
            dest_dir, name = box_path, os.path.basename(os.path.normpath(host_path))
        else:
            dest_dir, name = os.path.dirname(box_path.rstrip("/")) or "/", os.path.basename(box_path.rstrip("/"))
        with tar_of(host_path, name) as f:
            self.put_archive(dest_dir, f, True)

    def copy_from(self, box_path: str, host_path: str) -> None:
        from ._archive import extract_docker_cp
        with tempfile.TemporaryFile() as f:
            self.get_archive(box_path, f, False)
            f.seek(0)
            extract_docker_cp(f, os.path.basename(box_path.rstrip("/")), host_path)

    def stat(self, path: str) -> FileInfo:
        return _file_info(self._fs("GET", f"/fs/stat?path={_q(path)}"))

    def listdir(self, path: str) -> List[FileInfo]:
        return [_file_info(e) for e in self._fs("GET", f"/fs/list?path={_q(path)}")["entries"]]

    def mkdir(self, path: str, mode: int, parents: bool) -> None:
        self._fs("POST", "/fs/mkdir", {"path": path, "parents": parents, "mode": mode})

    def remove_path(self, path: str, recursive: bool) -> None:
        self._fs("POST", "/fs/remove", {"path": path, "recursive": recursive})

    def move(self, src: str, dst: str, replace: bool) -> None:
        self._fs("POST", "/fs/move", {"from": src, "to": dst, "no_replace": not replace})

    def _fs(self, method: str, route: str, body=None):
        try:
            return self.http.call(method, f"/boxes/{self.id}" + route, body)
        except NotFound as e:
            if "no such endpoint" in e.message:
                raise Unsupported(f"the server at {self.http.where()} has no file operations ({route.split('?')[0]}): "
                                  "they need a newer cocoon serve") from None
            raise

    # ---- observation ----
    def stats(self) -> Stats:
        m = self.http.call("GET", f"/boxes/{self.id}/metrics")
        if "memory_bytes" not in m:
            from .errors import InvalidState
            raise InvalidState(f"box {self.id} is not running: its resources are measured only while it runs")
        return Stats(memory_used=m["memory_bytes"], memory_total=m.get("memory_total_bytes", 0),
                     disk_used=m.get("disk_used_bytes", 0), disk_total=m.get("disk_total_bytes", 0),
                     processes=m.get("processes", 0), uptime_seconds=m.get("uptime_seconds", 0.0),
                     load1=m.get("load1", 0.0))

    def net_stats(self) -> NetworkStats:
        return NetworkStats.from_dict(self.http.call("GET", f"/boxes/{self.id}/network/stats"))

    # ---- the code interpreter ----
    def code_run(self, code: str, language: str, context: Optional[str], env: Dict[str, str],
                 timeout: Optional[float], on_event: Callable[[dict], bool]) -> None:
        body: dict = {"code": code, "language": language}
        if context:
            body["context"] = context
        if env:
            body["env"] = dict(env)
        if timeout:
            body["timeout_seconds"] = timeout
        conn, resp = self.http.open("POST", f"/boxes/{self.id}/code", body, {"Accept": "application/x-ndjson"},
                                    reuse=False, timeout=None)
        try:  # closing the connection early interrupts the run on the server
            for ev in _ndjson(resp):
                if not on_event(ev):
                    return
        finally:
            conn.close()

    def code_context_create(self, language: str, cwd: Optional[str]) -> dict:
        body: dict = {"language": language}
        if cwd:
            body["cwd"] = cwd
        return self.http.call("POST", f"/boxes/{self.id}/code/contexts", body)

    def code_context_list(self) -> List[dict]:
        return self.http.call("GET", f"/boxes/{self.id}/code/contexts") or []

    def code_context_restart(self, context_id: str) -> None:
        self.http.call("POST", f"/boxes/{self.id}/code/contexts/{_q(context_id)}/restart")

    def code_context_remove(self, context_id: str) -> None:
        self.http.call("DELETE", f"/boxes/{self.id}/code/contexts/{_q(context_id)}")

    # ---- the main process and detached execs ----
    def main_status(self) -> Optional[MainStatus]:
        m = self.http.call("GET", f"/boxes/{self.id}").get("main")
        return _main_status(m) if m else None

    def exec_detached(self, req: ExecRequest) -> int:
        body = self._exec_body(req)
        for key in ("tty", "cols", "rows", "stdin", "stdin_base64", "max_output_bytes", "detach"):
            body.pop(key, None)
        return int(self.http.call("POST", f"/boxes/{self.id}/detached", body)["id"])

    def attach(self, rows: int, cols: int, on_stdout: Sink, on_stderr: Sink) -> AttachHandle:
        return _RemoteAttach(self, rows, cols, (on_stdout, on_stderr))

    def detached_status(self, exec_id: int) -> MainStatus:
        d = self.http.call("GET", f"/boxes/{self.id}/detached/{int(exec_id)}")
        st = _main_status(d)
        st.id = d["id"]
        return st

    # ---- the health check and waiting ----
    def health(self) -> Optional[HealthStatus]:
        h = self.http.call("GET", f"/boxes/{self.id}").get("health")
        if not h:
            return None
        last = h.get("last") or {}
        return HealthStatus(test=h["test"], interval=h["interval_ms"] / 1000, timeout=h["timeout_ms"] / 1000,
                            retries=h["retries"], start_period=h.get("start_period_ms", 0) / 1000,
                            on_failure=h.get("on_failure", "none"), status=h.get("status"),
                            failing_streak=h.get("failing_streak", 0), last_exit_code=last.get("exit_code"),
                            last_output=last.get("output"))

    def wait(self, condition: str, timeout: Optional[float]) -> Optional[int]:
        """POST /wait, in steps of at most the server's hour when there is no timeout."""
        wait_condition(condition)
        while True:
            step = WAIT_STEP_S if timeout is None else min(max(timeout, 0.0), WAIT_STEP_S)
            try:
                conn, resp = self.http.open("POST", f"/boxes/{self.id}/wait",
                                            {"condition": condition, "timeout_seconds": step}, reuse=False,
                                            timeout=step + 60)
            except CocoonError as e:
                if e.code != "timeout":
                    raise
                if timeout is None:
                    continue
                timeout -= step
                if timeout > 0:
                    continue
                raise Timeout(e.message) from None
            data = json.loads(resp.read())
            self.http.release(conn, resp)
            return data.get("exit_code")

    def kill_detached(self, exec_id: int, signo: int) -> None:
        self.http.call("DELETE", f"/boxes/{self.id}/detached/{int(exec_id)}?signal={int(signo)}")

    def main_logs(self, follow: bool, tail: Optional[int], since: Optional[str], stream: Optional[str],
                  exec_id: Optional[int] = None) -> Iterator[LogLine]:
        q = {"format": "ndjson"}
        if follow:
            q["follow"] = "true"
        if tail is not None:
            q["tail"] = str(int(tail))
        if since is not None:
            q["since"] = since
        if stream is not None:
            q["stream"] = stream
        base = f"/boxes/{self.id}/logs" if exec_id is None else f"/boxes/{self.id}/detached/{int(exec_id)}/logs"
        conn, resp = self.http.open("GET", base + "?" + urllib.parse.urlencode(q), reuse=False, timeout=None)

        def lines() -> Iterator[LogLine]:
            try:
                for rec in _ndjson(resp):
                    yield LogLine(rec.get("time"), rec["stream"], rec["text"])
            finally:
                conn.close()
        return lines()

    def logs(self, follow: bool, network: bool) -> Iterator[bytes]:
        route = f"/boxes/{self.id}/" + ("network/logs" if network else "logs?console=true") + \
            (("&" if not network else "?") + "follow=true" if follow else "")
        conn, resp = self.http.open("GET", route, reuse=False, timeout=None)

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    c = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                    if not c:
                        return
                    yield c
            finally:
                conn.close()
        return chunks()


    # ---- disk snapshots (GET/POST /boxes/{id}/snapshots...) ----
    def snapshot_create(self, name: Optional[str]) -> Snapshot:
        return _snapshot(self.http.call("POST", f"/boxes/{self.id}/snapshots", {"name": name} if name else {}))

    def snapshot_list(self) -> List[Snapshot]:
        return [_snapshot(d) for d in self.http.call("GET", f"/boxes/{self.id}/snapshots")["snapshots"]]

    def snapshot_restore(self, ref: str) -> Snapshot:
        return _snapshot(self.http.call("POST", f"/boxes/{self.id}/snapshots/{_q(ref)}/restore"))

    def compact(self) -> Dict[str, object]:
        return self.http.call("POST", f"/boxes/{self.id}/compact")

    def export(self, path: str, snapshot: Optional[str] = None) -> None:
        """POST .../export: the archive streamed into path (written beside it and renamed
        into place once whole, as `cocoon export` does)."""
        conn, resp = self.http.open("POST", f"/boxes/{self.id}/export", {"snapshot": snapshot} if snapshot else {},
                                    reuse=False, timeout=None)
        partial = f"{path}.partial-{os.getpid()}"
        try:
            with open(partial, "wb") as f:
                while True:
                    try:
                        chunk = resp.read(1 << 20)
                    except (http.client.HTTPException, OSError) as e:  # a chunked answer cut short
                        raise CocoonError(f"export of box {self.id}: the server's answer broke off: {e!r}") from None
                    if not chunk:
                        break
                    f.write(chunk)
            if resp.length:  # bytes a Content-Length promised that never came
                raise CocoonError(f"export of box {self.id}: the server's answer ended {resp.length} bytes early")
            os.replace(partial, path)
        except BaseException:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise
        finally:
            conn.close()

    def clone(self, name: Optional[str], snapshot: Optional[str]) -> "RemoteBox":
        body = {k: v for k, v in (("name", name), ("snapshot", snapshot)) if v}
        return RemoteBox(self.http, self.http.call("POST", f"/boxes/{self.id}/clone", body))

    def fork(self, count: int, name: Optional[str]) -> list:
        body: dict = {"count": count}
        if name:
            body["name"] = name
        answer = self.http.call("POST", f"/boxes/{self.id}/fork", body)
        return [RemoteBox(self.http, b) for b in answer["boxes"]]


class RemoteTransport(Transport):
    kind = "remote"

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: Optional[float] = None):
        self.http = Http(socket_path, url, token, timeout)

    def create_box(self, spec: dict) -> RemoteBox:
        net: Network = spec.get("network") or Network()
        body: dict = {}
        for key, field in (("name", "name"), ("image", "image"), ("rootfs", "rootfs"), ("cpus", "cpus"),
                           ("memory_mib", "memory_mib"), ("disk_bytes", "disk_size_bytes"), ("env", "env"),
                           ("workdir", "working_dir"), ("user", "user"), ("accel", "accel"), ("vmm", "vmm")):
            if spec.get(key):
                body[field] = spec[key]
        body["ephemeral"] = bool(spec.get("ephemeral"))
        network: dict = {"mode": net.mode}
        rules = net.all_rules()
        if rules:
            network["outbound"] = {"rules": rules}
        body["network"] = network
        if net.ports:
            body["ports"] = list(net.ports)
        if spec.get("command"):
            body["command"] = list(spec["command"])
        if spec.get("restart"):
            body["restart"] = spec["restart"]
        for key in ("tty", "open_stdin"):
            if spec.get(key):
                body[key] = True
        if spec.get("healthcheck"):
            body["health"] = _health_body(spec["healthcheck"])
        for key in ("tls_intercept", "tls_bypass", "header_rules"):
            if spec.get(key):
                body[key] = list(spec[key])
        if spec.get("secrets"):  # names and hosts: the server's environment has the values
            where = spec.get("secret_in") or {}
            body["secrets"] = [dict({"name": n, "hosts": list(h)}, **({"in": list(where[n])} if n in where else {}))
                               for n, h in spec["secrets"].items()]
        if spec.get("secret_violation"):
            body["secret_violation"] = spec["secret_violation"]
        return RemoteBox(self.http, self.http.call("POST", "/boxes", body))

    def open_box(self, id_or_name: str) -> RemoteBox:
        return RemoteBox(self.http, self.http.call("GET", f"/boxes/{_q(id_or_name)}"))

    def list_boxes(self) -> List[BoxInfo]:
        return [_box_info(b) for b in self.http.call("GET", "/boxes")["boxes"]]

    def pull(self, ref: str, insecure: bool, progress: Optional[Callable[[PullProgress], None]]) -> ImageInfo:
        body = {"reference": ref, "insecure": bool(insecure)}
        if progress is None:
            return _image_info(self.http.call("POST", "/images/pull", body))
        conn, resp = self.http.open("POST", "/images/pull", body, {"Accept": "application/x-ndjson"}, reuse=False,
                                    timeout=None)
        try:
            for ev in _ndjson(resp):
                t = ev.get("type")
                if t == "progress":
                    progress(PullProgress(ev.get("layer", ""), ev.get("done", 0), ev.get("total", 0)))
                elif t == "done":
                    return _image_info(ev["image"])
                elif t == "error":
                    e = ev.get("error", {})
                    raise from_rest(422, e.get("code", "image_pull_failed"), e.get("message", "pull failed"))
        finally:
            conn.close()
        raise CocoonError(f"pull of {ref}: the progress stream ended without a result")

    def load(self, path: str) -> List[ImageInfo]:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            conn, resp = self.http.open("POST", "/images/load", f,
                                        {"Content-Type": "application/x-tar", "Content-Length": str(size)},
                                        reuse=False, timeout=None)
            data = resp.read()
            conn.close()
        return [_image_info(i) for i in json.loads(data)["images"]]

    def list_images(self) -> List[ImageInfo]:
        return [_image_info(i) for i in self.http.call("GET", "/images")["images"]]

    def get_image(self, ref: str) -> Tuple[ImageInfo, Optional[dict]]:
        d = self.http.call("GET", f"/images/{_q(ref)}")
        return _image_info(d), d.get("config")

    def remove_image(self, ref: str) -> None:
        self.http.call("DELETE", f"/images/{_q(ref)}")

    # The REST API names snapshots under their box: a snapshot is found by asking each
    # box (one whose box was removed is out of reach here).
    def list_snapshots(self, box: Optional[str]) -> List[Snapshot]:
        if box is not None:
            return self.open_box(box).snapshot_list()
        out: List[Snapshot] = []
        for b in self.list_boxes():
            try:
                out += RemoteBox(self.http, {"box_id": b.id}).snapshot_list()
            except NotFound:
                pass  # removed meanwhile
        return sorted(out, key=lambda s: s.created)

    def get_snapshot(self, ref: str) -> Snapshot:
        for b in self.list_boxes():
            try:
                return _snapshot(self.http.call("GET", f"/boxes/{b.id}/snapshots/{_q(ref)}"))
            except NotFound:
                continue
        raise SnapshotNotFound(f"no snapshot with id or name \"{ref}\" among the boxes of {self.http.where()} "
                               "(a snapshot whose box was removed is reachable only on the server's host: "
                               "`cocoon snapshot ls`)")

    def remove_snapshot(self, ref: str) -> None:
        s = self.get_snapshot(ref)
        self.http.call("DELETE", f"/boxes/{s.box_id}/snapshots/{s.id}")

    def export_snapshot(self, ref: str, path: str) -> None:
        s = self.get_snapshot(ref)
        RemoteBox(self.http, {"box_id": s.box_id}).export(path, s.id)

    def import_box(self, path: str, name: Optional[str]) -> RemoteBox:
        """POST /boxes/import: the archive uploaded as the body (the server spools it
        within its --max-upload and verifies it whole)."""
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise (NotFound if isinstance(e, FileNotFoundError) else HostIOError)(
                f"cannot open {path}: {e.strerror}") from None
        route = "/boxes/import" + (f"?name={_q(name)}" if name else "")
        with open(path, "rb") as f:
            conn, resp = self.http.open("POST", route, f, {"Content-Type": "application/octet-stream",
                                                           "Content-Length": str(size)}, reuse=False, timeout=None)
            data = resp.read()
            conn.close()
        return RemoteBox(self.http, json.loads(data))

    def close(self) -> None:
        self.http.close()
