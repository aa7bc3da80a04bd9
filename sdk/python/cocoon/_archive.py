"""Host-side tar plumbing of the remote transport's copies: an archive of a host tree,
and extraction of a box's archive with `docker cp` semantics. The server already holds
what the guest sends to cocoon_copy_from_box's rules; extraction checks the same again
(names under the one top entry, no absolute names or "..", symlinks staying inside, no
devices, no setuid bits) and builds the copy in a hidden directory renamed into place."""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from typing import BinaryIO, Iterator

from .errors import InvalidArgument, ProtocolError


@contextlib.contextmanager
def tar_of(host_path: str, name: str) -> Iterator[BinaryIO]:
    """A temporary file holding a pax archive of host_path under the name `name`."""
    with tempfile.TemporaryFile() as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(host_path, arcname=name, recursive=True)
        f.seek(0)
        yield f


def _check_member(m: tarfile.TarInfo, top: str) -> bool:
    """Whether to extract m (False: skipped); raises for an entry outside the copy."""
    name = m.name.rstrip("/")
    if name.startswith("/") or ".." in name.split("/") or not (name == top or name.startswith(top + "/")):
        raise ProtocolError(f"the archive holds {m.name!r}, outside the copy of {top!r}: refused")
    if m.isdev() or m.isfifo():
        return False
    if m.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
        if m.linkname.startswith("/") or not (target == top or target.startswith(top + "/")):
            return False
    if m.islnk():
        target = posixpath.normpath(m.linkname)
        if not (target == top or target.startswith(top + "/")):
            raise ProtocolError(f"the archive's hard link {m.name!r} -> {m.linkname!r} leaves the copy: refused")
    m.mode &= 0o777
    m.uid = m.gid = os.getuid() if hasattr(os, "getuid") else 0
    m.uname = m.gname = ""
    return True


def extract_docker_cp(f: BinaryIO, top: str, host_path: str) -> None:
    """Extracts the archive f (entries under `top`) like `docker cp BOX:.../top host_path`:
    into host_path under `top` when host_path is an existing directory, else as host_path
    itself (whose parent must exist)."""
    if os.path.isdir(host_path):
        parent, final = host_path, os.path.join(host_path, top)
    else:
        parent = os.path.dirname(os.path.abspath(host_path))
        final = os.path.abspath(host_path)
        if not os.path.isdir(parent):
            raise InvalidArgument(f"{host_path}: its directory {parent} does not exist")
    work = tempfile.mkdtemp(prefix=".cocoon-cp-", dir=parent)
    try:
        with tarfile.open(fileobj=f, mode="r|") as tf:
            for m in tf:
                if _check_member(m, top):
                    if hasattr(tarfile, "data_filter"):
                        tf.extract(m, work, filter="fully_trusted")  # checked above, owners dropped
                    else:
                        tf.extract(m, work)
        got = os.path.join(work, top)
        if not os.path.lexists(got):
            raise ProtocolError(f"the archive of {top!r} was empty")
        if os.path.isdir(got) and os.path.isdir(final) and not os.path.islink(final):
            _merge(got, final)
        else:
            os.replace(got, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merge(src: str, dst: str) -> None:
    for entry in os.listdir(src):
        s, d = os.path.join(src, entry), os.path.join(dst, entry)
        if os.path.isdir(s) and not os.path.islink(s) and os.path.isdir(d) and not os.path.islink(d):
            _merge(s, d)
        elif os.path.isdir(d) and not os.path.islink(d):
            raise InvalidArgument(f"{d}: is a directory, the copy has a file there")
        else:
            os.replace(s, d)
