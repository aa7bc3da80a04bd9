#!/usr/bin/env python3
"""Benchmark: cocoon's layer merge (image_unpack_ext4 via unpack-tool) against
`umoci unpack` + `mke2fs -t ext4 -d` of the same OCI layout. Prints both and the ratio."""
import gzip, hashlib, io, json, os, shutil, subprocess, sys, tarfile, time

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work + "/oci/blobs/sha256")

def put(blob):
    h = hashlib.sha256(blob).hexdigest()
    open(f"{work}/oci/blobs/sha256/{h}", "wb").write(blob)
    return "sha256:" + h, len(blob)

def layer_from(srcs, extra=()):
    buf = io.BytesIO()
    def filt(ti):
        ti.uid = ti.gid = 0; ti.uname = ti.gname = "root"
        return ti
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for src, arc in srcs:
            t.add(src, arcname=arc, filter=filt)
        for ti, data in extra:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return put(gzip.compress(raw, compresslevel=6, mtime=0)), hashlib.sha256(raw).hexdigest()

def wh(name):
    ti = tarfile.TarInfo(name); ti.size = 0
    return ti, b""

layers = [
    layer_from([("/usr/lib/python3/dist-packages", "usr/lib/python3/dist-packages"), ("/bin/busybox", "bin/busybox")]),
    layer_from([("/usr/include", "usr/include")]),
    layer_from([("/usr/share/perl5", "usr/share/perl5")],
               [wh("usr/include/linux/.wh..wh..opq"), wh("usr/lib/python3/dist-packages/.wh.pip")]),
]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, d in layers]}}).encode()
cd, cs = put(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                             for (d, s), _ in layers]}).encode()
md, ms = put(man)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
          open(f"{work}/oci/index.json", "w"))
open(f"{work}/oci/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
total = sum(s for (d, s), _ in layers)
print(f"image: {len(layers)} gzip layers, {total/1e6:.1f} MB compressed")

def timed(cmd):
    subprocess.run(["sync"])
    t = time.monotonic(); subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL); return time.monotonic() - t

ours, theirs = [], []
for i in range(int(os.environ.get("RUNS", "3"))):
    for p in (f"{work}/ours.ext4", f"{work}/theirs.ext4"):
        if os.path.exists(p): os.unlink(p)
    shutil.rmtree(f"{work}/bundle", ignore_errors=True)
    ours.append(timed([tool, f"{work}/oci", f"{work}/ours.ext4"] + [d for (d, s), _ in layers]))
    t1 = timed(["umoci", "unpack", "--image", f"{work}/oci:bench", f"{work}/bundle"])
    used = int(subprocess.run(["du", "-sk", f"{work}/bundle/rootfs"], capture_output=True, text=True).stdout.split()[0])
    t2 = timed(["mke2fs", "-q", "-F", "-t", "ext4", "-d", f"{work}/bundle/rootfs", f"{work}/theirs.ext4",
                f"{used * 13 // 10 + 262144}k"])
    theirs.append(t1 + t2)
    print(f"run {i}: cocoon {ours[-1]:.2f} s   umoci unpack {t1:.2f} s + mke2fs -d {t2:.2f} s = {t1 + t2:.2f} s")
subprocess.run(["e2fsck", "-fn", f"{work}/ours.ext4"], check=True, stdout=subprocess.DEVNULL)
o, t = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
print(f"median: cocoon {o:.2f} s, umoci+mke2fs {t:.2f} s, ratio cocoon/umoci+mke2fs = {o / t:.2f}")
