"""Image layers written as an image author (or an attacker) would: tar members built
with Python's tarfile (owners, modes, links, devices, PAX headers exactly as a test
says) and the tar bytes of a layer. Shared by the unpack and the image tests."""
import io
import tarfile

MTIME = 1700000000


def ti(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, linkname="", pax=None, dev=(0, 0)):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.uid, t.gid, t.linkname, t.mtime = kind, mode, uid, gid, linkname, MTIME
    t.devmajor, t.devminor = dev
    if pax:
        t.pax_headers = dict(pax)
    return t


def F(name, data=b"", **kw):
    return ti(name, **kw), data


def D(name, mode=0o755, **kw):
    return ti(name, tarfile.DIRTYPE, mode=mode, **kw), None


def L(name, target):
    return ti(name, tarfile.SYMTYPE, mode=0o777, linkname=target), None


def H(name, target):
    return ti(name, tarfile.LNKTYPE, linkname=target), None


def DEV(name, kind, mode, major, minor, gid=0):
    return ti(name, kind, mode=mode, gid=gid, dev=(major, minor)), None


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
