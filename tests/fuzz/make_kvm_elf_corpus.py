#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_kvm_elf: a small PVH kernel as the loader takes it (two
load segments, one with a bss, the Xen PHYS32_ENTRY note), and broken ones (cut headers,
too many or overlong program headers, segments past the file, below 1 MiB, past guest RAM
or wrapping around, a bss of gigabytes, notes with lying sizes, a bzImage header cut short,
empty input). Run: python3 tests/fuzz/make_kvm_elf_corpus.py"""
import hashlib
import os
import shutil
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_kvm_elf")
PT_LOAD, PT_NOTE = 1, 4


def ehdr(phnum, phoff=64, phentsize=56, machine=62, cls=2):
    ident = b"\x7fELF" + bytes([cls, 1, 1]) + bytes(9)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x1000000, phoff, 0, 0, 64, phentsize, phnum,
                               0, 0, 0)


def phdr(ptype, off, paddr, filesz, memsz):
    return struct.pack("<IIQQQQQQ", ptype, 5, off, paddr, paddr, filesz, memsz, 0x1000)


def note(entry=0x1000040, namesz=4, descsz=4, ntype=18):
    return struct.pack("<III", namesz, descsz, ntype) + b"Xen\0" + struct.pack("<I", entry)


def kernel(phs, size=0x6000, note_at=0x800, note_bytes=None):
    f = bytearray((i * 13 + 5) & 255 for i in range(size))
    head = ehdr(len(phs)) + b"".join(phdr(*p) for p in phs)
    f[:len(head)] = head
    nb = note_bytes if note_bytes is not None else note()
    f[note_at:note_at + len(nb)] = nb
    return bytes(f)


GOOD = [(PT_LOAD, 0x1000, 0x1000000, 0x2345, 0x2345), (PT_LOAD, 0x4000, 0x1200000, 0x1800, 0x6000),
        (PT_NOTE, 0x800, 0, 20, 20)]

SEEDS = [
    kernel(GOOD),
    kernel(GOOD)[:40],                                                     # header cut
    kernel(GOOD)[:64 + 56],                                                # program headers cut
    ehdr(0xffff) + bytes(64),                                              # 65535 program headers
    kernel([(PT_LOAD, 0x1000, 0x1000000, 0x100000, 0x100000)] + GOOD[2:]),  # segment past the file
    kernel([(PT_LOAD, 0x1000, 0x1000, 0x100, 0x100)] + GOOD[2:]),          # below 1 MiB
    kernel([(PT_LOAD, 0x1000, 0x3ff0000, 0x100, 0x100000)] + GOOD[2:]),    # past 64 MiB of RAM
    kernel([(PT_LOAD, 0x1000, 0xfffffffffffff000, 0x100, 0x2000)] + GOOD[2:]),  # wraps around
    kernel([(PT_LOAD, 0x1000, 0x1000000, 0x100, 0x100000000)] + GOOD[2:]),  # a 4 GiB bss
    kernel([(PT_LOAD, 0xffffffffffffff00, 0x1000000, 0x200, 0x200)] + GOOD[2:]),  # offset wraps
    kernel(GOOD, note_bytes=note(namesz=0xffffffff)),                      # note name size lies
    kernel(GOOD, note_bytes=note(descsz=0xfffffff0)),                      # note desc size lies
    kernel(GOOD[:2] + [(PT_NOTE, 0x5ff0, 0, 0x1000, 0x1000)]),             # note past the file
    kernel(GOOD[:2]),                                                      # no entry note
    kernel(GOOD, note_bytes=note(entry=0)),                                # entry 0
    ehdr(3, phentsize=32) + bytes(200),                                    # wrong phentsize
    ehdr(3, cls=1) + bytes(200),                                           # 32-bit ELF
    ehdr(3, phoff=0xfffffffffffffff0) + bytes(200),                        # phoff wraps
    bytes(0x1f1) + b"\x01" + bytes(0x200 - 0x1f2) + b"HdrS",               # a bzImage header, cut
    b"",
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for b in SEEDS:
        with open(os.path.join(OUT, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
