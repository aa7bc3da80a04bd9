#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_qcow2: one small valid qcow2 image built by hand
(header, refcount table and block, L1, L2, one data cluster) and variants of it with
one field broken each, plus a few valid oddities (v2, 1-bit refcounts, 512-byte
clusters, zero-flagged clusters). Run: python3 tests/fuzz/make_qcow2_corpus.py"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_qcow2")
COPIED = 1 << 63


def image(cb=12, size=1 << 20, version=3, order=4, l2e=None, l1e=None, hdr=None,
          backing=None, bfmt=None, extra_ext=b""):
    """Layout: header | refcount table | refcount block | L1 | L2 | data."""
    cs = 1 << cb
    c = [bytearray(cs) for _ in range(6)]
    l1_size = -(-size // (cs * (cs // 8)))
    h = c[0]
    struct.pack_into(">IIQIIQIIQQIIQ", h, 0, 0x514649FB, version, 0, 0, cb, size, 0,
                     l1_size, 3 * cs, 1 * cs, 1, 0, 0)
    p = 72
    if version == 3:
        struct.pack_into(">QQQII", h, 72, 0, 0, 0, order, 112)
        p = 112
        if bfmt:
            struct.pack_into(">II", h, p, 0xE2792ACA, len(bfmt))
            h[p + 8:p + 8 + len(bfmt)] = bfmt
            p += 8 + ((len(bfmt) + 7) & ~7)
        h[p:p + len(extra_ext)] = extra_ext
        p += len(extra_ext) + 8
    if backing:
        struct.pack_into(">QI", h, 8, p, len(backing))
        h[p:p + len(backing)] = backing
    for k, v in (hdr or {}).items():  # offset -> (fmt, value)
        struct.pack_into(v[0], h, k, v[1])
    struct.pack_into(">Q", c[1], 0, 2 * cs)
    bits = 1 << order
    for i in range(6):  # refcount 1 for clusters 0..5
        bit = i * bits
        if bits >= 8:
            c[2][bit // 8 + bits // 8 - 1] = 1
        else:
            c[2][bit // 8] |= 1 << (bit % 8)
    struct.pack_into(">Q", c[3], 0, l1e if l1e is not None else (4 * cs) | COPIED)
    struct.pack_into(">Q", c[4], 0, l2e if l2e is not None else (5 * cs) | COPIED)
    if version == 3:
        struct.pack_into(">Q", c[4], 8, 1)  # guest cluster 1: zero flag, unallocated
    c[5][:] = bytes((i * 7) & 0xFF for i in range(cs))
    return b"".join(bytes(x) for x in c)


def main():
    os.makedirs(OUT, exist_ok=True)
    cs = 1 << 12
    seeds = {
        "valid_v3": image(),
        "valid_v2": image(version=2),
        "valid_refcount1bit": image(order=0),
        "valid_512": image(cb=9, size=256 << 10),
        "valid_backing_missing": image(backing=b"does-not-exist.raw", bfmt=b"raw"),
        "bad_magic": b"QFI\xfa" + image()[4:],
        "cluster_bits_30": image(hdr={20: (">I", 30)}),
        "l1_beyond_eof": image(hdr={40: (">Q", 1 << 40)}),
        "l1_size_huge": image(hdr={36: (">I", 0x7FFFFFFF)}),
        "unknown_incompat": image(hdr={72: (">Q", 1 << 20)}),
        "dirty_bit": image(hdr={72: (">Q", 1)}),
        "refcount_order_7": image(hdr={96: (">I", 7)}),
        "header_length_odd": image(hdr={100: (">I", 109)}),
        "reftable_unaligned": image(hdr={48: (">Q", cs + 8)}),
        "l1_entry_unaligned": image(l1e=(4 * cs + 512) | COPIED),
        "l1_entry_reserved": image(l1e=(4 * cs) | COPIED | 2),
        "l2_entry_past_eof": image(l2e=(1 << 40) | COPIED),
        "l2_entry_on_header": image(l2e=0 | COPIED),
        "l2_entry_compressed": image(l2e=(1 << 62) | 5 * cs),
        "l2_entry_on_reftable": image(l2e=cs | COPIED),
        "ext_overflow": image(extra_ext=struct.pack(">II", 0x12345678, 0xFFFFFFF0)),
        "backing_missing_qcow2": image(backing=b"fuzz-qcow2", bfmt=b"qcow2"),
        "backing_name_outside": image(hdr={8: (">Q", cs - 4), 16: (">I", 100)}),
        "truncated_header": image()[:80],
    }
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
