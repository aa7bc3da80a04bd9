#!/usr/bin/env python3
"""Writes the seed corpus of the whole-device fuzzers (fuzz_dev_console, fuzz_dev_net,
fuzz_dev_blk): programs for the operation interpreter of tests/support/devfuzz.c, each
a working exchange first and then an attack. The generated files are committed too.
Run: /usr/bin/python3 tests/fuzz/make_dev_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
RINGS, DATA, RAM = 0x100000, 0x200000, 4 << 20
# operations (devfuzz.c)
REG_W, REG_R, CHAIN, RAW, HOST_W, HOST_R, NOTIFY, CONFIG, POLL, REINIT, CLOSE = range(11)
QUEUE_SEL, QUEUE_NUM, QUEUE_READY, STATUS = 0x30, 0x38, 0x44, 0x70


def qsize(log2):  # the first byte: queue size 2 ** (1 + b % 8)
    return bytes([log2 - 1])


def reg_w(off, v):
    return bytes([REG_W, off // 4]) + struct.pack("<I", v)


def data_buf(off, length, writable):  # an address in the data area (choice 3: DATA + u16 * 16)
    return bytes([3]) + struct.pack("<H", off // 16) + struct.pack("<H", length) + bytes([writable])


def end_buf(back, length, writable):  # at the very end of RAM (choice 0)
    return bytes([0]) + struct.pack("<H", back) + struct.pack("<H", length) + bytes([writable])


def chain(q, *bufs):
    return bytes([CHAIN, q, len(bufs) - 1]) + b"".join(bufs)


def raw(off, payload):  # bytes at RINGS + off (off a multiple of 16)
    return bytes([RAW]) + struct.pack("<H", off // 16) + bytes([len(payload)]) + payload


def host_write(payload):
    return bytes([HOST_W, len(payload)]) + payload


def write_corpus(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for fname, data in seeds.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


def console():
    # control receive buffers, then DEVICE_READY and PORT_OPEN(1): RAW writes reach
    # RINGS..RINGS+1 MiB only, so the messages are placed at RINGS + 0x80000 and the
    # chains point there (address choice 2: RINGS + u16).
    ctrl_at = 0xc000  # past queue 0's rings, inside the 64 KiB that address choice 2 reaches
    msgs = struct.pack("<IHH", 0, 0, 1) + struct.pack("<IHH", 1, 6, 1)
    up = qsize(3)
    up += b"".join(chain(2, data_buf(0x1000 + 64 * i, 64, 1)) for i in range(4))
    up += raw(ctrl_at, msgs)
    for i in range(2):
        up += bytes([CHAIN, 3, 0, 2]) + struct.pack("<H", ctrl_at + 8 * i) + struct.pack("<H", 8) + b"\0"
    up += chain(4, data_buf(0, 256, 1))
    seeds = {
        "echo": up + host_write(b"hello") + chain(5, data_buf(0x3000, 32, 0)) + bytes([HOST_R]),
        # the review's finding: the held receive chain, then QueueReady=0 and a new QueueNum
        "resize-held-chain": up + reg_w(QUEUE_SEL, 4) + reg_w(QUEUE_READY, 0) + reg_w(QUEUE_NUM, 256) +
        host_write(b"after") + reg_w(QUEUE_NUM, 0) + reg_w(QUEUE_READY, 1) + host_write(b"x"),
        "reset-mid-traffic": up + reg_w(STATUS, 0) + host_write(b"zz") + bytes([REINIT, 3]) + up[1:],
        "buffer-at-ram-end": up + chain(4, end_buf(16, 256, 1)) + host_write(b"y" * 64),
        "host-gone": up + bytes([CLOSE, 0]) + chain(5, data_buf(0x3000, 32, 0)),
    }
    write_corpus("fuzz_dev_console", seeds)


def frame(length, fill=b"\xab"):
    return struct.pack(">I", length) + fill * min(length, 200)


def net():
    up = qsize(4) + b"".join(chain(0, data_buf(0x10000 + 2048 * i, 2048, 1)) for i in range(4))
    tx = raw(0xc000, bytes(12) + b"\xff" * 19)  # a virtio header and a frame, where choice 2 reaches
    seeds = {
        "both-ways": up + tx + bytes([CHAIN, 1, 0, 2]) + struct.pack("<HH", 0xc000, 31) + b"\0" +
        bytes([HOST_R]) + host_write(frame(64, b"\x01")[:68]),
        "lying-length": up + host_write(struct.pack(">I", 1 << 24) + b"x" * 8),
        "small-rx-buffer": qsize(2) + chain(0, data_buf(0, 20, 1)) + host_write(frame(100)[:104]),
        "resize-mid-traffic": up + reg_w(QUEUE_SEL, 0) + reg_w(QUEUE_READY, 0) + reg_w(QUEUE_NUM, 256) +
        host_write(frame(40)[:44]) + bytes([POLL]),
        "tx-too-long": up + bytes([CHAIN, 1, 0, 3]) + struct.pack("<HH", 0, 0x8100) + b"\0",
    }
    write_corpus("fuzz_dev_net", seeds)


def blk_req(kind, sector, length, status_writable=1):
    hdr = struct.pack("<IIQ", kind, 0, sector)
    return (raw(0xc000, hdr) + bytes([CHAIN, 0, 2, 2]) + struct.pack("<HH", 0xc000, 16) + b"\0" +
            data_buf(0x1000, length, 1 if kind == 0 else 0) + data_buf(0x3000, 1, status_writable))


def blk():
    up = qsize(4)
    seeds = {
        "read-write": up + blk_req(1, 3, 512) + blk_req(0, 3, 512) + blk_req(4, 0, 0),
        "out-of-range": up + blk_req(0, 1 << 40, 512) + blk_req(0, 2047, 1024),
        "discard": up + blk_req(11, 0, 16) + blk_req(13, 0, 16) + blk_req(8, 0, 20),
        "no-status": up + blk_req(0, 0, 512, status_writable=0),
        "read-only": b"\x83" + blk_req(1, 0, 512),
    }
    write_corpus("fuzz_dev_blk", seeds)


if __name__ == "__main__":
    console()
    net()
    blk()
