"""A small RFC 6455 WebSocket client (version 13, no extensions) for `cocoon serve`'s
attach routes, over a socket the remote transport already connected (unix, TCP or TLS).
Only what the attach frames need: binary and text messages, ping/pong and close."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from typing import Dict, Optional, Tuple

from .errors import ProtocolError

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MESSAGE_MAX = 16 << 20  # a message from the server (its frames carry at most 16 KiB of output)
HEADERS_MAX = 64 << 10

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed the WebSocket (a close frame or the end of the connection)."""


def handshake(sock: socket.socket, path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes, object]:
    """Sends the upgrade request. Returns (status, headers, body, reader): the body of a
    refusal (status other than 101), the buffered reader of the frames after a 101."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13"] + [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    reader = sock.makefile("rb")
    status_line = reader.readline(HEADERS_MAX)
    parts = status_line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError(f"GET {path}: not an HTTP answer: {status_line[:80]!r}")
    status, got, size = int(parts[1]), {}, 0
    while True:
        line = reader.readline(HEADERS_MAX)
        size += len(line)
        if not line or size > HEADERS_MAX:
            raise ProtocolError(f"GET {path}: the answer's headers were cut or too long")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        got[name.strip().lower()] = value.strip()
    if status != 101:
        n = min(int(got.get("content-length", "0") or 0), HEADERS_MAX)
        return status, got, reader.read(n) if n else b"", reader
    want = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
    if got.get("sec-websocket-accept") != want:
        raise ProtocolError(f"GET {path}: the server's Sec-WebSocket-Accept does not match our key")
    return status, got, b"", reader


class WebSocket:
    """One open WebSocket: recv() from one thread, send_*() from any."""

    def __init__(self, sock: socket.socket, reader):
        self.sock = sock
        self.reader = reader
        self._send_lock = threading.Lock()
        self.close_sent = False

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        with self._send_lock:
            if self.close_sent:
                raise Closed("the WebSocket is closed")
            if opcode == OP_CLOSE:
                self.close_sent = True
            try:
                self.sock.sendall(head + mask + masked)
            except OSError as e:
                raise Closed(f"the connection broke: {e}") from None

    def send_binary(self, data: bytes) -> None:
        self._frame(OP_BINARY, data)

    def send_text(self, text: str) -> None:
        self._frame(OP_TEXT, text.encode())

    def send_close(self, code: int = 1000) -> None:
        try:
            self._frame(OP_CLOSE, struct.pack("!H", code))
        except Closed:
            pass

    def _exact(self, n: int) -> bytes:
        data = self.reader.read(n) if n else b""
        if len(data) != n:
            raise Closed("the connection ended")
        return data

    def recv(self) -> Tuple[int, bytes]:
        """The next data message (OP_TEXT or OP_BINARY, payload); answers pings; raises
        Closed at a close frame or the end of the connection."""
        opcode, parts, total = None, [], 0
        while True:
            b0, b1 = self._exact(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            if n > MESSAGE_MAX or (op >= 0x8 and n > 125):
                raise ProtocolError(f"a WebSocket frame of {n} bytes from the server (at most {MESSAGE_MAX})")
            mask = self._exact(4) if b1 & 0x80 else None
            data = self._exact(n)
            if mask:
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
            if op == OP_PING:
                try:
                    self._frame(OP_PONG, data)
                except Closed:
                    pass
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.send_close()
                raise Closed("the server closed the WebSocket")
            if op not in (OP_CONT, OP_TEXT, OP_BINARY) or (op == OP_CONT) != (opcode is not None):
                raise ProtocolError(f"an unexpected WebSocket frame (opcode {op}) from the server")
            if opcode is None:
                opcode = op
            parts.append(data)
            total += n
            if total > MESSAGE_MAX:
                raise ProtocolError(f"a WebSocket message above {MESSAGE_MAX} bytes from the server")
            if b0 & 0x80:
                return opcode, b"".join(parts)

    def close(self) -> None:
        for f in (self.reader.close, lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                f()
            except OSError:
                pass


