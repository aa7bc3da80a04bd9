"""The WebSocket layer of `cocoon serve` (src/serve/ws*.c) against a real client: Python's
`websockets` (Debian's python3-websockets) talks to tests/tools/ws-echo.c, a tiny echo
server linked with the build's libserve.a, over loopback. Text, binary, a large message
sent in fragments, pings, both closing handshakes, the size bound, output sent from a
second thread while pings are answered, and what a real client cannot send (unmasked
frames, bad UTF-8, a bad handshake) over a raw socket. No VM is needed."""
import asyncio
import base64
import os
import socket
import struct
import subprocess

import pytest

websockets = pytest.importorskip("websockets", reason="python3-websockets is not installed (scripts/setup)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20


def internal_lib_dir():
    bin_dir = os.environ.get("COCOON_BIN_DIR") or os.path.join(REPO, "build", "bin")
    return os.path.abspath(os.path.join(bin_dir, "..", "lib", "internal"))


@pytest.fixture(scope="module")
def ws_echo(tmp_path_factory):
    """tests/tools/ws-echo.c linked with the build's libserve.a and libutil.a (with the
    sanitizers when the build has them)."""
    libdir = internal_lib_dir()
    libs = [os.path.join(libdir, n) for n in ("libserve.a", "libutil.a")]
    for lib in libs:
        assert os.path.exists(lib), f"{lib} is not built (make host)"
    nm = subprocess.run(["nm", libs[0]], capture_output=True, text=True).stdout
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"] if "__asan_" in nm else []
    out = str(tmp_path_factory.mktemp("ws-echo") / "ws-echo")
    cmd = ["gcc", "-std=gnu11", "-g", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", *san,
           "-I" + os.path.join(REPO, "src"), "-I" + os.path.join(REPO, "include"), "-o", out,
           os.path.join(REPO, "tests", "tools", "ws-echo.c"), *libs, "-lcrypto", "-lpthread"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


class Server:
    def __init__(self, path, *args):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        self.proc = subprocess.Popen([path, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        assert line.startswith("port "), line + self.proc.stderr.read()
        self.port = int(line.split()[1])
        self.uri = f"ws://127.0.0.1:{self.port}/attach"
        self.stderr = None

    def finish(self, timeout=30):
        """Waits for the server to end its connections; returns its stderr lines."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.stderr = self.proc.stderr.read()
        assert "Sanitizer" not in self.stderr and "runtime error" not in self.stderr, self.stderr
        assert self.proc.returncode == 0, self.stderr
        return self.stderr.splitlines()


@pytest.fixture
def server(ws_echo):
    servers = []

    def start(*args):
        s = Server(ws_echo, *args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_text_and_binary_echo(server):
    s = server()

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None) as ws:
            await ws.send("h\u00e9llo \u2713 \U0001F600")
            assert await ws.recv() == "h\u00e9llo \u2713 \U0001F600"
            await ws.send(b"\x00\x01\xff" * 1000)
            assert await ws.recv() == b"\x00\x01\xff" * 1000
            await ws.send("")
            assert await ws.recv() == ""
            for size in (125, 126, 65535, 65536):  # every length form, both ways
                await ws.send(bytes(range(256)) * (size // 256) + bytes(size % 256))
                assert len(await ws.recv()) == size

    run(talk())
    assert s.finish() == ["closed 1000"]


def test_large_fragmented_message(server):
    """1 MiB (the bound, exactly) sent as 16 fragments, reassembled and echoed whole."""
    s = server()
    payload = os.urandom(MiB)
    text = "\u00e9" * (MiB // 2)  # two-byte characters split across fragment boundaries

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None, max_size=2 * MiB) as ws:
            await ws.send([payload[i:i + 65536] for i in range(0, MiB, 65536)])
            assert await ws.recv() == payload
            await ws.send([text[i:i + 33333] for i in range(0, len(text), 33333)])
            assert await ws.recv() == text

    run(talk())
    assert s.finish() == ["closed 1000"]


def test_ping_answered(server):
    s = server()

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None) as ws:
            for data in (b"", b"are you there", os.urandom(125)):
                waiter = await ws.ping(data)
                await asyncio.wait_for(waiter, 10)
            # Pings between the fragments of a message.
            waiters = []

            async def fragments():
                for part in ("part one, ", "part two, ", "part three"):
                    yield part
                    waiters.append(await ws.ping(part.encode()))

            await ws.send(fragments())
            assert await ws.recv() == "part one, part two, part three"
            await asyncio.wait_for(asyncio.gather(*waiters), 10)

    run(talk())
    assert s.finish() == ["closed 1000"]


def test_client_close_code_echoed(server):
    s = server()

    async def talk():
        ws = await websockets.connect(s.uri, ping_interval=None)
        await ws.close(code=4321, reason="bye")
        return ws.close_code

    assert run(talk()) == 4321
    assert s.finish() == ["closed 4321"]


def test_server_starts_close(server):
    s = server()

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None) as ws:
            await ws.send("close-me")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code, e.value.rcvd.reason

    assert run(talk()) == (4000, "asked to")
    assert s.finish() == ["closed 4000"]


def test_oversize_message_closes_1009(server):
    s = server(1, 64 * 1024)

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None) as ws:
            await ws.send(b"x" * (64 * 1024))  # the bound itself passes
            assert len(await ws.recv()) == 64 * 1024
            await ws.send([b"y" * 32768, b"y" * 32768, b"y"])
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as e:
                await ws.recv()
            return e.value.rcvd.code

    assert run(talk()) == 1009
    lines = s.finish()
    assert len(lines) == 1 and lines[0].startswith("error 1009: message larger"), lines


def test_output_from_another_thread_with_pings(server):
    """A second server thread sends 40 messages of 200 KiB while the reading thread
    answers the client's pings: every frame arrives whole, in order."""
    s = server()

    async def talk():
        async with websockets.connect(s.uri, ping_interval=None, max_size=MiB) as ws:
            await ws.send("burst 40 204800")
            pongs = []
            for i in range(40):
                if i % 4 == 0:
                    pongs.append(await ws.ping(str(i).encode()))
                msg = await ws.recv()
                assert msg == bytes([i & 0xff]) * 204800, i
            await asyncio.wait_for(asyncio.gather(*pongs), 10)

    run(talk())
    assert s.finish() == ["closed 1000"]


# ---- what a real client would not send: raw frames over a socket ----

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def raw_handshake(port, extra_headers="", version="13", key=KEY):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall((f"GET /attach HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n{extra_headers}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head.decode(errors="replace")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def recv_frame(sock):
    b0, b1 = recv_exact(sock, 2)
    assert b1 & 0x80 == 0, "server frames are never masked"
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(sock, 8))[0]
    return b0 & 0x0f, recv_exact(sock, n)


def masked(op, payload, fin=True):
    mask = os.urandom(4)
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return bytes([(0x80 if fin else 0) | op, 0x80 | len(payload)]) + mask + body


def test_handshake_accept(server):
    s = server()
    sock, head = raw_handshake(s.port)
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head  # RFC 6455's example
    sock.sendall(masked(0x8, struct.pack(">H", 1000)))
    assert recv_frame(sock) == (0x8, struct.pack(">H", 1000))
    sock.close()
    assert s.finish() == ["closed 1000"]


@pytest.mark.parametrize("version,key,status", [("8", KEY, 426), ("13", "c2hvcnQ=", 400)])
def test_handshake_refused(server, version, key, status):
    s = server()
    sock, head = raw_handshake(s.port, version=version, key=key)
    assert head.startswith(f"HTTP/1.1 {status} "), head
    if status == 426:
        assert "Sec-WebSocket-Version: 13\r\n" in head
    sock.close()
    assert s.finish()[0].startswith(f"refused {status}")


@pytest.mark.parametrize("frame,code,why", [
    (bytes([0x81, 0x05]) + b"hello", 1002, "not masked"),
    (masked(0x1, b"bad \xed\xa0\x80 surrogate"), 1007, "UTF-8"),
    (masked(0x1, b"\xc3", fin=False) + masked(0x0, b"("), 1007, "UTF-8"),
    (masked(0x9, b"p", fin=False), 1002, "fragmented control"),
    (bytes([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]) + b"mask", 1002, "most significant bit"),
], ids=["unmasked", "surrogate", "utf8-across-fragments", "fragmented-ping", "length-top-bit"])
def test_protocol_errors_close_with_code(server, frame, code, why):
    s = server()
    sock, head = raw_handshake(s.port)
    assert head.startswith("HTTP/1.1 101 ")
    sock.sendall(frame)
    op, payload = recv_frame(sock)
    assert op == 0x8
    assert struct.unpack(">H", payload[:2])[0] == code
    assert why in payload[2:].decode()
    sock.close()
    lines = s.finish()
    assert len(lines) == 1 and lines[0].startswith(f"error {code}: ") and why in lines[0], lines


def test_frames_right_behind_the_request(server):
    """Frames sent in the same packet as the upgrade request (the bytes an HTTP server
    reads past the request) are not lost."""
    s = server()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode() +
                 masked(0x1, b"early") + masked(0x8, struct.pack(">H", 1000)))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert recv_frame(sock) == (0x1, b"early")
    assert recv_frame(sock) == (0x8, struct.pack(">H", 1000))
    sock.close()
    assert s.finish() == ["closed 1000"]
