#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ws: client WebSocket streams, valid ones (RFC 6455's
masked "Hello", fragments with pings in between, every length form, closes) and one
seed per rule a client can break (unmasked, reserved bits, unknown opcodes, control
frame bounds, fragmentation order, 64-bit length with the top bit, oversize, bad UTF-8,
close codes and reasons), plus Sec-WebSocket-Key lines. Each file starts with the
target's mode byte (low 4 bits: message bound 16 << n bytes; all bits: how the stream
is cut). Run: python3 tests/fuzz/make_ws_corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_ws")
MASK = b"\x37\xfa\x21\x3d"
TEXT, BIN, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def frame(op, payload=b"", fin=True, rsv=0, masked=True, lenform=None):
    b0 = (0x80 if fin else 0) | rsv | op
    m = 0x80 if masked else 0
    n = len(payload)
    form = lenform or (7 if n < 126 else 16 if n <= 0xffff else 64)
    if form == 7:
        hdr = bytes([b0, m | n])
    elif form == 16:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    return hdr + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))


def close(code=None, reason=b""):
    return frame(CLOSE, b"" if code is None else struct.pack(">H", code) + reason)


SEEDS = {
    # valid streams
    "ok_rfc_hello": b"\x0f" + bytes([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
    "ok_fragments_pings": b"\x0f" + frame(TEXT, b"Hel", fin=False) + frame(PING, b"p1") +
    frame(CONT, b"lo ", fin=False) + frame(PONG) + frame(CONT, b"world") + close(1000, b"bye"),
    "ok_length_forms": b"\x0f" + frame(BIN, b"x" * 125) + frame(BIN, b"y" * 126) +
    frame(BIN, b"z" * 5, lenform=16) + frame(BIN, b"w" * 3, lenform=64) + frame(BIN, b"v" * 70000),
    "ok_utf8_split": b"\x0f" + frame(TEXT, b"caf\xc3", fin=False) + frame(CONT, b"", fin=False) +
    frame(CONT, b"\xa9 \xf0\x9f\x98\x80"),
    "ok_empty_messages": b"\x0f" + frame(TEXT) + frame(BIN) + frame(BIN, fin=False) + frame(CONT) + close(),
    "ok_close_4999": b"\x0f" + close(4999, "fin \u00e9".encode()),
    "ok_control_125": b"\x0f" + frame(PING, b"p" * 125) + frame(PONG, b"q" * 125),
    # broken rules
    "bad_unmasked": b"\x0f" + frame(TEXT, b"Hello", masked=False),
    "bad_unmasked_ping": b"\x0f" + frame(PING, masked=False),
    "bad_rsv1": b"\x0f" + frame(TEXT, b"a", rsv=0x40),
    "bad_rsv2": b"\x0f" + frame(TEXT, b"a", rsv=0x20),
    "bad_rsv3": b"\x0f" + frame(BIN, b"a", rsv=0x10),
    "bad_opcode_3": b"\x0f" + frame(3, b"a"),
    "bad_opcode_b": b"\x0f" + frame(0xb, b"a"),
    "bad_ping_fragmented": b"\x0f" + frame(PING, b"a", fin=False),
    "bad_ping_126": b"\x0f" + frame(PING, b"a" * 126),
    "bad_close_len16": b"\x0f" + frame(CLOSE, b"\x03\xe8", lenform=16),
    "bad_continuation_first": b"\x0f" + frame(CONT, b"a"),
    "bad_text_inside_message": b"\x0f" + frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
    "bad_len64_top_bit": b"\x0f" + bytes([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]) + MASK + b"abcd",
    "bad_len64_all_ones": b"\x0f" + bytes([0x82, 0xff]) + b"\xff" * 8 + MASK,
    "bad_len64_huge": b"\x0f" + bytes([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0]) + MASK,
    "bad_oversize": b"\x00" + frame(BIN, b"x" * 17),
    "bad_oversize_fragments": b"\x00" + frame(TEXT, b"x" * 10, fin=False) + frame(PING, b"p") +
    frame(CONT, b"y" * 7),
    "bad_utf8_overlong": b"\x0f" + frame(TEXT, b"\xc0\xaf"),
    "bad_utf8_surrogate": b"\x0f" + frame(TEXT, b"\xed\xa0\x80"),
    "bad_utf8_above_max": b"\x0f" + frame(TEXT, b"\xf4\x90\x80\x80"),
    "bad_utf8_cut_at_end": b"\x0f" + frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xe2\x82"),
    "bad_utf8_early": b"\x0f" + frame(TEXT, b"\xff and more", fin=False),
    "bad_close_1_byte": b"\x0f" + frame(CLOSE, b"\x03"),
    "bad_close_999": b"\x0f" + close(999),
    "bad_close_1005": b"\x0f" + close(1005),
    "bad_close_1006": b"\x0f" + close(1006),
    "bad_close_2999": b"\x0f" + close(2999),
    "bad_close_5000": b"\x0f" + close(5000),
    "bad_close_reason_utf8": b"\x0f" + close(1000, b"\xc3("),
    "bad_data_after_close": b"\x0f" + close(1000) + frame(TEXT, b"late"),
    "cut_header": b"\x0f" + frame(BIN, b"x" * 300)[:3],
    "cut_payload": b"\x0f" + frame(BIN, b"x" * 300)[:100],
    "many_pings": b"\x0f" + frame(PING, b"z" * 100) * 200,
    # Sec-WebSocket-Key lines (the first line of an input)
    "key_rfc": b"dGhlIHNhbXBsZSBub25jZQ==\n",
    "key_spaces": b" \tdGhlIHNhbXBsZSBub25jZQ== \n",
    "key_short": b"c2hvcnQ=\n",
    "key_bad_char": b"dGhlIHNhbX*sZSBub25jZQ==\n",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
