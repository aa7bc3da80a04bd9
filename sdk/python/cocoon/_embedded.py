"""The embedded transport: libcocoon in this process through ctypes, no server. Each box
object gets its own runtime and box handle (libcocoon's runtime is not shared between
threads); exec, file and stats calls run on the box handle from any thread, as the C
API allows, and every blocking call releases the GIL."""
from __future__ import annotations

import ctypes
import datetime
import itertools
import json
import os
import queue
import tempfile
import threading
from ctypes import byref, c_int, c_longlong, c_size_t, c_void_p
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

from . import _capi as C
from ._transport import (AttachEnd, AttachHandle, BoxHandle, ExecHandle, ExecRequest, ExitInfo, Sink, Transport,
                         wait_condition)
from .errors import (CocoonError, ExecError, InvalidArgument, InvalidState, ResourceExhausted, SnapshotNotFound,
                     Timeout, Unsupported, from_c)
from .types import (BoxInfo, ExecInfo, FileInfo, HealthStatus, ImageInfo, LogLine, MainStatus, Network, NetworkStats, PullProgress,
                    Snapshot, Stats)


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode()


def _check(rc: int, err: C.Error) -> None:
    if rc < 0:
        raise from_c(err.code, _s(err.message))


# Output of every running exec goes through these two C callbacks; user_data is a key
# into _SINKS (a Python object cannot be handed to C safely as a pointer).
_SINKS: Dict[int, "_Exec"] = {}
_keys = itertools.count(1)


def _deliver(key: int, index: int, data: int, length: int) -> None:
    ex = _SINKS.get(key)
    if ex is None or length == 0:
        return
    try:
        ex.sinks[index](ctypes.string_at(data, length))
    except BaseException as e:  # noqa: BLE001 - reported by wait()
        if ex.sink_error is None:
            ex.sink_error = e


_ON_STDOUT = C.output_fn(lambda user, data, length: _deliver(user or 0, 0, data, length))
_ON_STDERR = C.output_fn(lambda user, data, length: _deliver(user or 0, 1, data, length))


def _box_info(i: C.BoxInfo) -> BoxInfo:
    return BoxInfo(id=_s(i.id), name=_s(i.name) or None, status=_s(i.status), image=_s(i.image) or _s(i.rootfs),
                   cpus=i.cpus, memory_mib=i.memory_mib, ephemeral=bool(i.ephemeral), created=str(i.created),
                   image_id=_s(i.image_id), disk_size=i.disk_size, pid=i.pid or None)


def _image_info(i: C.ImageInfo) -> ImageInfo:
    return ImageInfo(id=_s(i.id), reference=_s(i.name), repository=_s(i.repository), tag=_s(i.tag), size=i.size,
                     boxes=i.boxes, builtin=not i.pulled)


def _file_info(f: C.FileInfo, path: str) -> FileInfo:
    return FileInfo(name=_s(f.name), path=path, type=C.FILE_TYPES.get(f.type, "other"), mode=f.mode, uid=f.uid,
                    gid=f.gid, size=f.size, mtime=f.mtime + f.mtime_nsec / 1e9,
                    link_target=_s(f.link_target) if f.type == 3 else None)


def _exit_info(st: C.ExitStatus) -> ExitInfo:
    if st.signal:
        return ExitInfo(128 + st.signal, st.signal, bool(st.timed_out))
    return ExitInfo(st.exit_code, None, bool(st.timed_out))


class _Runtime:
    """A cocoon_runtime with the lock its users take (it holds one database handle)."""

    def __init__(self, lib: C.Lib, home: Optional[str], share_dir: Optional[str], vmm: Optional[str]):
        self.lib = lib
        self.lock = threading.RLock()
        self.args = (home, share_dir, vmm)  # for another runtime of the same cocoon
        opts = C.init_struct(C.RuntimeOptions, lib.runtime_options_init)
        self._keep = [_b(home), _b(share_dir), _b(vmm)]
        opts.home, opts.share_dir, opts.vmm = self._keep
        ptr = c_void_p()
        err = C.Error()
        _check(lib.runtime_open(byref(opts), byref(ptr), byref(err)), err)
        self.ptr = ptr

    def close(self) -> None:
        if self.ptr:
            self.lib.runtime_close(self.ptr)
            self.ptr = c_void_p()


class _Exec(ExecHandle):
    def __init__(self, box: "EmbeddedBox", req: ExecRequest, sinks: Tuple[Sink, Sink]):
        self.box = box
        self.lib = box.lib
        self.sinks = sinks
        self.sink_error: Optional[BaseException] = None
        self.key = next(_keys)
        self.ptr = c_void_p()
        self.opts, self._keep = box._exec_options(req, self.key)
        if not req.interactive and req.stdin is not None:
            self.pending_stdin, self.pending_eof = req.stdin, True
        elif req.interactive and req.stdin:
            self.pending_stdin = req.stdin
        self.waited = False
        self._freed = False

    def start(self) -> None:
        _SINKS[self.key] = self
        err = C.Error()
        if self.lib.exec_start(self.box.ptr, byref(self.opts), byref(self.ptr), byref(err)) < 0:
            _SINKS.pop(self.key, None)
            raise from_c(err.code, _s(err.message))

    @property
    def id(self) -> int:  # type: ignore[override]
        return self.lib.exec_id(self.ptr)

    def write(self, data: bytes) -> None:
        err = C.Error()
        data = bytes(data)
        _check(self.lib.exec_write(self.ptr, data, len(data), byref(err)), err)

    def close_stdin(self) -> None:
        err = C.Error()
        _check(self.lib.exec_close_stdin(self.ptr, byref(err)), err)

    def signal(self, signo: int) -> None:
        err = C.Error()
        _check(self.lib.exec_signal(self.ptr, int(signo), byref(err)), err)

    def resize(self, rows: int, cols: int) -> None:
        err = C.Error()
        _check(self.lib.exec_resize(self.ptr, rows, cols, byref(err)), err)

    def wait(self) -> ExitInfo:
        st = C.ExitStatus()
        err = C.Error()
        try:
            rc = self.lib.exec_wait(self.ptr, byref(st), byref(err))
        finally:
            self.waited = True
            _SINKS.pop(self.key, None)
        if rc < 0:
            raise from_c(err.code, _s(err.message))
        if self.sink_error is not None:
            raise self.sink_error
        return _exit_info(st)

    def close(self) -> None:
        if self._freed:
            return
        self._freed = True
        _SINKS.pop(self.key, None)
        if self.ptr:
            self.lib.exec_free(self.ptr)
        self.box._free_command(self._keep)


class _Attach(AttachHandle):
    """cocoon_attach over pipes: the library writes the main process's output into two
    pipes a reader thread each turns into sink calls, and reads our stdin from a third
    (its write end closed = our input ended). cocoon_attach_wait runs in wait()."""

    def __init__(self, box: "EmbeddedBox", rows: int, cols: int, sinks: Tuple[Sink, Sink]):
        self.lib = box.lib
        self.ptr = c_void_p()
        self.sinks = sinks
        self.sink_error: Optional[BaseException] = None
        self._fds: List[int] = []
        self._stdin_w: Optional[int] = None
        self._stdin_lock = threading.Lock()
        try:
            out_r, out_w = self._pipe()
            err_r, err_w = self._pipe()
            in_r, self._stdin_w = self._pipe()
            self._stdin_r = in_r
            o = C.init_struct(C.AttachOptions, self.lib.attach_options_init)
            o.stdin_fd, o.stdout_fd, o.stderr_fd = in_r, out_w, err_w
            o.detach_keys = b""  # every byte written is input; detach() leaves
            o.rows, o.cols = rows, cols
            err = C.Error()
            if self.lib.attach_start(box.ptr, byref(o), byref(self.ptr), byref(err)) < 0:
                if err.code == 5 and b"already attached" in err.message:  # COCOON_E_VMM: all 8 slots taken
                    raise ResourceExhausted(_s(err.message))
                raise from_c(err.code, _s(err.message))
        except BaseException:
            self.close()
            raise
        self.tty = bool(self.lib.attach_tty(self.ptr))
        self.stdin = bool(self.lib.attach_stdin(self.ptr))
        self._write_ends = (out_w, err_w)
        self._readers = [threading.Thread(target=self._read, args=(fd, i), name="cocoon-attach-out", daemon=True)
                         for i, fd in enumerate((out_r, err_r))]
        for t in self._readers:
            t.start()

    def _pipe(self) -> Tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self._fds += [r, w]
        return r, w

    def _close_fd(self, fd: Optional[int]) -> None:
        if fd is not None and fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)

    def _read(self, fd: int, index: int) -> None:
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            try:
                self.sinks[index](data)
            except BaseException as e:  # noqa: BLE001 - reported by wait()
                if self.sink_error is None:
                    self.sink_error = e

    def write(self, data: bytes) -> None:
        with self._stdin_lock:
            if self._stdin_w is None:
                raise InvalidState("this attachment's stdin is closed (close_stdin was called)")
            if not self.stdin:
                return  # no open stdin: the library never reads the pipe (the server drops such input too)
            view = memoryview(bytes(data))
            while view:
                try:
                    view = view[os.write(self._stdin_w, view):]
                except BrokenPipeError:
                    raise InvalidState("the attachment ended: its stdin is closed") from None

    def close_stdin(self) -> None:
        with self._stdin_lock:
            fd, self._stdin_w = self._stdin_w, None
            self._close_fd(fd)

    def resize(self, rows: int, cols: int) -> None:
        self.lib.attach_resize(self.ptr, rows, cols)

    def signal(self, signo: int) -> None:
        self.lib.attach_signal(self.ptr, signo)

    def detach(self) -> None:
        self.lib.attach_detach(self.ptr)

    def wait(self) -> AttachEnd:
        res = C.AttachResult()
        err = C.Error()
        rc = self.lib.attach_wait(self.ptr, byref(res), byref(err))
        # The library reads and writes no more: the readers see the end, a write() fails
        # at once instead of filling a pipe nobody drains.
        for fd in self._write_ends + (self._stdin_r,):
            self._close_fd(fd)
        for t in self._readers:
            t.join()
        if rc < 0:
            raise from_c(err.code, _s(err.message))
        if self.sink_error is not None:
            raise self.sink_error
        return AttachEnd(res.exit_code if res.ended else None, bool(res.detached))

    def close(self) -> None:
        if self.ptr:
            self.lib.attach_free(self.ptr)
            self.ptr = c_void_p()
        with self._stdin_lock:
            self._stdin_w = None
            for fd in list(self._fds):
                self._close_fd(fd)


class EmbeddedBox(BoxHandle):
    def __init__(self, rt: _Runtime, ptr: c_void_p, defaults: Optional[dict] = None):
        self.rt = rt
        self.lib = rt.lib
        self.ptr = ptr
        self.id = _s(self.lib.box_id(ptr))
        d = defaults or {}
        self.env: Dict[str, str] = dict(d.get("env") or {})
        self.workdir: Optional[str] = d.get("workdir")
        self.user: Optional[str] = d.get("user")
        self.lock = threading.RLock()  # lifecycle calls of this handle
        self._defaults: Optional[Tuple[Dict[str, str], Optional[str], Optional[str]]] = None

    # ---- lifecycle ----
    def info(self) -> BoxInfo:
        i = C.BoxInfo()
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_inspect(self.ptr, byref(i), byref(err)), err)
        return _box_info(i)

    def start(self) -> None:
        err = C.Error()
        with self.lock, self.rt.lock:
            if self.lib.box_is_running(self.ptr):
                return
            _check(self.lib.box_start(self.ptr, byref(err)), err)

    def stop(self, timeout: Optional[float]) -> None:
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.box_stop(self.ptr, _stop_ms(timeout), byref(err)), err)

    def restart(self, timeout: Optional[float]) -> None:
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.box_restart(self.ptr, _stop_ms(timeout), byref(err)), err)

    def remove(self, force: bool) -> None:
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.box_remove(self.ptr, 1 if force else 0, byref(err)), err)

    def close(self) -> None:
        with self.lock:
            if self.ptr:
                self.lib.box_close(self.ptr)
                self.ptr = c_void_p()
            self.rt.close()

    # ---- exec ----
    def _image_defaults(self):
        """(env, cwd, user) the box's image (and its cocoon.yaml, if it came from one)
        give every command, resolved once by cocoon_box_command (docker's rules; about
        0.4 ms of database and file reads, too much to pay per exec)."""
        if self._defaults is None:
            copts = C.init_struct(C.CommandOptions, self.lib.command_options_init)
            argv = C.cstr_array(["true"])
            copts.argv = argv
            copts.entrypoint = b""
            cmd = C.Command()
            err = C.Error()
            _check(self.lib.box_command(self.ptr, byref(copts), byref(cmd), byref(err)), err)
            try:
                env: Dict[str, str] = {}
                for kv in C.from_cstr_array(cmd.env):
                    k, _, v = kv.partition("=")
                    env[k] = v
                self._defaults = (env, _s(cmd.cwd) if cmd.cwd else None, _s(cmd.user) if cmd.user else None)
            finally:
                self.lib.command_free(byref(cmd))
        return self._defaults

    def _exec_options(self, req: ExecRequest, key: int):
        """The cocoon_exec_options of a request and what must stay alive while it runs.
        The command runs as given (cocoon_box_command's entrypoint ""); its environment
        is the image's without the keys the box or the request set, then theirs; cwd and
        user are the request's, else the box's, else the image's."""
        img_env, img_cwd, img_user = self._image_defaults()
        env = dict(img_env)
        env.update(self.env)
        env.update(req.env)
        argv = C.cstr_array(req.argv)
        envv = C.cstr_array([f"{k}={v}" for k, v in env.items()])
        cwd, user = _b(req.cwd or self.workdir or img_cwd), _b(req.user or self.user or img_user)
        o = C.init_struct(C.ExecOptions, self.lib.exec_options_init)
        o.argv, o.env, o.cwd, o.user = argv, envv, cwd, user
        o.tty = 1 if req.tty else 0
        if req.timeout:
            o.timeout_ms = _timeout_ms(req.timeout)
        o.stdin_fd = C.STDIN_API if (req.interactive or req.stdin is not None) else C.STDIN_NONE
        o.stdout_fd = -1
        o.stderr_fd = -1
        o.on_stdout = _ON_STDOUT
        o.on_stderr = _ON_STDERR
        o.user_data = key
        o.rows, o.cols = req.rows or 0, req.cols or 0
        return o, [argv, envv, cwd, user]

    def _free_command(self, keep) -> None:
        keep.clear()

    def run(self, req: ExecRequest, on_stdout: Optional[Sink], on_stderr: Optional[Sink]) -> ExitInfo:
        noop: Sink = lambda _b: None  # noqa: E731
        ex = _Exec(self, req, (on_stdout or noop, on_stderr or noop))
        try:
            if threading.current_thread() is threading.main_thread():
                return self._run_interruptible(ex, req)
            if req.stdin is None and not req.interactive:
                # one call: start + wait (the C API's fastest path)
                _SINKS[ex.key] = ex
                st = C.ExitStatus()
                err = C.Error()
                try:
                    rc = self.lib.box_run(self.ptr, byref(ex.opts), byref(st), byref(err))
                finally:
                    _SINKS.pop(ex.key, None)
                if rc < 0:
                    raise from_c(err.code, _s(err.message))
                if ex.sink_error is not None:
                    raise ex.sink_error
                return _exit_info(st)
            ex.start()
            if req.stdin:
                ex.write(req.stdin)  # delivers output itself while nobody waits: no deadlock
            ex.close_stdin()
            return ex.wait()
        finally:
            ex.close()

    @staticmethod
    def _feed_and_wait(ex: "_Exec", req: ExecRequest) -> ExitInfo:
        if req.stdin is not None or req.interactive:
            if req.stdin:
                ex.write(req.stdin)  # delivers output itself while nobody waits: no deadlock
            ex.close_stdin()
        return ex.wait()

    def _run_interruptible(self, ex: "_Exec", req: ExecRequest) -> ExitInfo:
        """run() on the main thread: the wait happens in a helper thread, so Ctrl-C
        (KeyboardInterrupt, delivered to the main thread only between Python steps)
        reaches the caller at once; the command is then killed before it propagates."""
        out: List[object] = []
        # The caller frees ex when run() returns, so once the helper has begun it must
        # be waited for, interrupt or not. Not with Thread.join: a join that an
        # exception interrupts marks the thread stopped while it still runs (CPython
        # 3.11), and later joins return at once; `done` is ours. An interrupt inside
        # t.start() can come before the helper begins: it then finds `abandoned` and
        # leaves ex alone.
        lock = threading.Lock()
        done = threading.Event()
        state = {"running": False, "abandoned": False}

        def wait() -> None:
            with lock:
                if state["abandoned"]:
                    return
                state["running"] = True
            try:
                out.append(self._feed_and_wait(ex, req))
            except BaseException as e:  # noqa: BLE001 - re-raised below
                out.append(e)
            finally:
                done.set()

        t = threading.Thread(target=wait, name="cocoon-run", daemon=True)
        # One try from the start: a Ctrl-C that lands while the command starts, or just
        # after, kills it too (else it ran to its end with nobody waiting).
        try:
            ex.start()
            t.start()
            done.wait()
        except BaseException:
            with lock:
                state["abandoned"] = True
                running = state["running"]
            try:
                ex.signal(9)
            except CocoonError:
                pass  # it never started, or has ended
            while running and not done.is_set():
                try:
                    done.wait()  # the killed command ends at once; a second Ctrl-C waits too
                except BaseException:  # noqa: BLE001 - the first interrupt is the one raised
                    pass
            raise
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]  # type: ignore[return-value]

    def exec_start(self, req: ExecRequest, on_stdout: Sink, on_stderr: Sink) -> ExecHandle:
        ex = _Exec(self, req, (on_stdout, on_stderr))
        try:
            ex.start()
        except BaseException:
            ex.close()
            raise
        return ex

    def list_execs(self) -> List[ExecInfo]:
        out = ctypes.POINTER(C.ExecInfo)()
        n = c_size_t()
        err = C.Error()
        _check(self.lib.box_list_execs(self.ptr, byref(out), byref(n), byref(err)), err)
        try:
            return [ExecInfo(out[i].id, _s(out[i].command)) for i in range(n.value)]
        finally:
            _libc_free(out)

    def signal_exec(self, exec_id: int, signo: int) -> int:
        n = c_size_t()
        err = C.Error()
        _check(self.lib.box_signal_exec(self.ptr, exec_id, signo, byref(n), byref(err)), err)
        return n.value

    # ---- the main process and detached execs ----
    def set_main(self, argv: List[str], restart: Optional[str]) -> None:
        """The box's main process: argv after the image's entrypoint, with the box's
        env, workdir and user (cocoon_box_command), and its restart policy."""
        self._need_lib("cocoon_box_set_main")
        copts = C.init_struct(C.CommandOptions, self.lib.command_options_init)
        args = C.cstr_array(argv)
        envv = C.cstr_array([f"{k}={v}" for k, v in self.env.items()])
        cwd, user = _b(self.workdir), _b(self.user)
        copts.argv, copts.env, copts.cwd, copts.user = args, envv, cwd, user
        cmd = C.Command()
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_command(self.ptr, byref(copts), byref(cmd), byref(err)), err)
            try:
                _check(self.lib.box_set_main(self.ptr, byref(cmd), _b(restart), byref(err)), err)
            finally:
                self.lib.command_free(byref(cmd))

    def set_main_stdio(self, tty: bool, open_stdin: bool) -> None:
        self._need_lib("cocoon_box_set_main_stdio")
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_set_main_stdio(self.ptr, int(tty), int(open_stdin), byref(err)), err)

    def attach(self, rows: int, cols: int, on_stdout: Sink, on_stderr: Sink) -> AttachHandle:
        self._need_lib("cocoon_attach_start")
        return _Attach(self, rows, cols, (on_stdout, on_stderr))

    def _need_lib(self, name: str) -> None:
        if not self.lib.has(name):
            raise Unsupported(f"this libcocoon has no {name}: rebuild it (make all)")

    def main_status(self) -> Optional[MainStatus]:
        self._need_lib("cocoon_box_main_status")
        st = C.init_struct(C.MainStatus, self.lib.main_status_init)
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_main_status(self.ptr, byref(st), byref(err)), err)
        if not st.present:
            return None
        return _main_status(st)

    def exec_detached(self, req: ExecRequest) -> int:
        self._need_lib("cocoon_exec_detached")
        o, keep = self._exec_options(req, 0)
        o.stdin_fd = C.STDIN_NONE
        ident = c_int()
        err = C.Error()
        _check(self.lib.exec_detached(self.ptr, byref(o), byref(ident), byref(err)), err)
        keep.clear()
        return ident.value

    def detached_status(self, exec_id: int) -> MainStatus:
        self._need_lib("cocoon_box_exec_status")
        st = C.init_struct(C.MainStatus, self.lib.main_status_init)
        err = C.Error()
        _check(self.lib.box_exec_status(self.ptr, int(exec_id), byref(st), byref(err)), err)
        out = _main_status(st)
        out.id = int(exec_id)
        return out

    # ---- the health check and waiting ----
    def set_health(self, hc: dict) -> None:
        """Box.create's healthcheck (normalized by health_spec) as cocoon_box_set_health."""
        self._need_lib("cocoon_box_set_health")
        o = C.init_struct(C.HealthOptions, self.lib.health_options_init)
        keep = [C.cstr_array(hc["test"]) if hc["test"] else None, _b(hc["cmd"]), _b(hc["on_failure"])]
        o.test, o.cmd, o.on_failure = keep
        for key in ("interval", "timeout", "start_period"):
            if hc[key] is not None:
                setattr(o, key + "_ms", int(hc[key] * 1000))
        if hc["retries"] is not None:
            o.retries = hc["retries"]
        err = C.Error()
        _check(self.lib.box_set_health(self.ptr, byref(o), byref(err)), err)

    def health(self) -> Optional[HealthStatus]:
        self._need_lib("cocoon_box_health_status")
        st = C.init_struct(C.HealthStatus, self.lib.health_status_init)
        err = C.Error()
        _check(self.lib.box_health_status(self.ptr, byref(st), byref(err)), err)
        if not st.present:
            return None
        last = st.log[st.nlog - 1] if st.nlog else None
        status = _s(st.status) or ("starting" if self.lib.box_is_running(self.ptr) else None)
        return HealthStatus(test=_s(st.test), interval=st.interval_ms / 1000, timeout=st.timeout_ms / 1000,
                            retries=st.retries, start_period=st.start_period_ms / 1000,
                            on_failure=_s(st.on_failure) or "none", status=status,
                            failing_streak=st.failing_streak if status else 0,
                            last_exit_code=last.exit_code if last and status else None,
                            last_output=_s(last.output) if last and status else None)

    def wait(self, condition: str, timeout: Optional[float]) -> Optional[int]:
        """cocoon_box_wait: it blocks on inotify, not on the box's channel (no lock)."""
        self._need_lib("cocoon_box_wait")
        cond = wait_condition(condition)
        code = c_int(0)
        err = C.Error()
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        rc = self.lib.box_wait(self.ptr, cond, ms, byref(code), byref(err))
        _check(rc, err)
        if rc == 1:
            raise Timeout(f"box {self.id} was not {condition} within {timeout} s")
        return code.value if condition == "exited" else None

    def kill_detached(self, exec_id: int, signo: int) -> None:
        st = self.detached_status(exec_id)
        if st.state != "running":
            raise InvalidState(f"detached exec {exec_id} of box {self.id} is not running ({st.state})")
        self.signal_exec(int(exec_id), signo)

    def main_logs(self, follow: bool, tail: Optional[int], since: Optional[str], stream: Optional[str],
                  exec_id: Optional[int] = None) -> Iterator[LogLine]:
        self._need_lib("cocoon_box_main_logs")
        if exec_id is None and self.main_status() is None:
            raise InvalidState(f"box {self.id} has no main process: its console is box.logs(console=True)")
        if exec_id is not None:
            self.detached_status(exec_id)  # NotFound for an id with no record
        o = C.init_struct(C.LogsOptions, self.lib.logs_options_init)
        o.follow = 1 if follow else 0
        o.tail = -1 if tail is None else int(tail)
        if since is not None:
            us = c_longlong()
            err = C.Error()
            _check(self.lib.parse_since(_b(since), byref(us), byref(err)), err)
            o.since_us = us.value or 1
        call = (lambda wfd, opts, err: self.lib.box_main_logs(self.ptr, wfd, wfd, opts, err)) if exec_id is None \
            else (lambda wfd, opts, err: self.lib.box_exec_logs(self.ptr, int(exec_id), wfd, wfd, opts, err))
        return _log_lines(call, o, stream)

    # ---- the code interpreter ----
    def code_run(self, code: str, language: str, context: Optional[str], env: Dict[str, str],
                 timeout: Optional[float], on_event: Callable[[dict], bool]) -> None:
        self._need_lib("cocoon_code_run")
        o = C.init_struct(C.CodeOptions, self.lib.code_options_init)
        envv = C.cstr_array([f"{k}={v}" for k, v in env.items()]) if env else None
        keep = [_b(language), _b(context), envv]
        o.language, o.context = keep[0], keep[1]
        if envv is not None:
            o.env = envv
        o.timeout_ms = _timeout_ms(timeout)

        caught: List[BaseException] = []

        def deliver(data, length, _ctx) -> int:
            # nonzero interrupts the run; nothing may escape into ctypes (it would
            # print the exception and answer 0): it is raised once the run ended
            try:
                return 0 if on_event(json.loads(ctypes.string_at(data, length))) else 1
            except BaseException as e:  # noqa: BLE001 - a Ctrl-C between two steps, say
                caught.append(e)
                return 1

        callback = C.code_event_fn(deliver)  # alive until the call returns
        o.on_event = callback
        err = C.Error()
        rc = self.lib.code_run(self.ptr, code.encode(), byref(o), byref(err))
        del keep, callback
        if caught:
            raise caught[0]
        _check(rc, err)

    def _json_call(self, call) -> object:
        out = c_void_p()
        err = C.Error()
        _check(call(byref(out), byref(err)), err)
        try:
            return json.loads(ctypes.string_at(out)) if out.value else None
        finally:
            _libc_free(out)

    def code_context_create(self, language: str, cwd: Optional[str]) -> dict:
        self._need_lib("cocoon_code_context_create")
        return self._json_call(lambda out, err: self.lib.code_context_create(self.ptr, _b(language), _b(cwd), out,
                                                                              err))  # type: ignore[return-value]

    def code_context_list(self) -> List[dict]:
        self._need_lib("cocoon_code_context_list")
        return self._json_call(lambda out, err: self.lib.code_context_list(self.ptr, out, err)) or []  # type: ignore

    def code_context_restart(self, context_id: str) -> None:
        self._need_lib("cocoon_code_context_restart")
        err = C.Error()
        _check(self.lib.code_context_restart(self.ptr, context_id.encode(), byref(err)), err)

    def code_context_remove(self, context_id: str) -> None:
        self._need_lib("cocoon_code_context_remove")
        err = C.Error()
        _check(self.lib.code_context_remove(self.ptr, context_id.encode(), byref(err)), err)

    # ---- files ----
    def read_file(self, path: str, max_bytes: int) -> bytes:
        data = c_void_p()
        n = c_size_t()
        err = C.Error()
        _check(self.lib.file_read(self.ptr, path.encode(), byref(data), byref(n), max_bytes, byref(err)), err)
        try:
            return ctypes.string_at(data, n.value)
        finally:
            _libc_free(data)

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        err = C.Error()
        data = bytes(data)
        _check(self.lib.file_write(self.ptr, path.encode(), data, len(data), mode, byref(err)), err)

    def put_archive(self, box_dir: str, reader: BinaryIO, overwrite: bool) -> None:
        failure: List[BaseException] = []

        def read(_user, buf, cap):
            try:
                chunk = reader.read(cap)
            except BaseException as e:  # noqa: BLE001
                failure.append(e)
                return -1
            if chunk:
                ctypes.memmove(buf, chunk, len(chunk))
            return len(chunk)

        cb = C.read_fn(read)
        err = C.Error()
        rc = self.lib.tar_to_box(self.ptr, box_dir.encode(), cb, None, 0 if overwrite else C.TAR_NO_OVERWRITE, None,
                                 byref(err))
        if failure:
            raise failure[0]
        _check(rc, err)

    def get_archive(self, path: str, writer: BinaryIO, follow: bool) -> None:
        failure: List[BaseException] = []

        def write(_user, data, length):
            try:
                writer.write(ctypes.string_at(data, length))
                return 0
            except BaseException as e:  # noqa: BLE001
                failure.append(e)
                return -1

        cb = C.write_fn(write)
        err = C.Error()
        rc = self.lib.tar_from_box(self.ptr, path.encode(), cb, None, C.TAR_FOLLOW if follow else 0, None,
                                   byref(err))
        if failure:
            raise failure[0]
        _check(rc, err)

    def copy_to(self, host_path: str, box_path: str) -> None:
        err = C.Error()
        _check(self.lib.copy_to_box(self.ptr, os.fsencode(host_path), box_path.encode(), byref(err)), err)

    def copy_from(self, box_path: str, host_path: str) -> None:
        err = C.Error()
        _check(self.lib.copy_from_box(self.ptr, box_path.encode(), os.fsencode(host_path), byref(err)), err)

    def _need(self, name: str) -> None:
        if not self.lib.has(name):
            raise Unsupported(f"this libcocoon ({self.lib.path}) has no {name}: file operations need a newer cocoon")

    def stat(self, path: str) -> FileInfo:
        self._need("cocoon_file_stat")
        f = C.FileInfo()
        err = C.Error()
        _check(self.lib.file_stat(self.ptr, path.encode(), byref(f), byref(err)), err)
        return _file_info(f, path)

    def listdir(self, path: str) -> List[FileInfo]:
        self._need("cocoon_file_list")
        out = ctypes.POINTER(C.FileInfo)()
        n = c_size_t()
        err = C.Error()
        _check(self.lib.file_list(self.ptr, path.encode(), byref(out), byref(n), byref(err)), err)
        try:
            base = path.rstrip("/")
            return [_file_info(out[i], base + "/" + _s(out[i].name)) for i in range(n.value)]
        finally:
            self.lib.file_list_free(out)

    def mkdir(self, path: str, mode: int, parents: bool) -> None:
        self._need("cocoon_file_mkdir")
        err = C.Error()
        _check(self.lib.file_mkdir(self.ptr, path.encode(), mode, C.MKDIR_PARENTS if parents else 0, byref(err)),
               err)

    def remove_path(self, path: str, recursive: bool) -> None:
        self._need("cocoon_file_remove")
        err = C.Error()
        _check(self.lib.file_remove(self.ptr, path.encode(), C.REMOVE_RECURSIVE if recursive else 0, byref(err)), err)

    def move(self, src: str, dst: str, replace: bool) -> None:
        self._need("cocoon_file_move")
        err = C.Error()
        _check(self.lib.file_move(self.ptr, src.encode(), dst.encode(), 0 if replace else C.MOVE_NO_REPLACE,
                                  byref(err)), err)

    # ---- observation ----
    def stats(self) -> Stats:
        s = C.Stats()
        err = C.Error()
        _check(self.lib.box_stats(self.ptr, byref(s), byref(err)), err)
        return Stats(memory_used=s.mem_used, memory_total=s.mem_total, disk_used=s.disk_used,
                     disk_total=s.disk_total, processes=s.processes, uptime_seconds=s.uptime_seconds, load1=s.load1,
                     cpus=s.cpus, cpu_seconds=s.cpu_seconds, memory_available=s.mem_available,
                     disk_available=s.disk_available, load5=s.load5, load15=s.load15)

    def net_stats(self) -> NetworkStats:
        s = C.NetStats()
        err = C.Error()
        _check(self.lib.box_net_stats(self.ptr, byref(s), byref(err)), err)
        d = {n: getattr(s, n) for n in C.NET_STAT_FIELDS}
        d["present"] = s.present
        return NetworkStats.from_dict(d)

    # ---- disk snapshots and export (the box stopped) ----
    def snapshot_create(self, name: Optional[str]) -> Snapshot:
        self._need_lib("cocoon_snapshot_create")
        o = C.init_struct(C.SnapshotOptions, self.lib.snapshot_options_init)
        keep = _b(name)
        o.name = keep
        info = C.SnapshotInfo()
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.snapshot_create(self.ptr, byref(o), byref(info), byref(err)), err)
        return _snapshot(info)

    def snapshot_list(self) -> List[Snapshot]:
        return _snapshot_list(self.rt, self.id)

    def snapshot_restore(self, ref: str) -> Snapshot:
        self._need_lib("cocoon_snapshot_restore")
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.snapshot_restore(self.ptr, ref.encode(), byref(err)), err)
        return _snapshot_inspect(self.rt, ref)

    def compact(self) -> Dict[str, object]:
        self._need_lib("cocoon_box_compact")
        o = C.init_struct(C.CompactOptions, self.lib.compact_options_init)
        info = C.CompactInfo()
        err = C.Error()
        with self.lock, self.rt.lock:
            _check(self.lib.box_compact(self.ptr, byref(o), byref(info), byref(err)), err)
        d: Dict[str, object] = {n: getattr(info, n) for n in ("layers_before", "layers_after", "bytes_before",
                                                             "bytes_after", "data_clusters", "zero_clusters")}
        d["released"] = [_s(info.released[i].value) for i in range(info.nreleased)]
        return d

    def _source(self, snapshot: Optional[str]) -> str:
        """The box's id, or the id of one of its snapshots (as the REST API, a snapshot
        of another box is not found here)."""
        if snapshot is None:
            return self.id
        s = _snapshot_inspect(self.rt, snapshot)
        if s.box_id != self.id:
            raise SnapshotNotFound(f"box {self.id} has no snapshot \"{snapshot}\" (it is one of box {s.box_id})")
        return s.id

    def export(self, path: str, snapshot: Optional[str] = None) -> None:
        _export(self.rt, self._source(snapshot), path)

    def clone(self, name: Optional[str], snapshot: Optional[str]) -> "EmbeddedBox":
        self._need_lib("cocoon_box_clone")
        source = self._source(snapshot)
        o = C.init_struct(C.CloneOptions, self.lib.clone_options_init)
        keep = _b(name)
        o.name = keep
        o.count = 1
        ids = (ctypes.c_char * 16 * 1)()
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_clone(self.rt.ptr, source.encode(), byref(o), ids, None, byref(err)), err)
        rt = _Runtime(self.lib, *self.rt.args)
        ptr = c_void_p()
        if self.lib.box_open(rt.ptr, ids[0].value, byref(ptr), byref(err)) < 0:
            rt.close()
            raise from_c(err.code, _s(err.message))
        return EmbeddedBox(rt, ptr)

    def fork(self, count: int, name: Optional[str]) -> list:
        self._need_lib("cocoon_box_fork")
        o = C.init_struct(C.ForkOptions, self.lib.fork_options_init)
        keep = _b(name)
        o.name = keep
        o.count = count
        ids = (ctypes.c_char * 16 * count)()
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.box_fork(self.ptr, byref(o), ids, None, byref(err)), err)
        out = []
        for i in range(count):
            rt = _Runtime(self.lib, *self.rt.args)
            ptr = c_void_p()
            if self.lib.box_open(rt.ptr, ids[i].value, byref(ptr), byref(err)) < 0:
                rt.close()
                raise from_c(err.code, _s(err.message))
            out.append(EmbeddedBox(rt, ptr))
        return out

    def logs(self, follow: bool, network: bool) -> Iterator[bytes]:
        fn = self.lib.box_net_logs if network else self.lib.box_logs
        if not follow:
            with tempfile.TemporaryFile() as f:
                err = C.Error()
                with self.rt.lock:
                    _check(fn(self.ptr, f.fileno(), 0, byref(err)), err)
                f.seek(0)
                data = f.read()
            return iter([data] if data else [])
        return _follow(fn, self.ptr)


def _snapshot(i: C.SnapshotInfo) -> Snapshot:
    return Snapshot(id=_s(i.id), name=_s(i.name), box_id=_s(i.box_id), box_name=_s(i.box_name) or None,
                    parent=_s(i.parent) or None, image=_s(i.image), created=i.created, size=i.size,
                    virtual_size=i.virtual_size, depth=i.depth, users=i.users)


def _need_snapshots(lib: C.Lib) -> None:
    if not lib.has("cocoon_snapshot_list"):
        raise Unsupported(f"this libcocoon ({lib.path}) has no snapshots, export or import: it needs a newer cocoon")


def _snapshot_list(rt: _Runtime, box: Optional[str]) -> List[Snapshot]:
    _need_snapshots(rt.lib)
    out = ctypes.POINTER(C.SnapshotInfo)()
    n = c_size_t()
    err = C.Error()
    with rt.lock:
        _check(rt.lib.snapshot_list(rt.ptr, _b(box), byref(out), byref(n), byref(err)), err)
    try:
        return [_snapshot(out[i]) for i in range(n.value)]
    finally:
        rt.lib.snapshot_list_free(out)


def _snapshot_inspect(rt: _Runtime, ref: str) -> Snapshot:
    _need_snapshots(rt.lib)
    info = C.SnapshotInfo()
    err = C.Error()
    with rt.lock:
        _check(rt.lib.snapshot_inspect(rt.ptr, ref.encode(), byref(info), byref(err)), err)
    return _snapshot(info)


def _export(rt: _Runtime, what: str, path: str) -> None:
    _need_snapshots(rt.lib)
    err = C.Error()
    with rt.lock:
        _check(rt.lib.export(rt.ptr, what.encode(), os.fsencode(path), byref(err)), err)


def _iso(t: int) -> Optional[str]:
    if t <= 0:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _main_status(st) -> MainStatus:
    return MainStatus(state=_s(st.state) or "created", pid=st.pid or None,
                      exit_code=st.exit_code if st.exit_code >= 0 else None, signal=st.signal or None,
                      error=_s(st.error) or None, started_at=_iso(st.started_at), finished_at=_iso(st.finished_at),
                      command=_s(st.command), restart=_s(st.restart) or "no", restarts=st.restarts)


def _log_lines(call, opts, stream: Optional[str]) -> Iterator[LogLine]:
    """The lines a cocoon_box_*_logs call hands to its on_line callback, from a thread
    of its own through a bounded queue. Leaving the loop early closes the pipe the call
    watches: a follower then ends within its next check (0.2 s)."""
    if stream not in (None, "stdout", "stderr"):
        raise InvalidArgument(f"stream {stream!r}: stdout, stderr or None (both)")
    q: "queue.Queue[object]" = queue.Queue(maxsize=1024)
    gone = threading.Event()
    rfd, wfd = os.pipe()

    def on_line(_ud, is_err, when, text, n):
        if gone.is_set():
            return 1
        name = "stderr" if is_err else "stdout"
        if stream and name != stream:
            return 0
        line = LogLine(time=_s(when) or None, stream=name, text=ctypes.string_at(text, n).decode("utf-8", "replace"))
        while not gone.is_set():
            try:
                q.put(line, timeout=0.2)
                return 0
            except queue.Full:
                continue
        return 1

    cb = C.line_fn(on_line)
    opts.on_line = cb
    result: List[BaseException] = []

    def pump():
        err = C.Error()
        try:
            if call(wfd, byref(opts), byref(err)) < 0:
                result.append(from_c(err.code, _s(err.message)))
        finally:
            os.close(wfd)
            q.put(None)

    t = threading.Thread(target=pump, name="cocoon-main-logs", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                break
            yield item  # type: ignore[misc]
    finally:
        gone.set()
        os.close(rfd)
        while t.is_alive():  # unblock a pump waiting on a full queue
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        t.join()
    if result:
        raise result[0]


def _follow(fn, ptr) -> Iterator[bytes]:
    """Chunks a log-copying call writes to a pipe from a thread, until it returns (the
    box stopped). Leaving the loop early closes the pipe: the call then fails with EPIPE
    and its thread ends."""
    rfd, wfd = os.pipe()
    result: List[CocoonError] = []

    def pump():
        err = C.Error()
        try:
            if fn(ptr, wfd, 1, byref(err)) < 0 and "pipe" not in _s(err.message).lower():
                result.append(from_c(err.code, _s(err.message)))
        finally:
            os.close(wfd)

    t = threading.Thread(target=pump, name="cocoon-logs", daemon=True)
    t.start()
    try:
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            yield chunk
    finally:
        os.close(rfd)
    t.join()
    if result:
        raise result[0]


_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def _libc_free(p) -> None:
    _libc.free(p)


def _timeout_ms(timeout: Optional[float]) -> int:
    """cocoon's uint32 milliseconds of a timeout in seconds (None or 0: none)."""
    if not timeout:
        return 0
    ms = int(timeout * 1000)
    if ms <= 0 or ms > 0xFFFFFFFF:
        raise InvalidArgument(f"timeout {timeout} s: must be above 0 and at most 4294967 s")
    return ms


def _stop_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return 0
    return max(1, int(timeout * 1000))


class EmbeddedTransport(Transport):
    kind = "embedded"

    def __init__(self, home: Optional[str] = None, share_dir: Optional[str] = None, vmm: Optional[str] = None,
                 lib_path: Optional[str] = None):
        self.lib = C.Lib(lib_path) if lib_path else C.lib()
        self.home, self.share_dir, self.vmm = home, share_dir, vmm
        self.rt = _Runtime(self.lib, home, share_dir, vmm)

    def _new_runtime(self) -> _Runtime:
        return _Runtime(self.lib, self.home, self.share_dir, self.vmm)

    def create_box(self, spec: dict) -> EmbeddedBox:
        net: Network = spec.get("network") or Network()
        o = C.init_struct(C.BoxOptions, self.lib.box_options_init)
        keep = [_b(spec.get("name")), _b(spec.get("image")), _b(spec.get("rootfs")), _b(spec.get("accel")),
                _b(spec.get("vmm")), _b(net.mode)]
        o.name, o.image, o.rootfs, o.accel, o.vmm, o.net = keep
        o.cpus = spec.get("cpus") or 0
        o.memory_mib = spec.get("memory_mib") or 0
        o.disk_size = spec.get("disk_bytes") or 0
        o.ephemeral = 1 if spec.get("ephemeral") else 0
        if spec.get("boot_timeout"):
            o.boot_timeout_ms = int(spec["boot_timeout"] * 1000)
        rules, ports = net.all_rules(), list(net.ports)
        if rules:
            keep.append(C.cstr_array(rules))
            o.net_rules = keep[-1]
        if ports:
            keep.append(C.cstr_array(ports))
            o.net_ports = keep[-1]
        for field in ("tls_intercept", "tls_bypass", "header_rules"):
            if spec.get(field):
                keep.append(C.cstr_array(list(spec[field])))
                setattr(o, field, keep[-1])
        secrets = spec.get("secrets") or {}
        if secrets:  # names and hosts: the values come from this process's environment at each start
            arr = (C.Secret * (len(secrets) + 1))()
            for i, (sname, hosts) in enumerate(secrets.items()):
                keep.extend([_b(sname), _b(",".join(hosts))])
                arr[i].name, arr[i].hosts = keep[-2], keep[-1]
            keep.append(arr)
            o.secrets = arr
        if spec.get("secret_in"):
            keep.append(C.cstr_array([f"{n}={','.join(w)}" for n, w in spec["secret_in"].items()]))
            o.secret_in = keep[-1]
        if spec.get("secret_violation"):
            keep.append(_b(spec["secret_violation"]))
            o.secret_violation = keep[-1]
        rt = self._new_runtime()
        ptr = c_void_p()
        err = C.Error()
        if self.lib.box_create(rt.ptr, byref(o), byref(ptr), byref(err)) < 0:
            rt.close()
            raise from_c(err.code, _s(err.message))
        box = EmbeddedBox(rt, ptr, spec)
        if spec.get("command"):
            try:
                box.set_main(list(spec["command"]), spec.get("restart"))
                if spec.get("tty") or spec.get("open_stdin"):
                    box.set_main_stdio(bool(spec.get("tty")), bool(spec.get("open_stdin")))
            except BaseException:
                box.remove(True)
                box.close()
                raise
        if spec.get("healthcheck"):
            try:
                box.set_health(spec["healthcheck"])
            except BaseException:
                box.remove(True)
                box.close()
                raise
        return box

    def open_box(self, id_or_name: str) -> EmbeddedBox:
        rt = self._new_runtime()
        ptr = c_void_p()
        err = C.Error()
        if self.lib.box_open(rt.ptr, id_or_name.encode(), byref(ptr), byref(err)) < 0:
            rt.close()
            raise from_c(err.code, _s(err.message))
        return EmbeddedBox(rt, ptr)

    def _c_list(self, call, struct, convert, free) -> list:
        """The items of a libcocoon call that hands out an array and its count, under
        the runtime's lock, converted and the array freed."""
        out = ctypes.POINTER(struct)()
        n = c_size_t()
        err = C.Error()
        with self.rt.lock:
            _check(call(byref(out), byref(n), byref(err)), err)
        try:
            return [convert(out[i]) for i in range(n.value)]
        finally:
            free(out)

    def list_boxes(self) -> List[BoxInfo]:
        return self._c_list(lambda *a: self.lib.box_list(self.rt.ptr, *a), C.BoxInfo, _box_info,
                            self.lib.box_list_free)

    def pull(self, ref: str, insecure: bool, progress: Optional[Callable[[PullProgress], None]]) -> ImageInfo:
        o = C.init_struct(C.PullOptions, self.lib.pull_options_init)
        o.insecure = 1 if insecure else 0
        failure: List[BaseException] = []

        def on_progress(_user, layer, done, total):
            if progress is None or failure:
                return
            try:
                progress(PullProgress(_s(layer or b""), done, total))
            except BaseException as e:  # noqa: BLE001
                failure.append(e)

        cb = C.pull_progress_fn(on_progress)
        if progress is not None:
            o.progress = cb
        else:
            o.quiet = 1
        info = C.ImageInfo()
        err = C.Error()
        with self.rt.lock:
            rc = self.lib.image_pull(self.rt.ptr, ref.encode(), byref(o), byref(info), byref(err))
        _check(rc, err)
        if failure:
            raise failure[0]
        return _image_info(info)

    def load(self, path: str) -> List[ImageInfo]:
        return self._c_list(lambda *a: self.lib.image_load(self.rt.ptr, os.fsencode(path), *a), C.ImageInfo,
                            _image_info, self.lib.image_list_free)

    def list_images(self) -> List[ImageInfo]:
        return self._c_list(lambda *a: self.lib.image_list(self.rt.ptr, *a), C.ImageInfo, _image_info,
                            self.lib.image_list_free)

    def get_image(self, ref: str) -> Tuple[ImageInfo, Optional[dict]]:
        import json
        info = C.ImageInfo()
        cfg = c_void_p()
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.image_inspect(self.rt.ptr, ref.encode(), byref(info), byref(cfg), byref(err)), err)
        config = None
        if cfg:
            try:
                config = json.loads(ctypes.string_at(cfg).decode())
            finally:
                _libc_free(cfg)
        return _image_info(info), config

    def remove_image(self, ref: str) -> None:
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.image_remove(self.rt.ptr, ref.encode(), byref(err)), err)

    def list_snapshots(self, box: Optional[str]) -> List[Snapshot]:
        return _snapshot_list(self.rt, box)

    def get_snapshot(self, ref: str) -> Snapshot:
        return _snapshot_inspect(self.rt, ref)

    def remove_snapshot(self, ref: str) -> None:
        _need_snapshots(self.lib)
        err = C.Error()
        with self.rt.lock:
            _check(self.lib.snapshot_remove(self.rt.ptr, ref.encode(), byref(err)), err)

    def export_snapshot(self, ref: str, path: str) -> None:
        _export(self.rt, _snapshot_inspect(self.rt, ref).id, path)

    def import_box(self, path: str, name: Optional[str]) -> EmbeddedBox:
        _need_snapshots(self.lib)
        o = C.init_struct(C.ImportOptions, self.lib.import_options_init)
        keep = _b(name)
        o.name = keep
        rt = self._new_runtime()
        ptr = c_void_p()
        err = C.Error()
        if getattr(self.lib, "import")(rt.ptr, os.fsencode(path), byref(o), byref(ptr), byref(err)) < 0:
            rt.close()
            raise from_c(err.code, _s(err.message))
        return EmbeddedBox(rt, ptr)

    def close(self) -> None:
        self.rt.close()


__all__ = ["EmbeddedTransport", "EmbeddedBox", "ExecError"]
