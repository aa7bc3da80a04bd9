"""Pieces of the SDK that need no box: sizes, the network spec, error mapping, the
remote transport's time parser, extraction checks and WebSocket frames."""
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


def test_snapshot_error_classes():
    """The refusals of snapshots, clones and exports come as typed errors from either
    transport's words (libcocoon's and the REST API's messages are the same)."""
    running = "box 0123456789ab is running (or busy): stop it before taking a snapshot"
    assert type(errors.from_c(7, running)) is cocoon.BoxRunning
    assert type(errors.from_rest(409, "invalid_state", running)) is cocoon.BoxRunning
    in_use = "snapshot s1 is in use by 1 box or snapshot (box 0123456789ab): remove it first"
    assert type(errors.from_c(7, in_use)) is cocoon.SnapshotInUse
    assert isinstance(errors.from_rest(409, "invalid_state", in_use), cocoon.InvalidState)
    for where, e in (("c", errors.from_c(2, 'no snapshot with id or name "x"')),
                     ("rest", errors.from_rest(404, "not_found", 'box 0123456789ab has no snapshot "x"'))):
        assert type(e) is cocoon.SnapshotNotFound and isinstance(e, cocoon.NotFound), where
    assert type(errors.from_c(2, 'no box with id or name "x"')) is cocoon.NotFound
    busy = "the image store is busy (a pull or load is running)"  # not a box
    assert type(errors.from_c(7, busy)) is cocoon.InvalidState
    assert type(errors.from_c(7, 'snapshot name "a" is already in use by snapshot 0123456789ab')) is cocoon.AlreadyExists


def test_remote_export_broken_off(tmp_path):
    """An export whose answer breaks off mid-stream raises, and leaves neither the file
    nor its partial beside it."""
    import socket
    import threading
    from cocoon._remote import Http, RemoteBox

    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        request = b""
        while not request.endswith(b"\r\n\r\n{}"):  # the whole request (its body is {}), then a cut answer
            chunk = conn.recv(65536)
            if not chunk:
                break
            request += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n4\r\nzstd\r\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    out = tmp_path / "box.cocoon"
    with pytest.raises(cocoon.CocoonError, match="broke off"):
        RemoteBox(Http(socket_path=path), {"box_id": "0123456789ab"}).export(str(out))
    t.join()
    srv.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sock"]


def test_websocket_client_frames():
    """The remote attach's WebSocket client against hand-made server frames: a
    fragmented message is joined, a ping is answered, a close ends it; a frame above
    the bound and a bad handshake answer are refused."""
    import socket
    import struct

    from cocoon import _websocket as ws

    def frame(op, data, fin=True):
        n = len(data)
        head = bytes([(0x80 if fin else 0) | op])
        head += bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n) if n < 65536 else \
            bytes([127]) + struct.pack("!Q", n)
        return head + data

    a, b = socket.socketpair()
    w = ws.WebSocket(a, a.makefile("rb"))
    b.sendall(frame(ws.OP_BINARY, b"\x01he", fin=False) + frame(ws.OP_PING, b"p") + frame(ws.OP_CONT, b"llo")
              + frame(ws.OP_TEXT, b'{"type":"exit"}') + frame(ws.OP_CLOSE, struct.pack("!H", 1000)))
    assert w.recv() == (ws.OP_BINARY, b"\x01hello")
    assert w.recv() == (ws.OP_TEXT, b'{"type":"exit"}')
    with pytest.raises(ws.Closed):
        w.recv()
    b.settimeout(5)
    got = b.recv(100)
    assert got[0] == 0x80 | ws.OP_PONG and got[1] == 0x80 | 1  # masked, as a client must
    assert got[2 + 4 + 1] == 0x80 | ws.OP_CLOSE
    a.close(), b.close()

    a, b = socket.socketpair()
    w = ws.WebSocket(a, a.makefile("rb"))
    b.sendall(bytes([0x82, 127]) + struct.pack("!Q", ws.MESSAGE_MAX + 1))
    with pytest.raises(cocoon.ProtocolError, match="at most"):
        w.recv()
    a.close(), b.close()

    a, b = socket.socketpair()
    b.sendall(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: wrong\r\n\r\n")
    with pytest.raises(cocoon.ProtocolError, match="Accept"):
        ws.handshake(a, "/v1/boxes/x/attach", {"Host": "localhost"})
    a.close(), b.close()


def test_embedded_attach_drops_input_without_open_stdin():
    """A main process without open stdin: libcocoon never reads the attachment's stdin
    pipe, so write() drops the bytes (as the server does) instead of blocking forever
    once the pipe is full. A stand-in for libcocoon, no box."""
    import threading
    from types import SimpleNamespace

    from cocoon._embedded import _Attach

    class Lib:
        def attach_options_init(self, opts):
            pass

        def attach_start(self, box, opts, out, err):
            return 0

        def attach_tty(self, ptr):
            return 0

        def attach_stdin(self, ptr):
            return 0  # no open stdin

        def attach_free(self, ptr):
            pass

    a = _Attach(SimpleNamespace(lib=Lib(), ptr=None), 0, 0, (lambda b: None, lambda b: None))
    try:
        t = threading.Thread(target=a.write, args=(b"x" * (1 << 20),), daemon=True)
        t.start()
        t.join(30)  # bounds a hang only
        assert not t.is_alive(), "write() blocked on a pipe nobody reads"
    finally:
        for fd in a._write_ends + (a._stdin_r,):  # as wait() does: the readers end, a blocked write fails
            a._close_fd(fd)
        t.join()
        a.close()
