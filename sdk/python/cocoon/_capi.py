"""ctypes declarations of libcocoon (include/cocoon.h) and where the library is found.
Only this file knows the C layouts; _embedded.py uses them."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_int, c_long, c_longlong, c_size_t,
                    c_uint, c_uint64, c_void_p)
from typing import List, Optional

from .errors import Unsupported

PATH_MAX = 4096
ERROR_MAX = 2048

STDIN_NONE = -1
STDIN_API = -2
START_ATTACHED = 1
START_DETACHED = 2
TAR_NO_OVERWRITE = 1
TAR_FOLLOW = 2
MKDIR_PARENTS = 1
REMOVE_RECURSIVE = 1
MOVE_NO_REPLACE = 1

output_fn = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)
pull_progress_fn = CFUNCTYPE(None, c_void_p, c_char_p, c_uint64, c_uint64)
read_fn = CFUNCTYPE(c_long, c_void_p, c_void_p, c_size_t)
write_fn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
notice_fn = CFUNCTYPE(None, c_void_p, c_char_p)
line_fn = CFUNCTYPE(c_int, c_void_p, c_int, c_char_p, POINTER(c_char), c_size_t)
code_event_fn = CFUNCTYPE(c_int, c_void_p, c_size_t, c_void_p)


class Error(Structure):
    _fields_ = [("code", c_int), ("message", c_char * ERROR_MAX)]


class RuntimeOptions(Structure):
    _fields_ = [("size", c_size_t), ("home", c_char_p), ("share_dir", c_char_p), ("vmm", c_char_p)]


class PullOptions(Structure):
    _fields_ = [("size", c_size_t), ("insecure", c_int), ("quiet", c_int), ("auth_file", c_char_p),
                ("progress", pull_progress_fn), ("user_data", c_void_p)]


class ImageInfo(Structure):
    _fields_ = [("id", c_char * 512), ("name", c_char * 1024), ("repository", c_char * 1024), ("tag", c_char * 256),
                ("config_digest", c_char * 128), ("base_path", c_char * PATH_MAX), ("size", c_uint64),
                ("created", c_longlong), ("boxes", c_uint), ("pulled", c_int)]


class CommandOptions(Structure):
    _fields_ = [("size", c_size_t), ("argv", POINTER(c_char_p)), ("entrypoint", c_char_p),
                ("env", POINTER(c_char_p)), ("cwd", c_char_p), ("user", c_char_p)]


class Command(Structure):
    _fields_ = [("argv", POINTER(c_char_p)), ("env", POINTER(c_char_p)), ("cwd", c_char_p), ("user", c_char_p)]


class Secret(Structure):
    _fields_ = [("name", c_char_p), ("hosts", c_char_p), ("value", c_char_p), ("file", c_char_p)]


class BoxOptions(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("image", c_char_p), ("rootfs", c_char_p), ("cpus", c_uint),
                ("memory_mib", c_uint), ("accel", c_char_p), ("ephemeral", c_int), ("boot_timeout_ms", c_uint),
                ("kernel", c_char_p), ("initrd", c_char_p), ("disk_size", c_uint64), ("vmm", c_char_p),
                ("net", c_char_p), ("net_rules", POINTER(c_char_p)), ("net_ports", POINTER(c_char_p)),
                ("tls_intercept", POINTER(c_char_p)), ("tls_ca", c_char_p), ("tls_bypass", POINTER(c_char_p)),
                ("secrets", POINTER(Secret)), ("header_rules", POINTER(c_char_p)), ("secret_violation", c_char_p),
                ("secret_in", POINTER(c_char_p))]


class BoxInfo(Structure):
    _fields_ = [("id", c_char * 16), ("name", c_char * 128), ("image", c_char * 512), ("image_id", c_char * 512),
                ("rootfs", c_char * PATH_MAX), ("status", c_char * 16), ("running", c_int), ("pid", c_int),
                ("created", c_longlong), ("ephemeral", c_int), ("cpus", c_uint), ("memory_mib", c_uint),
                ("accel", c_char * 16), ("dir", c_char * PATH_MAX), ("kernel", c_char * PATH_MAX),
                ("initrd", c_char * PATH_MAX), ("disk_path", c_char * PATH_MAX), ("disk_format", c_char * 16),
                ("disk_size", c_uint64), ("disk_used", c_uint64), ("ready_ms", c_int), ("boot_ms", c_longlong),
                ("init_ms", c_longlong)]


class ExecOptions(Structure):
    _fields_ = [("size", c_size_t), ("argv", POINTER(c_char_p)), ("env", POINTER(c_char_p)), ("cwd", c_char_p),
                ("user", c_char_p), ("tty", c_int), ("timeout_ms", c_uint), ("stdin_fd", c_int),
                ("stdout_fd", c_int), ("stderr_fd", c_int), ("on_stdout", output_fn), ("on_stderr", output_fn),
                ("user_data", c_void_p), ("rows", c_uint), ("cols", c_uint)]


class MainStatus(Structure):
    _fields_ = [("size", c_size_t), ("present", c_int), ("command", c_char * 256), ("restart", c_char * 32),
                ("state", c_char * 16), ("pid", c_int), ("exit_code", c_int), ("signal", c_int),
                ("error", c_char * 256), ("started_at", c_longlong), ("finished_at", c_longlong),
                ("next_restart_ms", c_longlong), ("restarts", c_uint)]


class AttachOptions(Structure):
    _fields_ = [("size", c_size_t), ("stdin_fd", c_int), ("stdout_fd", c_int), ("stderr_fd", c_int),
                ("notice_fd", c_int), ("detach_keys", c_char_p), ("rows", c_uint), ("cols", c_uint)]


class AttachResult(Structure):
    _fields_ = [("ended", c_int), ("exit_code", c_int), ("signal", c_int), ("detached", c_int),
                ("dropped", c_uint64)]


class HealthOptions(Structure):
    _fields_ = [("size", c_size_t), ("test", POINTER(c_char_p)), ("cmd", c_char_p), ("interval_ms", c_uint),
                ("timeout_ms", c_uint), ("start_period_ms", c_uint), ("retries", c_uint), ("on_failure", c_char_p)]


class HealthResult(Structure):
    _fields_ = [("exit_code", c_int), ("start_ms", c_longlong), ("end_ms", c_longlong), ("output", c_char * 512)]


class HealthStatus(Structure):
    _fields_ = [("size", c_size_t), ("present", c_int), ("test", c_char * 256), ("interval_ms", c_uint),
                ("timeout_ms", c_uint), ("start_period_ms", c_uint), ("retries", c_uint),
                ("on_failure", c_char * 16), ("status", c_char * 16), ("failing_streak", c_uint),
                ("nlog", c_uint), ("log", HealthResult * 5)]


class LogsOptions(Structure):
    _fields_ = [("size", c_size_t), ("follow", c_int), ("tail", c_longlong), ("timestamps", c_int),
                ("since_us", c_longlong), ("on_line", line_fn), ("user_data", c_void_p)]


class CodeOptions(Structure):
    _fields_ = [("size", c_size_t), ("language", c_char_p), ("context", c_char_p), ("env", POINTER(c_char_p)),
                ("timeout_ms", c_uint), ("on_event", code_event_fn), ("ctx", c_void_p)]


class ExitStatus(Structure):
    _fields_ = [("exit_code", c_int), ("signal", c_int), ("timed_out", c_int)]


class ExecInfo(Structure):
    _fields_ = [("id", c_int), ("command", c_char * 1024)]


class CopyOptions(Structure):
    _fields_ = [("size", c_size_t), ("max_bytes", c_uint64), ("max_entries", c_uint64),
                ("idle_timeout_ms", c_uint), ("timeout_ms", c_uint)]


class Stats(Structure):
    _fields_ = [("cpus", c_uint), ("cpu_seconds", c_double), ("mem_total", c_uint64), ("mem_used", c_uint64),
                ("mem_available", c_uint64), ("mem_free", c_uint64), ("disk_total", c_uint64),
                ("disk_used", c_uint64), ("disk_available", c_uint64), ("processes", c_uint),
                ("uptime_seconds", c_double), ("load1", c_double), ("load5", c_double), ("load15", c_double)]


NET_STAT_FIELDS = ["denied_total", "denied_tcp", "denied_udp", "denied_icmp", "denied_dns", "denied_tls",
                   "tcp_connections", "udp_flows", "dns_queries", "dns_stripped", "frames_in", "frames_out",
                   "bytes_in", "bytes_out", "dropped_malformed", "dns_truncated", "log_rotations", "reassembled",
                   "dropped_fragment"]


class NetStats(Structure):
    _fields_ = [("present", c_int)] + [(n, c_uint64) for n in NET_STAT_FIELDS]


class FileInfo(Structure):
    """cocoon_file_info (file operations, /work FILEOPS interface)."""
    _fields_ = [("name", c_char * 256), ("link_target", c_char * 1024), ("type", c_int), ("mode", c_uint),
                ("uid", c_uint), ("gid", c_uint), ("size", c_uint64), ("mtime", c_longlong), ("mtime_nsec", c_long)]


class SnapshotOptions(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p)]


class SnapshotInfo(Structure):
    _fields_ = [("id", c_char * 16), ("name", c_char * 64), ("box_id", c_char * 16), ("box_name", c_char * 128),
                ("parent", c_char * 16), ("image", c_char * 512), ("created", c_longlong), ("size", c_uint64),
                ("virtual_size", c_uint64), ("depth", c_uint), ("users", c_uint)]


class CompactOptions(Structure):
    _fields_ = [("size", c_size_t)]


class CompactInfo(Structure):
    _fields_ = [("layers_before", c_uint), ("layers_after", c_uint), ("bytes_before", c_uint64),
                ("bytes_after", c_uint64), ("data_clusters", c_uint64), ("zero_clusters", c_uint64),
                ("released", c_char * 16 * 14), ("nreleased", c_uint)]


class CloneOptions(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("count", c_uint)]


class ForkOptions(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("count", c_uint)]


class ImportOptions(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p)]


FILE_TYPES = {1: "file", 2: "directory", 3: "symlink", 4: "other"}

# name: (restype, argtypes); functions missing from an older library are declared
# only when present (lib.has(name) tells).
_P = c_void_p
_E = POINTER(Error)
_SIGNATURES = {
    "cocoon_version": (c_char_p, []),
    "cocoon_runtime_options_init": (None, [POINTER(RuntimeOptions)]),
    "cocoon_runtime_open": (c_int, [POINTER(RuntimeOptions), POINTER(_P), _E]),
    "cocoon_runtime_close": (None, [_P]),
    "cocoon_pull_options_init": (None, [POINTER(PullOptions)]),
    "cocoon_image_pull": (c_int, [_P, c_char_p, POINTER(PullOptions), POINTER(ImageInfo), _E]),
    "cocoon_image_load": (c_int, [_P, c_char_p, POINTER(POINTER(ImageInfo)), POINTER(c_size_t), _E]),
    "cocoon_image_list": (c_int, [_P, POINTER(POINTER(ImageInfo)), POINTER(c_size_t), _E]),
    "cocoon_image_list_free": (None, [POINTER(ImageInfo)]),
    "cocoon_image_inspect": (c_int, [_P, c_char_p, POINTER(ImageInfo), POINTER(c_void_p), _E]),
    "cocoon_image_remove": (c_int, [_P, c_char_p, _E]),
    "cocoon_command_options_init": (None, [POINTER(CommandOptions)]),
    "cocoon_box_command": (c_int, [_P, POINTER(CommandOptions), POINTER(Command), _E]),
    "cocoon_command_free": (None, [POINTER(Command)]),
    "cocoon_box_options_init": (None, [POINTER(BoxOptions)]),
    "cocoon_box_create": (c_int, [_P, POINTER(BoxOptions), POINTER(_P), _E]),
    "cocoon_box_open": (c_int, [_P, c_char_p, POINTER(_P), _E]),
    "cocoon_box_id": (c_char_p, [_P]),
    "cocoon_box_name": (c_char_p, [_P]),
    "cocoon_box_start": (c_int, [_P, _E]),
    "cocoon_box_start_flags": (c_int, [_P, c_uint, _E]),
    "cocoon_box_is_running": (c_int, [_P]),
    "cocoon_box_stop": (c_int, [_P, c_uint, _E]),
    "cocoon_box_restart": (c_int, [_P, c_uint, _E]),
    "cocoon_box_remove": (c_int, [_P, c_int, _E]),
    "cocoon_box_close": (None, [_P]),
    "cocoon_box_inspect": (c_int, [_P, POINTER(BoxInfo), _E]),
    "cocoon_box_list": (c_int, [_P, POINTER(POINTER(BoxInfo)), POINTER(c_size_t), _E]),
    "cocoon_box_list_free": (None, [POINTER(BoxInfo)]),
    "cocoon_box_logs": (c_int, [_P, c_int, c_int, _E]),
    "cocoon_exec_options_init": (None, [POINTER(ExecOptions)]),
    "cocoon_exec_start": (c_int, [_P, POINTER(ExecOptions), POINTER(_P), _E]),
    "cocoon_exec_write": (c_int, [_P, c_void_p, c_size_t, _E]),
    "cocoon_exec_close_stdin": (c_int, [_P, _E]),
    "cocoon_exec_signal": (c_int, [_P, c_int, _E]),
    "cocoon_exec_resize": (c_int, [_P, c_uint, c_uint, _E]),
    "cocoon_exec_id": (c_int, [_P]),
    "cocoon_exec_wait": (c_int, [_P, POINTER(ExitStatus), _E]),
    "cocoon_exec_free": (None, [_P]),
    "cocoon_box_run": (c_int, [_P, POINTER(ExecOptions), POINTER(ExitStatus), _E]),
    "cocoon_box_list_execs": (c_int, [_P, POINTER(POINTER(ExecInfo)), POINTER(c_size_t), _E]),
    "cocoon_box_signal_exec": (c_int, [_P, c_int, c_int, POINTER(c_size_t), _E]),
    "cocoon_copy_options_init": (None, [POINTER(CopyOptions)]),
    "cocoon_copy_to_box": (c_int, [_P, c_char_p, c_char_p, _E]),
    "cocoon_copy_from_box": (c_int, [_P, c_char_p, c_char_p, _E]),
    "cocoon_file_write": (c_int, [_P, c_char_p, c_void_p, c_size_t, c_uint, _E]),
    "cocoon_file_read": (c_int, [_P, c_char_p, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _E]),
    "cocoon_tar_to_box": (c_int, [_P, c_char_p, read_fn, c_void_p, c_uint, POINTER(CopyOptions), _E]),
    "cocoon_tar_from_box": (c_int, [_P, c_char_p, write_fn, c_void_p, c_uint, POINTER(CopyOptions), _E]),
    "cocoon_box_stats": (c_int, [_P, POINTER(Stats), _E]),
    "cocoon_box_net_stats": (c_int, [_P, POINTER(NetStats), _E]),
    "cocoon_box_net_logs": (c_int, [_P, c_int, c_int, _E]),
    # the main process and detached execs
    "cocoon_box_set_main": (c_int, [_P, POINTER(Command), c_char_p, _E]),
    "cocoon_main_status_init": (None, [POINTER(MainStatus)]),
    "cocoon_box_set_main_stdio": (c_int, [_P, c_int, c_int, _E]),
    "cocoon_attach_options_init": (None, [POINTER(AttachOptions)]),
    "cocoon_attach_start": (c_int, [_P, POINTER(AttachOptions), POINTER(_P), _E]),
    "cocoon_attach_tty": (c_int, [_P]),
    "cocoon_attach_stdin": (c_int, [_P]),
    "cocoon_attach_wait": (c_int, [_P, POINTER(AttachResult), _E]),
    "cocoon_attach_resize": (None, [_P, c_uint, c_uint]),
    "cocoon_attach_signal": (None, [_P, c_int]),
    "cocoon_attach_detach": (None, [_P]),
    "cocoon_attach_free": (None, [_P]),
    "cocoon_health_options_init": (None, [POINTER(HealthOptions)]),
    "cocoon_box_set_health": (c_int, [_P, POINTER(HealthOptions), _E]),
    "cocoon_health_status_init": (None, [POINTER(HealthStatus)]),
    "cocoon_box_health_status": (c_int, [_P, POINTER(HealthStatus), _E]),
    "cocoon_box_wait": (c_int, [_P, c_int, c_int, POINTER(c_int), _E]),
    "cocoon_box_main_status": (c_int, [_P, POINTER(MainStatus), _E]),
    "cocoon_logs_options_init": (None, [POINTER(LogsOptions)]),
    "cocoon_box_main_logs": (c_int, [_P, c_int, c_int, POINTER(LogsOptions), _E]),
    "cocoon_parse_since": (c_int, [c_char_p, POINTER(c_longlong), _E]),
    "cocoon_exec_detached": (c_int, [_P, POINTER(ExecOptions), POINTER(c_int), _E]),
    "cocoon_box_exec_status": (c_int, [_P, c_int, POINTER(MainStatus), _E]),
    "cocoon_box_exec_logs": (c_int, [_P, c_int, c_int, c_int, POINTER(LogsOptions), _E]),
    # file operations (FILEOPS interface)
    "cocoon_file_stat": (c_int, [_P, c_char_p, POINTER(FileInfo), _E]),
    "cocoon_file_list": (c_int, [_P, c_char_p, POINTER(POINTER(FileInfo)), POINTER(c_size_t), _E]),
    "cocoon_file_list_free": (None, [POINTER(FileInfo)]),
    "cocoon_file_mkdir": (c_int, [_P, c_char_p, c_uint, c_uint, _E]),
    "cocoon_file_remove": (c_int, [_P, c_char_p, c_uint, _E]),
    "cocoon_file_move": (c_int, [_P, c_char_p, c_char_p, c_uint, _E]),
    # cocoon.yaml (CONFIG interface)
    "cocoon_config_load": (c_int, [c_char_p, POINTER(c_void_p), _E]),
    "cocoon_free": (None, [c_void_p]),
    # the code interpreter
    "cocoon_code_options_init": (None, [POINTER(CodeOptions)]),
    "cocoon_code_run": (c_int, [_P, c_char_p, POINTER(CodeOptions), _E]),
    "cocoon_code_context_create": (c_int, [_P, c_char_p, c_char_p, POINTER(c_void_p), _E]),
    "cocoon_code_context_list": (c_int, [_P, POINTER(c_void_p), _E]),
    "cocoon_code_context_restart": (c_int, [_P, c_char_p, _E]),
    "cocoon_code_context_remove": (c_int, [_P, c_char_p, _E]),
    # disk snapshots, export and import
    "cocoon_snapshot_options_init": (None, [POINTER(SnapshotOptions)]),
    "cocoon_snapshot_create": (c_int, [_P, POINTER(SnapshotOptions), POINTER(SnapshotInfo), _E]),
    "cocoon_snapshot_list": (c_int, [_P, c_char_p, POINTER(POINTER(SnapshotInfo)), POINTER(c_size_t), _E]),
    "cocoon_snapshot_list_free": (None, [POINTER(SnapshotInfo)]),
    "cocoon_snapshot_inspect": (c_int, [_P, c_char_p, POINTER(SnapshotInfo), _E]),
    "cocoon_snapshot_remove": (c_int, [_P, c_char_p, _E]),
    "cocoon_snapshot_restore": (c_int, [_P, c_char_p, _E]),
    "cocoon_compact_options_init": (None, [POINTER(CompactOptions)]),
    "cocoon_box_compact": (c_int, [_P, POINTER(CompactOptions), POINTER(CompactInfo), _E]),
    "cocoon_clone_options_init": (None, [POINTER(CloneOptions)]),
    "cocoon_box_clone": (c_int, [_P, c_char_p, POINTER(CloneOptions), c_void_p, c_void_p, _E]),
    "cocoon_fork_options_init": (None, [POINTER(ForkOptions)]),
    "cocoon_box_fork": (c_int, [_P, POINTER(ForkOptions), c_void_p, c_void_p, _E]),
    "cocoon_export": (c_int, [_P, c_char_p, c_char_p, _E]),
    "cocoon_import_options_init": (None, [POINTER(ImportOptions)]),
    "cocoon_import": (c_int, [_P, c_char_p, POINTER(ImportOptions), POINTER(_P), _E]),
}


def candidates() -> List[str]:
    """Where libcocoon is looked for, in order: $COCOON_LIB, a build tree around this
    package (sdk/python/cocoon -> build/lib), then the system's loader."""
    out = []
    env = os.environ.get("COCOON_LIB")
    if env:
        out.append(env)
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    out.append(os.path.join(root, "build", "lib", "libcocoon.so"))
    out.append("libcocoon.so.0")
    found = ctypes.util.find_library("cocoon")
    if found:
        out.append(found)
    return out


class Lib:
    """The loaded library with its functions declared."""

    def __init__(self, path: Optional[str] = None):
        tried = []
        self.cdll = None
        for p in [path] if path else candidates():
            if os.sep in p and not os.path.exists(p):
                tried.append(f"{p} (missing)")
                continue
            try:
                self.cdll = ctypes.CDLL(p)
                self.path = p
                break
            except OSError as e:
                tried.append(f"{p} ({e})")
        if self.cdll is None:
            raise Unsupported("libcocoon not found: tried " + "; ".join(tried) +
                              ". Build it (make all) and set COCOON_LIB=/path/to/libcocoon.so, install cocoon "
                              "(make install), or use the remote transport (cocoon.Client(socket=...)).")
        self._present = set()
        for name, (res, args) in _SIGNATURES.items():
            fn = getattr(self.cdll, name, None)
            if fn is None:
                continue
            fn.restype = res
            fn.argtypes = args
            setattr(self, name[len("cocoon_"):], fn)
            self._present.add(name)

    def has(self, name: str) -> bool:
        return name in self._present


_lib: Optional[Lib] = None
_lib_lock = threading.Lock()


def lib() -> Lib:
    """The process's libcocoon, loaded on first use."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = Lib()
        return _lib


def init_struct(cls, init_fn):
    """An options struct filled by its *_options_init. The buffer is larger than our
    declaration (a newer library's struct may be bigger and its init writes its own
    size), and the size is then set to ours: the library reads only fields we know."""
    buf = ctypes.create_string_buffer(ctypes.sizeof(cls) + 1024)
    s = cls.from_buffer(buf)
    init_fn(ctypes.byref(s))
    s.size = ctypes.sizeof(cls)
    s._keep = buf  # type: ignore[attr-defined]
    return s


def cstr_array(items) -> "ctypes.Array":
    """A NULL-terminated char*[] of the given strings (kept alive by the array)."""
    enc = [s.encode() if isinstance(s, str) else bytes(s) for s in items]
    arr = (c_char_p * (len(enc) + 1))(*enc, None)
    return arr


def from_cstr_array(ptr) -> List[str]:
    out = []
    if not ptr:
        return out
    i = 0
    while ptr[i] is not None:
        out.append(ptr[i].decode("utf-8", "replace"))
        i += 1
    return out
