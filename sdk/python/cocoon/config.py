"""cocoon.yaml in Python: load_config reads and checks the file with libcocoon's own
reader (cocoon_config_load, the one `cocoon up` uses), so the SDK and the CLI accept
and refuse the same files with the same messages."""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional, Union

from .errors import Unsupported
from .types import BoxSpec, Config, Network

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client


def _lib_config(path: str) -> str:
    from . import _capi as C
    import ctypes
    lib = C.lib()
    if not lib.has("cocoon_config_load"):
        raise Unsupported(f"this libcocoon ({lib.path}) has no cocoon_config_load: cocoon.yaml needs a newer cocoon")
    out = ctypes.c_void_p()
    err = C.Error()
    if lib.config_load(os.fsencode(path), ctypes.byref(out), ctypes.byref(err)) < 0:
        from .errors import from_c
        raise from_c(err.code, err.message.decode("utf-8", "replace"))
    try:
        return ctypes.string_at(out).decode()
    finally:
        lib.free(out)


def parse_config_json(text: str) -> Config:
    """A Config from libcocoon's normalized JSON of a cocoon.yaml."""
    d = json.loads(text)
    boxes = []
    for b in d.get("boxes", []):
        n = b.get("network") or {}
        rules = list(n.get("rules") or [])
        boxes.append(BoxSpec(
            name=b["name"], image=b.get("image"), rootfs=b.get("rootfs"), cpus=b.get("cpus") or 0,
            memory_mib=b.get("memory_mib") or 0, disk_bytes=b.get("disk_bytes") or 0, env=dict(b.get("env") or {}),
            workdir=b.get("workdir"), user=b.get("user"), ephemeral=bool(b.get("ephemeral")),
            network=Network(mode=n.get("mode") or "public", rules=rules, ports=list(n.get("ports") or [])),
            scripts={k: list(v) for k, v in (b.get("scripts") or {}).items()}, digest=b.get("digest") or ""))
    return Config(file=d.get("file", ""), boxes=boxes)


def load_config(path: Union[str, "os.PathLike[str]", None] = None, *, client: "Optional[Client]" = None) -> Config:
    """Reads a cocoon.yaml (default ./cocoon.yaml, then ./cocoon.yml) into a Config of
    BoxSpec objects. Strict as the CLI: unknown keys, wrong types and duplicates raise
    InvalidArgument with FILE:LINE:COL. Needs libcocoon on this host (also for a remote
    client: the file is read here)."""
    if path is None:
        path = "cocoon.yaml" if os.path.exists("cocoon.yaml") or not os.path.exists("cocoon.yml") else "cocoon.yml"
    return parse_config_json(_lib_config(os.fspath(path)))
