"""What both transports (embedded over libcocoon, remote over `cocoon serve`) provide to
the public classes. The public API (Box, Execution, Images) is written once against
these two small interfaces."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

from .errors import InvalidArgument
from .types import (BoxInfo, ExecInfo, FileInfo, HealthStatus, ImageInfo, LogLine, MainStatus, NetworkStats,
                    PullProgress, Snapshot, Stats)

Sink = Callable[[bytes], None]

WAIT_CONDITIONS = ("exited", "healthy", "running")
_HEALTH_KEYS = ("cmd", "interval", "timeout", "retries", "start_period", "on_failure")


def health_spec(hc) -> Optional[dict]:
    """Box.create's healthcheck={cmd, interval, timeout, retries, start_period,
    on_failure} checked and normalized: cmd a string (run with /bin/sh -c) or an argv
    list (run as is); durations in seconds."""
    if hc is None:
        return None
    if not isinstance(hc, dict):
        raise InvalidArgument(f"healthcheck {hc!r}: a dict such as {{'cmd': 'curl -f localhost', 'interval': 5}}")
    extra = sorted(set(hc) - set(_HEALTH_KEYS))
    if extra:
        raise InvalidArgument(f"healthcheck: unknown key {extra[0]!r} (known: {', '.join(_HEALTH_KEYS)})")
    cmd = hc.get("cmd")
    if isinstance(cmd, str) and cmd.strip():
        out: dict = {"cmd": cmd, "test": None}
    elif isinstance(cmd, (list, tuple)) and cmd and all(isinstance(a, str) for a in cmd):
        out = {"cmd": None, "test": list(cmd)}
    else:
        raise InvalidArgument("healthcheck needs cmd: shell text or an argv list")
    for key in ("interval", "timeout", "start_period"):
        v = hc.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v > 86400):
            raise InvalidArgument(f"healthcheck {key} {v!r}: seconds from 0 to 86400")
        out[key] = v
    retries = hc.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 1000):
        raise InvalidArgument(f"healthcheck retries {retries!r}: from 1 to 1000")
    out["retries"] = retries
    out["on_failure"] = hc.get("on_failure")
    return out


def wait_condition(condition: str) -> int:
    """The index of a wait condition (cocoon_wait_condition's value)."""
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f"condition {condition!r}: exited, healthy or running")
    return WAIT_CONDITIONS.index(condition)


@dataclass
class ExecRequest:
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None
    user: Optional[str] = None
    tty: bool = False
    timeout: Optional[float] = None  # seconds
    stdin: Optional[bytes] = None  # sent, then EOF (None and not interactive: EOF at once)
    interactive: bool = False  # stdin stays open for write()/close_stdin()
    rows: int = 0
    cols: int = 0


@dataclass
class ExitInfo:
    exit_code: int
    signal: Optional[int]
    timed_out: bool
    duration_ms: Optional[int] = None


class ExecHandle:
    """A started command. wait() delivers the output to the sinks given at start and
    returns its end; it raises ExecError when the command could not start.
    pending_stdin/pending_eof: what feed() must still send (stdin bytes given at start
    that the transport did not send with the request, and whether to close stdin)."""

    id: object
    pending_stdin: Optional[bytes] = None
    pending_eof: bool = False

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close_stdin(self) -> None:
        raise NotImplementedError

    def signal(self, signo: int) -> None:
        raise NotImplementedError

    def resize(self, rows: int, cols: int) -> None:
        raise NotImplementedError

    def wait(self) -> ExitInfo:
        raise NotImplementedError

    def close(self) -> None:
        pass


def feed(handle: ExecHandle) -> None:
    """Sends a handle's pending stdin from a thread of its own, so that the command's
    output is read meanwhile (a command that answers as it reads cannot deadlock). A
    command that ends before reading it all is not an error."""
    data, eof = handle.pending_stdin, handle.pending_eof
    handle.pending_stdin, handle.pending_eof = None, False
    if not data and not eof:
        return

    def run() -> None:
        from .errors import CocoonError
        try:
            if data:
                handle.write(data)
            if eof:
                handle.close_stdin()
        except CocoonError:
            pass  # the command ended (or the box went) first: wait() says what happened

    threading.Thread(target=run, name="cocoon-stdin", daemon=True).start()


@dataclass
class AttachEnd:
    """How an attachment ended: the main process's end (exit_code, 128+N for signal
    N) or our detach (exit_code None)."""
    exit_code: Optional[int]
    detached: bool


class AttachHandle:
    """An attachment to the box's main process. wait() delivers its output to the sinks
    given at start until the main process ends or detach() is called; it raises
    InvalidState when the box stopped under it. The other calls may come from any
    thread while wait() runs."""

    tty: bool = False
    stdin: bool = False  # our input reaches the main process (it was started with open stdin)

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close_stdin(self) -> None:
        raise NotImplementedError

    def resize(self, rows: int, cols: int) -> None:
        raise NotImplementedError

    def signal(self, signo: int) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        raise NotImplementedError

    def wait(self) -> AttachEnd:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BoxHandle:
    """One box as a transport sees it."""

    id: str

    def info(self) -> BoxInfo: raise NotImplementedError
    def start(self) -> None: raise NotImplementedError
    def stop(self, timeout: Optional[float]) -> None: raise NotImplementedError
    def restart(self, timeout: Optional[float]) -> None: raise NotImplementedError
    def remove(self, force: bool) -> None: raise NotImplementedError
    def close(self) -> None: pass

    def run(self, req: ExecRequest, on_stdout: Optional[Sink], on_stderr: Optional[Sink]) -> ExitInfo:
        """A command to its end, output to the sinks."""
        raise NotImplementedError

    def exec_start(self, req: ExecRequest, on_stdout: Sink, on_stderr: Sink) -> ExecHandle:
        raise NotImplementedError

    def list_execs(self) -> List[ExecInfo]: raise NotImplementedError
    def signal_exec(self, exec_id: int, signo: int) -> int: raise NotImplementedError

    # files
    def read_file(self, path: str, max_bytes: int) -> bytes: raise NotImplementedError
    def write_file(self, path: str, data: bytes, mode: int) -> None: raise NotImplementedError
    def put_archive(self, box_dir: str, reader: BinaryIO, overwrite: bool) -> None: raise NotImplementedError
    def get_archive(self, path: str, writer: BinaryIO, follow: bool) -> None: raise NotImplementedError
    def copy_to(self, host_path: str, box_path: str) -> None: raise NotImplementedError
    def copy_from(self, box_path: str, host_path: str) -> None: raise NotImplementedError
    def stat(self, path: str) -> FileInfo: raise NotImplementedError
    def listdir(self, path: str) -> List[FileInfo]: raise NotImplementedError
    def mkdir(self, path: str, mode: int, parents: bool) -> None: raise NotImplementedError
    def remove_path(self, path: str, recursive: bool) -> None: raise NotImplementedError
    def move(self, src: str, dst: str, replace: bool) -> None: raise NotImplementedError

    # observation
    def stats(self) -> Stats: raise NotImplementedError
    def net_stats(self) -> NetworkStats: raise NotImplementedError
    def logs(self, follow: bool, network: bool) -> Iterator[bytes]: raise NotImplementedError

    # the main process (set at create: spec["command"], spec["restart"]) and detached execs
    def main_status(self) -> Optional[MainStatus]: raise NotImplementedError
    def main_logs(self, follow: bool, tail: Optional[int], since: Optional[str], stream: Optional[str],
                  exec_id: Optional[int] = None) -> Iterator[LogLine]: raise NotImplementedError
    def exec_detached(self, req: ExecRequest) -> int: raise NotImplementedError
    def attach(self, rows: int, cols: int, on_stdout: Sink, on_stderr: Sink) -> AttachHandle:
        raise NotImplementedError
    def detached_status(self, exec_id: int) -> MainStatus: raise NotImplementedError
    def kill_detached(self, exec_id: int, signo: int) -> None: raise NotImplementedError

    # the code interpreter: on_event gets each event (a dict) and returns False to interrupt
    def code_run(self, code: str, language: str, context: Optional[str], env: Dict[str, str],
                 timeout: Optional[float], on_event: Callable[[dict], bool]) -> None: raise NotImplementedError
    def code_context_create(self, language: str, cwd: Optional[str]) -> dict: raise NotImplementedError
    def code_context_list(self) -> List[dict]: raise NotImplementedError
    def code_context_restart(self, context_id: str) -> None: raise NotImplementedError
    def code_context_remove(self, context_id: str) -> None: raise NotImplementedError

    # the health check (set at create: spec["healthcheck"], see health_spec) and waiting
    def health(self) -> Optional[HealthStatus]: raise NotImplementedError
    def wait(self, condition: str, timeout: Optional[float]) -> Optional[int]: raise NotImplementedError

    # disk snapshots of the stopped box, its export to one file (snapshot: one of its
    # snapshots instead), and its clone (a new stopped box over a snapshot of it)
    def snapshot_create(self, name: Optional[str]) -> Snapshot: raise NotImplementedError
    def snapshot_list(self) -> List[Snapshot]: raise NotImplementedError
    def snapshot_restore(self, ref: str) -> Snapshot: raise NotImplementedError
    def compact(self) -> Dict[str, object]: raise NotImplementedError
    def export(self, path: str, snapshot: Optional[str] = None) -> None: raise NotImplementedError
    def clone(self, name: Optional[str], snapshot: Optional[str]) -> "BoxHandle": raise NotImplementedError

    def fork(self, count: int, name: Optional[str]) -> List["BoxHandle"]: raise NotImplementedError


class Transport:
    """A connection to cocoon: boxes and images."""

    kind: str

    def create_box(self, spec: dict) -> BoxHandle: raise NotImplementedError
    def open_box(self, id_or_name: str) -> BoxHandle: raise NotImplementedError
    def list_boxes(self) -> List[BoxInfo]: raise NotImplementedError

    def pull(self, ref: str, insecure: bool, progress: Optional[Callable[[PullProgress], None]]) -> ImageInfo:
        raise NotImplementedError
    def load(self, path: str) -> List[ImageInfo]: raise NotImplementedError
    def list_images(self) -> List[ImageInfo]: raise NotImplementedError
    def get_image(self, ref: str) -> Tuple[ImageInfo, Optional[dict]]: raise NotImplementedError
    def remove_image(self, ref: str) -> None: raise NotImplementedError

    # snapshots of every box (box: only those of one box), export and import
    def list_snapshots(self, box: Optional[str]) -> List[Snapshot]: raise NotImplementedError
    def get_snapshot(self, ref: str) -> Snapshot: raise NotImplementedError
    def remove_snapshot(self, ref: str) -> None: raise NotImplementedError
    def export_snapshot(self, ref: str, path: str) -> None: raise NotImplementedError
    def import_box(self, path: str, name: Optional[str]) -> BoxHandle: raise NotImplementedError
    def close(self) -> None: pass
