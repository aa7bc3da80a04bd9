#!/usr/bin/env python3
"""Pull + unpack benchmark: `cocoon pull` of a multi-layer image from a loopback Debian
docker-registry (fetch, verify, merge the layers into the ext4 base, record it) against
`skopeo copy docker://... oci:DIR` + `umoci unpack --rootless` of the same image (fetch,
then extract to a directory tree), interleaved, fresh state for every run.

Usage: bench/pull_bench.py [--runs 5] [--bin build/bin] [--results bench/RESULTS.md]

The image (built once, in a temp dir): layer 1 busybox-static + /usr/lib/python3.11,
layer 2 /usr/lib/python3/dist-packages, layer 3 /usr/include/linux, layer 4 a few files
with a whiteout of layer 1's /usr/lib/python3.11/test; gzip layers, OCI manifest."""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import registry_fixture as rf  # noqa: E402  (the loopback registry of the tests)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

SECTION = "## Pull + unpack (cocoon pull vs skopeo copy + umoci unpack)"


def add_tree(t, src, arc):
    """Adds a host directory to a tar, regular files, dirs and symlinks only, root-owned."""
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(root, src)
        base = arc if rel == "." else os.path.join(arc, rel)
        info = tarfile.TarInfo(base)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        t.addfile(info)
        for name in sorted(files):
            p = os.path.join(root, name)
            info = tarfile.TarInfo(os.path.join(base, name))
            info.mtime = 1700000000
            if os.path.islink(p):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(p), 0o777
                t.addfile(info)
            elif os.path.isfile(p):
                st = os.stat(p)
                info.size, info.mode = st.st_size, st.st_mode & 0o7777
                with open(p, "rb") as f:
                    t.addfile(info, f)


def layer(blobs, fill):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        fill(t)
    raw = buf.getvalue()
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    d = put(blobs, gz)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(gz)}, \
        "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)


def put(blobs, data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def build_layout(path):
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def l1(t):
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = os.path.getsize(rf.BUSYBOX), 0o755
        with open(rf.BUSYBOX, "rb") as f:
            t.addfile(info, f)
        add_tree(t, "/usr/lib/python3.11", "usr/lib/python3.11")

    def l4(t):
        for name, data in [("etc/hostname", b"bench\n"), ("usr/lib/python3.11/.wh.test", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))

    layers = [layer(blobs, l1),
              layer(blobs, lambda t: add_tree(t, "/usr/lib/python3/dist-packages", "usr/lib/python3/dist-packages")),
              layer(blobs, lambda t: add_tree(t, "/usr/include/linux", "usr/include/linux")),
              layer(blobs, l4)]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/busybox", "sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [l[1] for l in layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(blobs, cfg), "size": len(cfg)},
                           "layers": [l[0] for l in layers]}).encode()
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(blobs, manifest),
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
    return [l[0]["size"] for l in layers], [l[2] for l in layers]


def timed(argv, env=None):
    t = time.monotonic()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {p.stderr[-1500:]}")
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--results", default=None, help="add or replace this benchmark's section in a markdown file")
    a = ap.parse_args()
    cocoon = os.path.join(os.path.abspath(a.bin), "cocoon")
    for tool in ("skopeo", "umoci", "/usr/bin/docker-registry"):
        if not shutil.which(tool):
            sys.exit(f"pull_bench: {tool} is missing (scripts/setup)")
    work = tempfile.mkdtemp(prefix="cocoon-pull-bench-")
    reg = None
    try:
        reg = rf.Registry(work)
        lay = os.path.join(work, "layout")
        compressed, raw = build_layout(lay)
        reg.push_layout(lay, "v1", "bench/py:v1")
        ref = f"{reg.host}/bench/py:v1"
        load_before = os.getloadavg()[0]
        ours, theirs = [], []
        for i in range(a.runs):
            home = os.path.join(work, f"home{i}")
            env = dict(os.environ, COCOON_HOME=home, COCOON_INSECURE_REGISTRIES=reg.host)
            ours.append(timed([cocoon, "pull", "--quiet", ref], env))
            shutil.rmtree(home)
            oci, bundle = os.path.join(work, f"oci{i}"), os.path.join(work, f"bundle{i}")
            t = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:v1"])
            t += timed(["umoci", "unpack", "--rootless", "--image", f"{oci}:v1", bundle])
            theirs.append(t)
            shutil.rmtree(oci)
            shutil.rmtree(bundle)
            print(f"run {i + 1}: cocoon pull {ours[-1]:.2f} s, skopeo+umoci {theirs[-1]:.2f} s", flush=True)
        mo, mt = statistics.median(ours), statistics.median(theirs)
        report = f"""{SECTION}

Medians of {a.runs} runs each, interleaved; fresh `COCOON_HOME` / OCI dir / bundle every run.

| measure | cocoon pull (s) | skopeo copy + umoci unpack (s) | cocoon / skopeo+umoci |
|---|---|---|---|
| pull + unpack | {mo:.2f} | {mt:.2f} | {mo / mt:.2f} |

- image: 4 gzip layers, {sum(compressed) / 1e6:.1f} MB compressed, {sum(raw) / 1e6:.1f} MB uncompressed
  (busybox + /usr/lib/python3.11; /usr/lib/python3/dist-packages; /usr/include/linux; a
  whiteout), OCI manifest, served by Debian's docker-registry on 127.0.0.1 over plain HTTP.
- cocoon: `cocoon pull --quiet REF` with `COCOON_INSECURE_REGISTRIES` set: fetch, digest
  checks, layer merge into the ext4 base (libext2fs), state row.
- skopeo+umoci: `skopeo copy --src-tls-verify=false docker://REF oci:DIR:v1` then
  `umoci unpack --rootless --image DIR:v1 BUNDLE` (extracts into a directory tree).
- spread (s): cocoon min {min(ours):.2f} / max {max(ours):.2f}, skopeo+umoci min {min(theirs):.2f} / max {max(theirs):.2f}

Command: `bench/pull_bench.py --runs {a.runs} --bin {os.path.relpath(os.path.abspath(a.bin), REPO)}`.
Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load_before:.2f} before,
{os.getloadavg()[0]:.2f} after (2 shared cores, so absolute numbers are noisy; the ratio less so).
"""
        print(report)
        if a.results:
            replace_section(a.results, SECTION, report.split("\n", 1)[1] if report.startswith(SECTION) else report)
    finally:
        if reg:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
