"""Box (synchronous): a sandbox and everything done with it: commands (collected,
streamed, interactive, many at once), files, resources and logs. The same class works
over both transports; see cocoon.Client."""
from __future__ import annotations

import io
import os
import queue
import shlex
import threading
import weakref
from typing import (Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union)

from ._transport import AttachEnd, AttachHandle, BoxHandle, ExecHandle, ExecRequest, ExitInfo, feed, health_spec
from .client import Client, default_client
from .code import CodeContext, CodeError, CodeExecution, Collector, Result, language_of
from .errors import CocoonError, InvalidArgument, InvalidState, NotFound, Timeout
from .types import (BoxInfo, ExecInfo, ExecResult, FileInfo, HealthStatus, LogLine, MainStatus, Network, NetworkStats, OutputChunk,
                    Snapshot, Stats, parse_memory_mib, parse_size)

Command = Union[str, Sequence[str]]
OutputCallback = Callable[[bytes], Any]
StdinData = Union[bytes, bytearray, memoryview, str, None]

_READ_MAX = 1 << 30


def _argv(cmd: Command, shell: bool) -> List[str]:
    if shell:
        if not isinstance(cmd, str):
            cmd = " ".join(shlex.quote(a) for a in cmd)
        return ["/bin/sh", "-c", cmd]
    if isinstance(cmd, str):
        argv = shlex.split(cmd)
    else:
        argv = [os.fspath(a) if not isinstance(a, str) else a for a in cmd]
    if not argv:
        raise InvalidArgument("empty command: give at least the program")
    return argv


def _bytes(data: StdinData) -> Optional[bytes]:
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


def _result(exit: ExitInfo, out: bytes, err: bytes) -> ExecResult:
    return ExecResult(exit_code=exit.exit_code, stdout_bytes=out, stderr_bytes=err, signal=exit.signal,
                      timed_out=exit.timed_out, duration_ms=exit.duration_ms)


def _finish(r: ExecResult, timeout: Optional[float], check: bool) -> ExecResult:
    if r.timed_out:
        raise Timeout(f"command timed out after {timeout} s (killed)", r)
    if check:
        r.check()
    return r


class _Output:
    """A started handle (an exec or an attachment) whose wait() runs in a thread of its
    own, its output coming as OutputChunk objects through self._queue (None: the end)
    unless callbacks take it. self._ended: what wait() returned; self._error: what it raised."""

    def _begin(self, start: Callable[[OutputCallback, OutputCallback], Any], on_stdout: Optional[OutputCallback],
               on_stderr: Optional[OutputCallback], thread_name: str) -> None:
        self._queue: "queue.Queue[Optional[OutputChunk]]" = queue.Queue()
        self._ended: Any = None
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        self._handle = start(on_stdout or (lambda b: self._queue.put(OutputChunk("stdout", b))),
                             on_stderr or (lambda b: self._queue.put(OutputChunk("stderr", b))))
        self._thread = threading.Thread(target=self._pump, name=thread_name, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            self._ended = self._handle.wait()
        except BaseException as e:  # noqa: BLE001 - raised by wait()
            self._error = e
        finally:
            self._queue.put(None)
            self._done.set()

    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                self._queue.put(None)  # later iterations and wait() see the end too
                return
            yield chunk

    def lines(self, stream: Optional[str] = None) -> Iterator[str]:
        """The output as text lines (without their newline), of both streams or one."""
        pending = {"stdout": b"", "stderr": b""}
        for chunk in self:
            if stream and chunk.stream != stream:
                continue
            pending[chunk.stream] += chunk.data
            *whole, pending[chunk.stream] = pending[chunk.stream].split(b"\n")
            for line in whole:
                yield line.decode("utf-8", "replace")
        for rest in pending.values():
            if rest:
                yield rest.decode("utf-8", "replace")


class Execution(_Output):
    """A running command (Box.spawn). Iterate it for its output as OutputChunk objects
    (or give callbacks to spawn), write to its stdin, signal or resize it, and wait()
    for its ExecResult. The output is delivered once: what iteration or the callbacks
    took is not in wait()'s result; what nobody took is. Use it as a context manager to
    kill it if it still runs when the block ends."""

    def __init__(self, box: "Box", req: ExecRequest, on_stdout: Optional[OutputCallback],
                 on_stderr: Optional[OutputCallback]):
        self._req = req
        self._out: List[bytes] = []
        self._err: List[bytes] = []
        self._result: Optional[ExecResult] = None
        self._handle: ExecHandle
        self._begin(lambda out, err: box._need().exec_start(req, out, err), on_stdout, on_stderr, "cocoon-exec")
        feed(self._handle)

    @property
    def id(self) -> Any:
        """The execution's id: the guest pid (embedded) or the server's execution id."""
        return self._handle.id

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def write(self, data: StdinData) -> None:
        """Sends bytes (or text, as UTF-8) to the command's stdin (spawn(stdin=True))."""
        if not self._req.interactive:
            raise InvalidState("this command's stdin is closed: spawn it with stdin=True to write to it")
        self._handle.write(_bytes(data) or b"")

    def close_stdin(self) -> None:
        """Ends the command's stdin (it reads EOF)."""
        self._handle.close_stdin()

    def signal(self, signo: int) -> None:
        """Sends a signal (1..64) to the command's whole process group."""
        self._handle.signal(int(signo))

    def kill(self) -> None:
        """SIGKILL, unless it ended already."""
        if self.running:
            try:
                self._handle.signal(9)
            except (InvalidState, NotFound):
                pass

    def resize(self, rows: int, cols: int) -> None:
        """The terminal size of a command started with tty=True (it gets SIGWINCH)."""
        self._handle.resize(int(rows), int(cols))

    def wait(self, timeout: Optional[float] = None, *, check: bool = False) -> ExecResult:
        """Waits for the end; returns the ExecResult with the output nobody took.
        Raises Timeout when the command's own timeout killed it, ExecError when it
        could not start, TimeoutError when `timeout` (seconds of waiting here) passed."""
        if self._result is None:
            if not self._done.wait(timeout):
                raise TimeoutError(f"the command still runs after {timeout} s of waiting")
            self._thread.join()
            while True:
                chunk = self._queue.get()
                if chunk is None:
                    self._queue.put(None)
                    break
                (self._out if chunk.stream == "stdout" else self._err).append(chunk.data)
            self._handle.close()
            if self._error is not None:
                raise self._error
            assert isinstance(self._ended, ExitInfo)
            self._result = _result(self._ended, b"".join(self._out), b"".join(self._err))
        return _finish(self._result, self._req.timeout, check)

    def __enter__(self) -> "Execution":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        try:
            self.wait()
        except CocoonError:
            pass


class Attachment(_Output):
    """An attachment to the box's main process (Box.attach), like `cocoon attach`:
    iterate it for the main process's output from the moment it attached (OutputChunk
    objects; a main process on a terminal has only "stdout"), write to its stdin (when
    it was created with open_stdin=True), resize its terminal, signal it, detach() and
    wait() for its exit code. Leaving a `with` block detaches: the main process runs on."""

    def __init__(self, box: "Box", rows: int, cols: int, on_stdout: Optional[OutputCallback],
                 on_stderr: Optional[OutputCallback]):
        self._handle: AttachHandle
        self._begin(lambda out, err: box._need().attach(int(rows), int(cols), out, err), on_stdout, on_stderr,
                    "cocoon-attach")

    @property
    def attached(self) -> bool:
        """Still attached: the main process runs and detach() was not called."""
        return not self._done.is_set()

    def write(self, data: StdinData) -> None:
        """Sends bytes (or text, as UTF-8) to the main process's stdin; dropped when it
        was not created with open_stdin=True. InvalidState once the attachment ended."""
        if self._done.is_set():
            raise InvalidState("the attachment ended: nothing reads its stdin any more")
        self._handle.write(_bytes(data) or b"")

    def close_stdin(self) -> None:
        """Ends this attachment's input; the main process's stdin stays open for other
        attachers (docker's -i)."""
        if not self._done.is_set():
            self._handle.close_stdin()

    def resize(self, rows: int, cols: int) -> None:
        """The terminal size of a main process created with tty=True (it gets SIGWINCH)."""
        rows, cols = int(rows), int(cols)
        if not (1 <= rows <= 65535 and 1 <= cols <= 65535):
            raise InvalidArgument(f"terminal size {rows}x{cols}: rows and cols from 1 to 65535")
        if not self._done.is_set():
            self._handle.resize(rows, cols)

    def signal(self, signo: int) -> None:
        """Sends a signal (1..64) to the main process."""
        signo = int(signo)
        if not 1 <= signo <= 64:
            raise InvalidArgument(f"signal {signo}: from 1 to 64")
        if not self._done.is_set():
            self._handle.signal(signo)

    def detach(self) -> None:
        """Leaves the main process running; wait() then returns None."""
        if not self._done.is_set():
            self._handle.detach()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the main process ended (its exit code, 128+N for signal N; its
        restart policy then decides what happens next) or detach() was called (None).
        Output nobody iterated is dropped. Raises InvalidState when the box stopped
        under the attachment, TimeoutError when `timeout` seconds passed."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"still attached after {timeout} s of waiting")
        self._thread.join()
        self._handle.close()
        if self._error is not None:
            raise self._error
        assert isinstance(self._ended, AttachEnd)
        return self._ended.exit_code

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()
        try:
            self.wait()
        except CocoonError:
            pass


class Files:
    """A box's files: ``box.files.write("/app/x.py", "print(1)")``. Paths are absolute
    paths in the box; the box must be running."""

    def __init__(self, box: "Box"):
        self._box = box

    def read(self, path: str, *, max_bytes: int = _READ_MAX) -> bytes:
        """The bytes of a regular file (a symlink is followed inside the box); a file
        above max_bytes is refused with InvalidArgument."""
        return self._box._need().read_file(path, max_bytes)

    def read_text(self, path: str, encoding: str = "utf-8", errors: str = "strict", *,
                  max_bytes: int = _READ_MAX) -> str:
        return self.read(path, max_bytes=max_bytes).decode(encoding, errors)

    def write(self, path: str, data: Union[bytes, bytearray, memoryview, str], *, mode: int = 0o644) -> None:
        """Creates or replaces the file at path with data (text goes as UTF-8)."""
        self._box._need().write_file(path, _bytes(data) or b"", mode)

    def write_text(self, path: str, text: str, encoding: str = "utf-8", *, mode: int = 0o644) -> None:
        self._box._need().write_file(path, text.encode(encoding), mode)

    def upload(self, local_path: Union[str, os.PathLike], box_path: str) -> None:
        """Copies a host file or tree into the box like `docker cp`: into box_path under
        its own name when box_path is an existing directory, else as box_path itself.
        Modes, mtimes and symlinks travel; files belong to root in the box."""
        self._box._need().copy_to(os.fspath(local_path), box_path)

    def download(self, box_path: str, local_path: Union[str, os.PathLike]) -> None:
        """Copies a file or tree out of the box like `docker cp`, with everything the
        guest sends checked (no entry outside the copy, no symlink leading out, no
        setuid bits; see the README's "Files")."""
        self._box._need().copy_from(box_path, os.fspath(local_path))

    def put_archive(self, box_dir: str, archive: Union[bytes, BinaryIO], *, overwrite: bool = True) -> None:
        """Extracts a plain tar archive (bytes or a readable binary file) into the
        existing directory box_dir, checked on the host first (cocoon_tar_to_box)."""
        reader = io.BytesIO(archive) if isinstance(archive, (bytes, bytearray, memoryview)) else archive
        self._box._need().put_archive(box_dir, reader, overwrite)

    def get_archive(self, box_path: str, writer: Optional[BinaryIO] = None, *, follow: bool = False) -> bytes:
        """A tar archive of box_path (its top entry named after its last component),
        written to writer or returned (cocoon_tar_from_box)."""
        buf = io.BytesIO() if writer is None else writer
        self._box._need().get_archive(box_path, buf, follow)
        return buf.getvalue() if writer is None else b""  # type: ignore[union-attr]

    def stat(self, path: str) -> FileInfo:
        """What is at path (a final symlink is not followed)."""
        return self._box._need().stat(path)

    def exists(self, path: str) -> bool:
        try:
            self._box._need().stat(path)
            return True
        except NotFound:
            return False

    def list(self, path: str) -> List[FileInfo]:
        """The entries of a directory, sorted by name."""
        return self._box._need().listdir(path)

    def mkdir(self, path: str, *, parents: bool = False, mode: int = 0o755) -> None:
        """Makes a directory (parents=True: like mkdir -p, existing ones are fine)."""
        self._box._need().mkdir(path, mode, parents)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file, symlink or empty directory (recursive=True: like rm -r)."""
        self._box._need().remove_path(path, recursive)

    def move(self, src: str, dst: str, *, replace: bool = True) -> None:
        """Renames inside the box (replace=False refuses an existing destination)."""
        self._box._need().move(src, dst, replace)


class Box:
    """A box: a microVM sandbox with its own kernel and disk.

    ``Box.create(image="python:3.12-slim", cpus=2, memory="512M")`` creates and starts
    one (a context manager that stops it at the end); ``Box.get(name)`` opens an
    existing one. ``Box(image=..., cpus=2, memory="512m")`` only describes a box:
    ``start()`` creates and starts it (the peers' style).

    Boxes are kept by default, with their disk, across stop and start (as the CLI's and
    the C library's are); ``ephemeral=True`` makes one that is removed when it stops or
    when this process exits (what a ``with`` block usually wants).
    """

    def __init__(self, image: Optional[str] = None, *, cpus: Optional[int] = None,
                 memory: Union[int, str, None] = None, disk: Union[int, str, None] = None,
                 env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None, user: Optional[str] = None,
                 network: Union[Network, str, Mapping, None] = None, ports: Optional[Sequence[str]] = None,
                 name: Optional[str] = None, ephemeral: bool = False, rootfs: Optional[str] = None,
                 accel: Optional[str] = None, vmm: Optional[str] = None, boot_timeout: Optional[float] = None,
                 command: Optional[Command] = None, restart: Optional[str] = None, tty: bool = False,
                 open_stdin: bool = False, healthcheck: Optional[Mapping[str, Any]] = None,
                 secrets: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
                 header_rules: Optional[Sequence[str]] = None, tls_intercept: Optional[Sequence[str]] = None,
                 tls_bypass: Optional[Sequence[str]] = None, secret_violation: Optional[str] = None,
                 secret_in: Optional[Mapping[str, Sequence[str]]] = None, client: Optional[Client] = None):
        net = Network.coerce(network)
        main = _argv(command, False) if command else None
        if restart is not None and not isinstance(restart, str):
            raise InvalidArgument(f"restart {restart!r}: a policy such as \"on-failure:3\" or \"always\"")
        if restart and restart != "no" and not main:
            raise InvalidArgument(f"restart {restart!r} needs a main process: give command=[...]")
        if (tty or open_stdin) and not main:
            raise InvalidArgument("tty and open_stdin are for a main process: give command=[...]")
        if ports:
            net = Network(net.mode, net.allow, net.deny, net.rules, list(net.ports) + list(ports))
        secret_in = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in (secret_in or {}).items()}
        unknown = sorted(set(secret_in) - set(secrets or {}))
        if unknown:
            raise InvalidArgument(f"secret_in names {', '.join(unknown)}, not among the secrets")
        self._client = client
        self._spec: Optional[Dict[str, Any]] = {
            "image": image, "rootfs": rootfs, "cpus": cpus or 0, "memory_mib": parse_memory_mib(memory),
            "disk_bytes": parse_size(disk, 1 << 20) if disk is not None else 0, "env": dict(env or {}),
            "workdir": workdir, "user": user, "network": net, "name": name, "ephemeral": ephemeral,
            "accel": accel, "vmm": vmm, "boot_timeout": boot_timeout, "command": main, "restart": restart,
            "tty": bool(tty), "open_stdin": bool(open_stdin),
            "healthcheck": health_spec(dict(healthcheck) if isinstance(healthcheck, Mapping) else healthcheck),
            "secrets": {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in (secrets or {}).items()},
            "header_rules": list(header_rules or []), "tls_intercept": list(tls_intercept or []),
            "tls_bypass": list(tls_bypass or []), "secret_violation": secret_violation, "secret_in": secret_in}
        self._h: BoxHandle = None  # type: ignore[assignment]
        self._created_here = False
        self._closed = False
        self.files = Files(self)
        self._finalizer: Optional[weakref.finalize] = None

    # ---- making and finding boxes ----
    @classmethod
    def create(cls, image: Optional[str] = None, *, start: bool = True, client: Optional[Client] = None,
               **options: Any) -> "Box":
        """Creates a box (an image not here is pulled first) and starts it unless
        start=False. Options: cpus, memory ("512M", "1G" or MiB), disk ("10G"), env,
        workdir, user (defaults of every command), network ("public", "none", "open",
        a dict {mode, allow, deny, ports} or a cocoon.Network), ports (["8080:80"]),
        name, ephemeral (default False), rootfs (a host directory instead of an image),
        accel, vmm, boot_timeout (seconds), command (the box's main process: an argv list
        or a string split like a shell would, run by the box each time it boots, after
        the image's entrypoint, with env, workdir and user) and restart ("no",
        "on-failure", "on-failure:N", "always", "unless-stopped"), tty and open_stdin
        (the main process runs on a terminal / keeps its stdin open for attach(), as
        `cocoon run -d -t -i`), healthcheck (a dict
        {cmd, interval, timeout, retries, start_period, on_failure}: cmd shell text or
        an argv list, durations in seconds; see health() and wait()), secrets ({NAME:
        host or [hosts]}: inside the box $NAME holds a placeholder, cocoon puts the value
        in HTTPS request headers to those hosts only; the value is read from this
        process's environment, or the server's, at each start), header_rules
        (["HOST:Name=Value"]), tls_intercept and tls_bypass (host lists), secret_in ({NAME:
        ["query", "body"]}: where else than headers a secret's value may go) and
        secret_violation ("block", "block-and-log", the default, or "block-and-stop-box":
        what a placeholder sent where it may not does). Raises
        AlreadyExists for a name in use, InvalidArgument for a bad restart policy or
        health check."""
        box = cls(image, client=client, **options)
        box._create()
        if start:
            try:
                box.start()
            except BaseException:
                box._cleanup_failed_start()
                raise
        return box

    @classmethod
    def get(cls, id_or_name: str, *, client: Optional[Client] = None) -> "Box":
        """An existing box by id, name or unique id prefix (NotFound otherwise)."""
        c = client or default_client()
        return cls._wrap(c, c._transport.open_box(id_or_name))

    open = get

    @classmethod
    def list(cls, *, client: Optional[Client] = None) -> List[BoxInfo]:
        """Every box, oldest first."""
        return (client or default_client()).boxes()

    @classmethod
    def _wrap(cls, client: Client, handle: BoxHandle) -> "Box":
        box = cls.__new__(cls)
        box._client = client
        box._spec = None
        box._h = handle
        box._created_here = False
        box._closed = False
        box.files = Files(box)
        box._finalizer = weakref.finalize(box, handle.close)
        return box

    def _create(self) -> None:
        assert self._spec is not None
        c = self._client or default_client()
        self._client = c
        self._h = c._transport.create_box(self._spec)
        self._created_here = True
        self._finalizer = weakref.finalize(self, self._h.close)

    def _cleanup_failed_start(self) -> None:
        try:
            self._h.remove(True)
        except CocoonError:
            pass
        self.close()

    def _need(self) -> BoxHandle:
        if self._h is None:
            raise InvalidState("this box was described but not created yet: call start() (or use Box.create)")
        if self._closed:
            raise InvalidState(f"box {self._h.id}: this Box was closed or removed; open it again with Box.get")
        return self._h

    # ---- identity and state ----
    @property
    def client(self) -> Client:
        return self._client or default_client()

    @property
    def id(self) -> str:
        if self._h is None:
            raise InvalidState("this box was described but not created yet: call start() (or use Box.create)")
        return self._h.id

    @property
    def name(self) -> Optional[str]:
        return self.info().name

    def info(self) -> BoxInfo:
        """What `cocoon inspect` shows (status, image, cpus, memory...)."""
        return self._need().info()

    @property
    def status(self) -> str:
        return self.info().status

    @property
    def running(self) -> bool:
        return self.info().status == "running"

    # ---- lifecycle ----
    def start(self) -> "Box":
        """Boots the box and waits until it is ready (a box described with Box(...) is
        created first). Starting a running box does nothing."""
        if self._h is None:
            self._create()
            try:
                self._h.start()
            except BaseException:
                self._cleanup_failed_start()
                raise
            return self
        self._need().start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Shuts the guest down, killing it after timeout seconds (default 10). An
        ephemeral box is removed once stopped. Stopping a stopped box does nothing."""
        self._need().stop(timeout)

    def restart(self, timeout: Optional[float] = None) -> None:
        self._need().restart(timeout)

    def remove(self, *, force: bool = True) -> None:
        """Deletes the box and its disk (force: stop it first when running; without,
        a running box raises InvalidState). The handle is closed."""
        self._need().remove(force)
        self.close()

    def close(self) -> None:
        """Releases the handle (the box keeps running unless it is ephemeral and this
        process made it: then it stops when the process exits)."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "Box":
        if self._h is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stops a box this object created (an ephemeral one is thus removed) and
        closes the handle; a box opened with Box.get is only closed."""
        try:
            if self._created_here and self._h is not None and not self._closed:
                try:
                    self._h.stop(None)
                except NotFound:
                    pass
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"<cocoon.Box {self._h.id if self._h is not None else '(not created)'}>"

    # ---- disk snapshots, export and clones (of the stopped box) ----
    def snapshot(self, name: Optional[str] = None) -> Snapshot:
        """Freezes the stopped box's disk as a snapshot (name: unique among snapshots,
        letters, digits, '_', '.', '-'; default "<box>-<n>") and goes on in a new layer
        over it. BoxRunning while the box runs; a box stands on at most 14 snapshots."""
        return self._need().snapshot_create(name)

    def snapshots(self) -> List[Snapshot]:
        """The snapshots taken of this box, oldest first."""
        return self._need().snapshot_list()

    def restore(self, snapshot: Union[str, Snapshot]) -> Snapshot:
        """Puts the stopped box's disk back to one of its snapshots (an id, name, id
        prefix or Snapshot): what it wrote since is gone. Returns the snapshot.
        BoxRunning while it runs, SnapshotNotFound for none of its snapshots."""
        return self._need().snapshot_restore(snapshot.id if isinstance(snapshot, Snapshot) else snapshot)

    def compact(self) -> Dict[str, Any]:
        """Merges the stopped box's disk layers (its top and the snapshots under it) into
        one layer over its image, with the same contents: its snapshots stay but it no
        longer stands on them. Returns layers_before/after, bytes_before/after,
        data_clusters, zero_clusters and released (the snapshot ids it left).
        BoxRunning while it runs."""
        return dict(self._need().compact())

    def export(self, path: Union[str, os.PathLike], *, snapshot: Union[str, Snapshot, None] = None) -> None:
        """Writes the stopped box (or one of its snapshots) to one file (zstd tar:
        config, flattened sparse disk, manifest of digests) that Client.import_box makes
        a new box of, here or on another host. BoxRunning while it runs (export a
        snapshot of it instead). Remote: the server streams the archive here."""
        self._need().export(os.fspath(path), snapshot.id if isinstance(snapshot, Snapshot) else snapshot)

    def clone(self, name: Optional[str] = None, *, snapshot: Union[str, Snapshot, None] = None) -> "Box":
        """A new, stopped box over a copy-on-write layer of this stopped box's disk
        (frozen into a snapshot first, or the one it stands on when nothing was written
        since), or of one of its snapshots. name defaults to "<box>-clone-<k>". The new
        box has its own id, name and hostname and this box's config."""
        h = self._need().clone(name, snapshot.id if isinstance(snapshot, Snapshot) else snapshot)
        return Box._wrap(self.client, h)

    def fork(self, count: int = 1, name: Optional[str] = None) -> List["Box"]:
        """New running boxes that go on from this running box's state (qemu backend):
        one capture (file system frozen, VM paused, disk snapshotted live, memory saved),
        then count children started from it, named "<name>-1..N" ("<snapshot>-fork-<k>"
        by default). Each has its own id, name, hostname and disk layer; its clock is set
        and its RNG reseeded; the parent's exec sessions and network connections are not
        carried over. A stopped box raises InvalidState."""
        return [Box._wrap(self.client, h) for h in self._need().fork(count, name)]

    # ---- commands ----
    def _request(self, cmd: Command, shell: bool, env: Optional[Mapping[str, str]], cwd: Optional[str],
                 user: Optional[str], timeout: Optional[float], tty: bool, stdin: Optional[bytes],
                 interactive: bool, rows: int = 0, cols: int = 0) -> ExecRequest:
        if timeout is not None and timeout <= 0:
            raise InvalidArgument(f"timeout {timeout}: give seconds above 0 (None: no timeout)")
        return ExecRequest(argv=_argv(cmd, shell), env=dict(env or {}), cwd=cwd, user=user, tty=tty,
                           timeout=timeout, stdin=stdin, interactive=interactive, rows=rows, cols=cols)

    def exec(self, cmd: Command, *, shell: bool = False, env: Optional[Mapping[str, str]] = None,
             cwd: Optional[str] = None, user: Optional[str] = None, timeout: Optional[float] = None,
             stdin: StdinData = None, tty: bool = False, check: bool = False,
             on_stdout: Optional[OutputCallback] = None, on_stderr: Optional[OutputCallback] = None) -> ExecResult:
        """Runs a command to its end and returns its ExecResult.

        cmd is an argv list (["python3", "-c", "print(1)"]), or a string: split like a
        shell would (shlex) but run without one, unless shell=True runs it under
        /bin/sh -c. stdin (bytes or text) is sent, then EOF; without it the command
        reads EOF at once. env adds variables; cwd, user ("name", "uid", "uid:gid") and
        timeout (seconds: the command is killed and Timeout raised) as in `cocoon exec`.
        on_stdout/on_stderr receive the output as it arrives (bytes) instead of the
        result. A command that cannot start raises ExecError (exit_code 127 or 126);
        check=True raises CommandFailed for a non-zero exit."""
        h = self._need()
        req = self._request(cmd, shell, env, cwd, user, timeout, tty, _bytes(stdin), False)
        out: List[bytes] = []
        err: List[bytes] = []
        exit = h.run(req, on_stdout or out.append, on_stderr or err.append)
        return _finish(_result(exit, b"".join(out), b"".join(err)), timeout, check)

    def spawn(self, cmd: Command, *, shell: bool = False, env: Optional[Mapping[str, str]] = None,
              cwd: Optional[str] = None, user: Optional[str] = None, timeout: Optional[float] = None,
              stdin: Union[bool, StdinData] = False, tty: bool = False, rows: int = 0, cols: int = 0,
              on_stdout: Optional[OutputCallback] = None,
              on_stderr: Optional[OutputCallback] = None) -> Execution:
        """Starts a command and returns at once with its Execution: iterate it for the
        output as it comes, or give on_stdout/on_stderr (called from a thread of the
        SDK). stdin=True keeps its stdin open for Execution.write()/close_stdin();
        bytes or text are sent first (then, with stdin=bytes, EOF). tty=True runs it
        on a terminal of rows x cols (default 24x80; stderr merged into stdout) that
        Execution.resize() changes. Many executions may run at once on one box."""
        interactive = stdin is True
        data = None if isinstance(stdin, bool) else _bytes(stdin)
        req = self._request(cmd, shell, env, cwd, user, timeout, tty, data, interactive, rows, cols)
        return Execution(self, req, on_stdout, on_stderr)

    def stream(self, cmd: Command, **kw: Any) -> Iterator[OutputChunk]:
        """The output of a command as it comes (OutputChunk objects), then raises
        like exec() if it timed out or could not start. Options as spawn()."""
        ex = self.spawn(cmd, **kw)
        with ex:
            yield from ex
            ex.wait()

    def run(self, command: Command, **kw: Any) -> ExecResult:
        """The peers' spelling: a string runs under /bin/sh -c, a list as argv."""
        return self.exec(command, shell=isinstance(command, str), **kw)

    def run_code(self, code: str, language: str = "python", *, context: Union[str, CodeContext, None] = None,
                 env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
                 on_stdout: Optional[Callable[[str], Any]] = None, on_stderr: Optional[Callable[[str], Any]] = None,
                 on_result: Optional[Callable[[Result], Any]] = None,
                 on_error: Optional[Callable[[CodeError], Any]] = None) -> CodeExecution:
        """Runs code in a stateful context of the box (cocoon's code interpreter):
        variables, imports and the working directory stay for the next run. language
        "python" (default), "javascript" (Node; the code-interpreter image) or "bash"
        ("shell", "sh", "py", "js" are aliases); context: a context id or CodeContext
        (default: the language's default context). timeout (seconds) interrupts the
        run (Python: KeyboardInterrupt, in .error) and keeps the context. The callbacks
        get output text, results and the error as they come, from the calling thread
        (embedded) or the reading one; one that raises interrupts the run and its
        exception propagates. Returns a CodeExecution; code that raised is not an
        exception (its .error; .check() raises)."""
        lang = language_of(language)
        ctx = context.id if isinstance(context, CodeContext) else context
        col = Collector(on_stdout, on_stderr, on_result, on_error)
        self._need().code_run(code, lang, ctx, {str(k): str(v) for k, v in (env or {}).items()}, timeout, col.event)
        return col.finish(f"run_code in box {self.id}")

    def create_code_context(self, language: str = "python", cwd: Optional[str] = None) -> CodeContext:
        """A new code context (its own interpreter) of language, in cwd (default the
        box's working directory)."""
        return CodeContext.from_dict(self._need().code_context_create(language_of(language), cwd))

    def list_code_contexts(self) -> List[CodeContext]:
        """The box's code contexts (the default ones once used)."""
        return [CodeContext.from_dict(d) for d in self._need().code_context_list()]

    def restart_code_context(self, context: Union[str, CodeContext]) -> None:
        """Starts a context's interpreter afresh (its state is lost; same id)."""
        self._need().code_context_restart(context.id if isinstance(context, CodeContext) else context)

    def remove_code_context(self, context: Union[str, CodeContext]) -> None:
        """Ends a context's interpreter; its state is gone."""
        self._need().code_context_remove(context.id if isinstance(context, CodeContext) else context)

    def execs(self) -> List[ExecInfo]:
        """The commands running in the box (embedded: started by any client, ids are
        guest pids; remote: those this server started, ids are execution ids)."""
        return self._need().list_execs()

    def signal_execs(self, signo: int, exec_id: Any = 0) -> int:
        """Sends signo to one running command by id, or to all of them (0); returns
        how many were hit."""
        return self._need().signal_exec(exec_id, signo)

    # ---- observation ----
    def stats(self) -> Stats:
        """Memory, disk, processes, uptime and load of the running box."""
        return self._need().stats()

    def network_stats(self) -> NetworkStats:
        """Counters of the box's network stack (denials, connections, bytes)."""
        return self._need().net_stats()

    def logs(self, *, follow: bool = False, tail: Optional[int] = None, since: Optional[str] = None,
             stream: Optional[str] = None, console: bool = False) -> Union[str, Iterator[str], Iterator[LogLine]]:
        """What `cocoon logs` shows: for a box with a main process, its output as an
        iterator of LogLine (see main_logs); else, or with console=True, the console log
        (kernel and agent lines of the current or last boot) as text, or with
        follow=True an iterator of text chunks until the box stops."""
        tuned = tail is not None or since is not None or stream is not None
        if not console and (tuned or self.main_status() is not None):
            return self.main_logs(follow=follow, tail=tail, since=since, stream=stream)
        if tuned:
            raise InvalidArgument("tail, since and stream apply to a main process's output, not to the console")
        return self._log(False, follow)

    # ---- the main process and detached execs ----
    def main_status(self) -> Optional[MainStatus]:
        """The box's main process (state, exit code, restarts...), or None without one."""
        return self._need().main_status()

    def main_logs(self, *, follow: bool = False, tail: Optional[int] = None, since: Optional[str] = None,
                  stream: Optional[str] = None) -> Iterator[LogLine]:
        """The main process's output across its restarts and the box's boots, line by
        line: the last `tail` lines, those from `since` on ("2026-12-03T14:00:00Z",
        "2026-12-03", a unix time, or a duration back from now: "10m", "1h30m"), one
        `stream` ("stdout" or "stderr"); follow=True goes on until the box stops (leave
        the loop to stop earlier). InvalidState for a box without a main process."""
        return self._need().main_logs(follow, tail, since, stream)

    # ---- the health check and waiting ----
    def health(self) -> Optional[HealthStatus]:
        """The box's health check and, while it runs, its status ("starting",
        "healthy", "unhealthy"), or None for a box created without healthcheck."""
        return self._need().health()

    def wait(self, condition: str = "exited", timeout: Optional[float] = None) -> Optional[int]:
        """Blocks until the box's main process ended for good and the box stopped
        ("exited": returns its exit code, 128+N for signal N, 0 without a main
        process), its health check passed ("healthy": None; InvalidArgument without a
        check, InvalidState when the box stops first) or it runs ("running": None).
        Raises cocoon.Timeout after timeout seconds (None: no limit)."""
        return self._need().wait(condition, timeout)

    def exec_detached(self, cmd: Command, *, shell: bool = False, env: Optional[Mapping[str, str]] = None,
                      cwd: Optional[str] = None, user: Optional[str] = None,
                      timeout: Optional[float] = None) -> int:
        """Starts a command the box itself runs (`cocoon exec -d`): no stdin, no
        terminal; it outlives this process. Returns its id (its pid in the box) for
        detached_status, detached_logs and kill_detached; its status and output stay
        until the box's next start. The box starts first when it is not running."""
        h = self._need()
        if not self.running:
            self.start()
        return h.exec_detached(self._request(cmd, shell, env, cwd, user, timeout, False, None, False))

    def attach(self, *, rows: int = 0, cols: int = 0, on_stdout: Optional[OutputCallback] = None,
               on_stderr: Optional[OutputCallback] = None) -> Attachment:
        """Attaches to the running main process (`cocoon attach`) and returns its
        Attachment: its output from now on (the past is in main_logs), its stdin when
        the box was created with open_stdin=True, its terminal (tty=True) sized rows x
        cols when given. on_stdout/on_stderr receive the output (from a thread of the
        SDK) instead of iteration. Raises InvalidState when the box or its main process
        is not running (or it has none), ResourceExhausted when 8 clients are attached."""
        for v in (rows, cols):
            if not 0 <= int(v) <= 65535:
                raise InvalidArgument(f"terminal size {rows}x{cols}: rows and cols from 1 to 65535 (0: unchanged)")
        return Attachment(self, rows, cols, on_stdout, on_stderr)

    def detached_status(self, exec_id: int) -> MainStatus:
        """A detached exec's status (MainStatus with .id); NotFound for an unknown id."""
        return self._need().detached_status(exec_id)

    def detached_logs(self, exec_id: int, *, follow: bool = False, tail: Optional[int] = None,
                      since: Optional[str] = None, stream: Optional[str] = None) -> Iterator[LogLine]:
        """A detached exec's output, as main_logs."""
        return self._need().main_logs(follow, tail, since, stream, exec_id=exec_id)

    def kill_detached(self, exec_id: int, signo: int = 9) -> None:
        """Signals a running detached exec's process group (InvalidState when it ended)."""
        self._need().kill_detached(exec_id, signo)

    def network_log(self, *, follow: bool = False) -> Union[str, Iterator[str]]:
        """The network log: every denied connection or DNS query with its rule."""
        return self._log(True, follow)

    def _log(self, network: bool, follow: bool) -> Union[str, Iterator[str]]:
        chunks = self._need().logs(follow, network)
        if follow:
            return (c.decode("utf-8", "replace") for c in chunks)
        return b"".join(chunks).decode("utf-8", "replace")

    # ---- cocoon.yaml ----
    @classmethod
    def from_config(cls, path: Union[str, os.PathLike], name: str, *, start: bool = True,
                    client: Optional[Client] = None, **overrides: Any) -> "Box":
        """Creates (and starts) the box `name` of a cocoon.yaml, as `cocoon up` would
        make it; overrides replace the file's options. Its named scripts are in
        box.scripts and run with box.script(name)."""
        from .config import load_config
        spec = load_config(path, client=client).box(name)
        opts: Dict[str, Any] = dict(
            image=spec.image, rootfs=spec.rootfs, cpus=spec.cpus or None, memory=spec.memory_mib or None,
            disk=(spec.disk_bytes >> 20) if spec.disk_bytes else None, env=spec.env, workdir=spec.workdir,
            user=spec.user, network=spec.network, name=spec.name, ephemeral=spec.ephemeral)
        if spec.disk_bytes and spec.disk_bytes % (1 << 20):
            opts["disk"] = f"{spec.disk_bytes // 1024}K"
        opts.update(overrides)
        box = cls.create(start=start, client=client, **opts)
        box.scripts = dict(spec.scripts)
        return box

    scripts: Dict[str, List[str]] = {}

    def script(self, name: str, *args: str, **kw: Any) -> ExecResult:
        """Runs a named script of the box's cocoon.yaml (Box.from_config), with args."""
        if name not in self.scripts:
            raise NotFound(f"no script {name!r}" + (f" (there are: {', '.join(sorted(self.scripts))})"
                                                   if self.scripts else " (the box has none)"))
        argv = list(self.scripts[name])
        if args and argv[:2] == ["/bin/sh", "-c"]:
            argv = argv[:3] + [name] + list(args)  # "$@" in the script
        else:
            argv += list(args)
        return self.exec(argv, **kw)
