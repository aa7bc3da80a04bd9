"""The values the SDK hands out and takes: results, infos, the network policy, and the
parsers of sizes ("512M", "1G"). Plain dataclasses, the same for both transports."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

from .errors import CommandFailed, InvalidArgument

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: Union[int, str], unit_if_bare: int = 1) -> int:
    """Bytes of "512M", "1G", "2g", "4096K", "1.5G" (binary units, an optional trailing
    "B" or "iB"); a bare int or digit string counts in unit_if_bare."""
    if isinstance(value, bool):
        raise InvalidArgument(f"size {value!r}: give a number or a string such as \"512M\"")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"size {value}: must not be negative")
        return value * unit_if_bare
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", str(value))
    if not m:
        raise InvalidArgument(f"size {value!r}: expected a number with an optional K, M, G or T (\"512M\", \"1G\")")
    unit = m.group(2).upper()
    scale = _UNITS[unit] if unit else unit_if_bare
    return int(float(m.group(1)) * scale)


def parse_memory_mib(value: Union[int, str, None]) -> int:
    """MiB of a memory size: an int counts MiB, a string takes K/M/G/T ("512M", "1G");
    None or 0: the default (0)."""
    if value is None:
        return 0
    nbytes = parse_size(value, 1 << 20)
    if nbytes % (1 << 20):
        raise InvalidArgument(f"memory {value!r}: give a whole number of MiB")
    return nbytes >> 20


@dataclass
class Network:
    """A box's network: `mode` "public" (the default: the public internet through
    cocoon's filter), "none" (no network device) or "open" (everything, unsafe);
    `allow`/`deny` entries ("api.openai.com", "*.pypi.org", "10.0.0.0/8:5432/tcp",
    "host:8080") become first-match rules, allows first; `rules` are cocoon's own rule
    strings ("allow X", "deny Y") placed before them; `ports` are published ports
    ("8080:80", "127.0.0.1:5353:53/udp")."""

    mode: str = "public"
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    rules: Sequence[str] = ()
    ports: Sequence[str] = ()

    def all_rules(self) -> List[str]:
        return list(self.rules) + ["allow " + a for a in self.allow] + ["deny " + d for d in self.deny]

    @classmethod
    def coerce(cls, value: "Union[Network, str, Mapping, None]") -> "Network":
        if value is None:
            return cls()
        if isinstance(value, Network):
            return value
        if isinstance(value, str):
            return cls(mode=value)
        if isinstance(value, Mapping):
            known = {"mode", "allow", "deny", "block", "rules", "ports"}
            unknown = set(value) - known
            if unknown:
                raise InvalidArgument(f"network: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
            deny = list(value.get("deny") or ()) + list(value.get("block") or ())
            return cls(mode=value.get("mode") or "public", allow=list(value.get("allow") or ()), deny=deny,
                       rules=list(value.get("rules") or ()), ports=list(value.get("ports") or ()))
        raise InvalidArgument(f"network {value!r}: give a mode string, a dict or a cocoon.Network")


@dataclass
class ExecResult:
    """A finished command. `stdout`/`stderr` are text (UTF-8, undecodable bytes
    replaced); the exact bytes are `stdout_bytes`/`stderr_bytes`. `exit_code` follows
    the shell: 128+N when signal N ended the command (then `signal` is N)."""

    exit_code: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    signal: Optional[int] = None
    timed_out: bool = False
    duration_ms: Optional[int] = None

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    # the peers' spellings
    @property
    def exitCode(self) -> int:  # noqa: N802 (JS spelling)
        return self.exit_code

    @property
    def output(self) -> str:
        """stdout then stderr, as one text."""
        return self.stdout + self.stderr

    def check(self) -> "ExecResult":
        """Raises CommandFailed unless the command exited 0; returns self."""
        if self.exit_code != 0:
            what = f"killed by signal {self.signal}" if self.signal else f"exited {self.exit_code}"
            tail = self.stderr.strip().splitlines()[-3:]
            raise CommandFailed(f"command {what}" + (": " + " | ".join(tail) if tail else ""), self)
        return self


@dataclass
class OutputChunk:
    """Bytes a running command wrote: `stream` is "stdout" or "stderr"."""

    stream: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class BoxInfo:
    """What `cocoon ls`/`inspect` show of a box."""

    id: str
    name: Optional[str]
    status: str  # "running", "stopped" or "configured" (remote: created, never booted)
    image: str
    cpus: int
    memory_mib: int
    ephemeral: bool
    created: Optional[str] = None  # RFC 3339 (remote) or unix seconds as text (embedded)
    image_id: str = ""
    disk_size: int = 0
    pid: Optional[int] = None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class ImageInfo:
    """An image here (pulled, loaded or built-in)."""

    id: str
    reference: str
    repository: str
    tag: str
    size: int
    boxes: int
    builtin: bool


@dataclass
class Snapshot:
    """A disk snapshot of a stopped box (what `cocoon snapshot ls` shows): the box's
    disk as it was, a read-only layer the box (and later snapshots) stand on."""

    id: str  # 12 hex digits
    name: str
    box_id: str  # the box it was taken of (it may have been removed since)
    box_name: Optional[str]
    parent: Optional[str]  # the snapshot it stands on; None when it stands on the image
    image: str
    created: int  # unix seconds
    size: int  # bytes its layer takes on the host
    virtual_size: int  # bytes of the disk
    depth: int  # snapshots under the box's disk at this one, itself included
    users: int  # boxes and snapshots standing on it (it cannot be removed while above 0)


@dataclass
class MainStatus:
    """A box's main process (``Box.main_status()``) or a detached exec
    (``Box.detached_status(id)``, where ``id`` is set): its state ("created" before it
    first ran, "starting", "running", "restarting", "exited", "stopped" when the box
    stopped under it), the exit code and signal of its last run (None before one
    ended), why it could not start, and times as RFC 3339 UTC strings."""

    state: str
    pid: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    command: str = ""
    restart: str = "no"
    restarts: int = 0
    id: Optional[int] = None

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class HealthStatus:
    """A box's health check (``Box.health()``): the check as set at create (durations in
    seconds) and, while the box runs, its state: status "starting", "healthy" or
    "unhealthy" (None when the box is stopped), failures in a row, and the last run's
    exit code and output."""

    test: str
    interval: float
    timeout: float
    retries: int
    start_period: float = 0.0
    on_failure: str = "none"
    status: Optional[str] = None
    failing_streak: int = 0
    last_exit_code: Optional[int] = None
    last_output: Optional[str] = None

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


@dataclass
class LogLine:
    """One line of a main process's or detached exec's output (without its newline),
    with the time the host received it (RFC 3339 UTC, microseconds)."""

    time: Optional[str]
    stream: str
    text: str


@dataclass
class PullProgress:
    """One progress report of a pull: bytes `done` of `total` for one layer."""

    layer: str
    done: int
    total: int


@dataclass
class Stats:
    """A snapshot of a running box's resources. Fields a transport does not report are
    None (the REST API gives no CPU seconds, free memory or 5/15-minute loads)."""

    memory_used: int
    memory_total: int
    disk_used: int
    disk_total: int
    processes: int
    uptime_seconds: float
    load1: float
    cpus: Optional[int] = None
    cpu_seconds: Optional[float] = None
    memory_available: Optional[int] = None
    disk_available: Optional[int] = None
    load5: Optional[float] = None
    load15: Optional[float] = None


@dataclass
class NetworkStats:
    """Counters of the box's network stack (`present` False: no network device)."""

    present: bool
    denied_total: int = 0
    denied_tcp: int = 0
    denied_udp: int = 0
    denied_icmp: int = 0
    denied_dns: int = 0
    denied_tls: int = 0
    tcp_connections: int = 0
    udp_flows: int = 0
    dns_queries: int = 0
    dns_stripped: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_malformed: int = 0

    @classmethod
    def from_dict(cls, d: Mapping) -> "NetworkStats":
        names = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: (bool(v) if k == "present" else int(v)) for k, v in d.items() if k in names})


@dataclass
class FileInfo:
    """A file in a box (list/stat). `type` is "file", "directory", "symlink" or "other";
    `mtime` is unix seconds (float, nanoseconds kept as far as a float does)."""

    name: str
    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    link_target: Optional[str] = None

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def is_symlink(self) -> bool:
        return self.type == "symlink"


@dataclass
class ExecInfo:
    """A command running in a box (started by any client)."""

    id: int
    command: str


@dataclass
class BoxSpec:
    """A box as described by a cocoon.yaml (cocoon.load_config)."""

    name: str
    image: Optional[str] = None
    rootfs: Optional[str] = None
    cpus: int = 0
    memory_mib: int = 0
    disk_bytes: int = 0
    env: Dict[str, str] = field(default_factory=dict)
    workdir: Optional[str] = None
    user: Optional[str] = None
    ephemeral: bool = False
    network: Network = field(default_factory=Network)
    scripts: Dict[str, List[str]] = field(default_factory=dict)
    digest: str = ""


@dataclass
class Config:
    """A loaded cocoon.yaml: its absolute path and its boxes in the file's order."""

    file: str
    boxes: List[BoxSpec]

    def box(self, name: str) -> BoxSpec:
        for b in self.boxes:
            if b.name == name:
                return b
        from .errors import NotFound
        raise NotFound(f"{self.file}: no box named {name!r} (it has {', '.join(b.name for b in self.boxes) or 'none'})")
