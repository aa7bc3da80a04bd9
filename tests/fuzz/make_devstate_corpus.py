#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_devstate: saved device states (the DEVS section of
src/kvm/devstate.c, the transport of virtio_mmio.c, each model's fields) for the fake
machine of tests/fuzz/fuzz_devstate.c, valid ones first and then broken ones. An input
is [u8 devices][u16 n][n bytes of guest RAM at RINGS][state]. The generated files are
committed too.
Run: /usr/bin/python3 tests/fuzz/make_devstate_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
RAM, RINGS, DATA = 4 << 20, 0x100000, 0x200000
RNG, BLK, CON, NET, DIRECT = 1, 2, 4, 8, 0x80
VERSION_1, INDIRECT = 1 << 32, 1 << 28
OFFERED = {4: 0, 2: (1 << 2) | (1 << 6) | (1 << 9) | (1 << 13) | (1 << 14), 3: 1 << 1, 1: (1 << 5) | (1 << 16)}
NQ = {4: 1, 2: 1, 3: 6, 1: 2}
RING_AT = {4: RINGS, 2: RINGS + 0x10000, 1: RINGS + 0x20000, 3: RINGS + 0x40000}


def tag(s):
    return struct.unpack("<I", s.encode())[0]


def section(name, body):
    return struct.pack("<II", tag(name), len(body)) + body


def queue(gpa, size=8, ready=1, last=0, used=0, broken=0, num=None):
    num = (size if ready else 0) if num is None else num
    return (struct.pack("<HBBBHHH", size, ready, 1, broken, num, last, used) +
            struct.pack("<QQQ", gpa, gpa + 0x4000, gpa + 0x8000))


def transport(dev_id, status=15, int_status=0, features=None, queues=None):
    feat = (OFFERED[dev_id] | VERSION_1 | INDIRECT) if features is None else features
    if queues is None:
        queues = [queue(RING_AT[dev_id] + 0x10000 * i) for i in range(NQ[dev_id])]
    return (struct.pack("<IIIIIIIII", 1, dev_id, NQ[dev_id], status, 1, 1, 0, int_status, 0) +
            struct.pack("<Q", feat) + b"".join(queues))


def uart():
    return bytes([0x02, 0x03, 0x0b, 0x42, 1, 0, 0xc7, 1, 1])


def console_body(open_=1, was_closed=0, ctrl=(), **kw):
    body = transport(3, **kw) + bytes([open_, was_closed]) + struct.pack("<I", len(ctrl))
    for m in ctrl:
        body += struct.pack("<I", len(m)) + m
    return body


def devs(devices, bodies=None, version=1):
    bodies = bodies or {}
    inner = struct.pack("<II", version, 3 | (devices & 15) << 2)
    inner += section("uart", bodies.get("uart", uart())) + section("rst ", bodies.get("rst ", b"\x02"))
    if devices & RNG:
        inner += section("vrng", bodies.get("vrng", transport(4, int_status=1)))
    if devices & BLK:
        inner += section("vblk", bodies.get("vblk", transport(2) + struct.pack("<QB", 1 << 20, 0)))
    if devices & CON:
        inner += section("vcon", bodies.get("vcon", console_body()))
    if devices & NET:
        inner += section("vnet", bodies.get("vnet", transport(1)))
    return section("DEVS", inner)


def seed(devices, state, ram=b""):
    return bytes([devices]) + struct.pack("<H", len(ram)) + ram + state


def console_held_rx():
    """The console's receive queue 1 with its rings at RINGS (the RAM the input sets):
    one writable buffer in DATA made available and popped (last_avail 0: a held chain
    handed back), popped again when loaded."""
    queues = [queue(RING_AT[3] + 0x10000 * i) for i in range(NQ[3])]
    queues[4] = queue(RINGS)
    ram = bytearray(0x4000 + 6)
    ram[0:16] = struct.pack("<QIHH", DATA, 256, 2, 0)  # desc 0: writable
    ram[0x4000:0x4006] = struct.pack("<HHH", 0, 1, 0)  # avail idx 1, ring[0] = 0
    return devs(CON, {"vcon": console_body(queues=queues)}), bytes(ram)


def main():
    d = os.path.join(HERE, "corpus", "fuzz_devstate")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    every = RNG | BLK | CON | NET
    ctrl = [struct.pack("<IHH", 1, 7, 1) + b"cocoon.agent", struct.pack("<IHH", 1, 6, 1)]
    valid = devs(every)
    seeds = {
        "valid-all": seed(every, valid),
        "valid-legacy-only": seed(0, devs(0)),
        "valid-console-pending": seed(CON, devs(CON, {"vcon": console_body(1, 1, ctrl, int_status=3)})),
        "valid-console-held-rx": seed(CON, *console_held_rx()),
        "valid-queue-off": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(0, size=3, ready=0)])})),
        "valid-broken-queue": seed(RNG, devs(RNG, {"vrng": transport(4, status=15 | 64,
                                                               queues=[queue(RINGS, broken=1)])})),
        "mmio-direct": seed(RNG | DIRECT, transport(4, int_status=1)),
        # refused
        "qsize-not-pow2": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(RINGS, size=3)])})),
        "qsize-too-big": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(RINGS, size=512)])})),
        "ring-outside-ram": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(RAM - 16)])})),
        "ring-wraps": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(2**64 - 0x10000)])})),
        "too-many-in-flight": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(RINGS, last=20)])})),
        "avail-behind-memory": seed(RNG, devs(RNG, {"vrng": transport(4, queues=[queue(RINGS, last=5, used=5)])})),
        "features-not-offered": seed(BLK, devs(BLK, {"vblk": transport(2, features=VERSION_1 | 1 << 5) +
                                                     struct.pack("<QB", 1 << 20, 0)})),
        "wrong-capacity": seed(BLK, devs(BLK, {"vblk": transport(2) + struct.pack("<QB", 2 << 20, 0)})),
        "set-mismatch": seed(every & ~NET, valid),
        "ctrl-too-long": seed(CON, devs(CON, {"vcon": console_body(ctrl=[b"x" * 40])})),
        "uart-bad-ier": seed(0, devs(0, {"uart": b"\xff" + uart()[1:]})),
        "truncated": seed(every, valid[:len(valid) // 2]),
        "version-2": seed(0, devs(0, version=2)),
        "mmio-direct-short": seed(RNG | DIRECT, transport(4)[:30]),
    }
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
