"""What both transports (embedded over libcocoon, remote over `cocoon serve`) provide to
the public classes. The public API (Box, Execution, Images) is written once against
these two small interfaces."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

from .types import BoxInfo, ExecInfo, FileInfo, ImageInfo, LogLine, MainStatus, NetworkStats, PullProgress, Stats

Sink = Callable[[bytes], None]


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
    def detached_status(self, exec_id: int) -> MainStatus: raise NotImplementedError
    def kill_detached(self, exec_id: int, signo: int) -> None: raise NotImplementedError

    # the code interpreter: on_event gets each event (a dict) and returns False to interrupt
    def code_run(self, code: str, language: str, context: Optional[str], env: Dict[str, str],
                 timeout: Optional[float], on_event: Callable[[dict], bool]) -> None: raise NotImplementedError
    def code_context_create(self, language: str, cwd: Optional[str]) -> dict: raise NotImplementedError
    def code_context_list(self) -> List[dict]: raise NotImplementedError
    def code_context_restart(self, context_id: str) -> None: raise NotImplementedError
    def code_context_remove(self, context_id: str) -> None: raise NotImplementedError


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
    def close(self) -> None: pass
