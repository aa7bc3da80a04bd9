#!/usr/bin/env python3
# Packs a staging directory into a "newc" cpio for the nested lane's outer VM (owner
# 0, mtime 0, symlinks kept) plus a /dev/console node, without needing root.
# Usage: mkcpio.py DIR OUT
import os
import stat
import sys


def entry(ino, name, mode, data=b"", nlink=1, rdev=(0, 0)):
    name_bytes = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0]
    out = b"070701" + b"".join(b"%08X" % f for f in fields) + name_bytes
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def main(src, out):
    parts, ino = [], 1
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                parts.append(entry(ino, rel, stat.S_IFLNK | 0o777, os.readlink(path).encode()))
            elif stat.S_ISDIR(st.st_mode):
                parts.append(entry(ino, rel, stat.S_IFDIR | 0o755, nlink=2))
            else:
                with open(path, "rb") as f:
                    parts.append(entry(ino, rel, stat.S_IFREG | (st.st_mode & 0o777), f.read()))
            ino += 1
    parts.append(entry(ino, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    parts.append(entry(0, "TRAILER!!!", 0))
    blob = b"".join(parts)
    with open(out, "wb") as f:
        f.write(blob + b"\0" * (-len(blob) % 512))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mkcpio.py DIR OUT")
    main(sys.argv[1], sys.argv[2])
