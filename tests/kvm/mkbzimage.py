#!/usr/bin/env python3
"""Packages a flat 64-bit micro-guest (linked at 0x100200) as a fake bzImage: boot
sector + one setup sector carrying a Linux setup header, then the protected-mode
"kernel": 0x200 bytes where startup_32 would be, then the 64-bit payload.
--bad FIELD writes a malformed header (version, no64, sects, magic, lowload)."""
import struct
import sys


def main():
    args = sys.argv[1:]
    bad = None
    if args[:1] == ["--bad"]:
        bad, args = args[1], args[2:]
    payload, out = args
    body = b"\0" * 0x200 + open(payload, "rb").read()
    setup = bytearray(1024)  # boot sector + setup_sects = 1
    setup[0x1f1] = 1 if bad != "sects" else 200
    struct.pack_into("<H", setup, 0x1fe, 0xAA55)
    setup[0x200], setup[0x201] = 0xEB, 0x66  # jmp: header ends at 0x268
    setup[0x202:0x206] = b"HdrS" if bad != "magic" else b"HdrX"
    struct.pack_into("<H", setup, 0x206, 0x020F if bad != "version" else 0x0206)
    setup[0x211] = 0x01 if bad != "lowload" else 0x00  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, 0x37FFFFFF)  # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, 0x200000)  # kernel_alignment
    setup[0x234] = 1  # relocatable
    struct.pack_into("<H", setup, 0x236, 0x03 if bad != "no64" else 0x02)  # XLF_KERNEL_64 | ABOVE_4G
    struct.pack_into("<I", setup, 0x238, 2047)  # cmdline_size
    struct.pack_into("<I", setup, 0x260, len(body) + 0x10000)  # init_size
    with open(out, "wb") as f:
        f.write(bytes(setup) + body)


if __name__ == "__main__":
    main()
