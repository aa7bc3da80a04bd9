"""Pieces of the SDK that need no box: sizes, the network spec, error mapping, the
remote transport's time parser and extraction checks."""
import io
import tarfile

import pytest

import cocoon
from cocoon import errors
from cocoon._archive import extract_docker_cp
from cocoon._remote import _parse_time


def test_sizes():
    assert cocoon.parse_memory_mib("512M") == 512
    assert cocoon.parse_memory_mib("512m") == 512
    assert cocoon.parse_memory_mib("1G") == 1024
    assert cocoon.parse_memory_mib("1.5GiB") == 1536
    assert cocoon.parse_memory_mib(768) == 768
    assert cocoon.parse_memory_mib(None) == 0
    assert cocoon.parse_size("10G") == 10 << 30
    for bad in ("lots", "-1M", "1Q", True):
        with pytest.raises(cocoon.InvalidArgument):
            cocoon.parse_memory_mib(bad)
    with pytest.raises(cocoon.InvalidArgument):
        cocoon.parse_memory_mib("1000K")  # not whole MiB


def test_network_spec():
    n = cocoon.Network.coerce({"allow": ["pypi.org"], "block": ["169.254.169.254/32"], "ports": ["8080:80"]})
    assert n.all_rules() == ["allow pypi.org", "deny 169.254.169.254/32"] and n.ports == ["8080:80"]
    assert cocoon.Network.coerce("none").mode == "none"
    with pytest.raises(cocoon.InvalidArgument):
        cocoon.Network.coerce({"allowed": []})


def test_error_mapping():
    assert isinstance(errors.from_c(2, "x"), cocoon.NotFound)
    assert isinstance(errors.from_c(7, 'box name "a" is already in use by box 1'), cocoon.AlreadyExists)
    e = errors.from_c(10, 'exec "x": No such file or directory')
    assert isinstance(e, cocoon.ExecError) and e.exit_code == 127
    assert isinstance(errors.from_rest(409, "already_exists", "m"), cocoon.InvalidState)
    assert isinstance(errors.from_rest(404, "not_found", "m"), LookupError)
    assert isinstance(errors.from_rest(418, "", "m"), cocoon.CocoonError)


def test_time_parser():
    assert _parse_time("1970-01-01T00:00:01.5Z") == 1.5
    assert _parse_time("2026-12-03T10:00:00.123456789+01:00") == pytest.approx(1796288400.123456789)


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            else:
                ti.size = len(extra)
            t.addfile(ti, io.BytesIO(extra) if kind == "file" else None)
    buf.seek(0)
    return buf


def test_extraction_refuses_entries_outside_and_skips_escaping_links(tmp_path):
    with pytest.raises(cocoon.ProtocolError):
        extract_docker_cp(_tar([("top", "dir", None), ("../evil", "file", b"x")]), "top", str(tmp_path))
    with pytest.raises(cocoon.ProtocolError):
        extract_docker_cp(_tar([("top", "dir", None), ("other/x", "file", b"x")]), "top", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind
    extract_docker_cp(_tar([("top", "dir", None), ("top/ok", "file", b"fine"), ("top/out", "sym", "/etc/passwd"),
                            ("top/up", "sym", "../../x"), ("top/in", "sym", "ok")]), "top", str(tmp_path))
    assert (tmp_path / "top" / "ok").read_bytes() == b"fine"
    assert sorted(p.name for p in (tmp_path / "top").iterdir()) == ["in", "ok"]
