"""Small busybox images for the crash and concurrency suites: served by the Python
fake registry (registry_fixture.FakeRegistry) for `cocoon pull`, or written as a
`docker save` tarball for `cocoon load`. Each boots into a box where `sh` works."""
import gzip
import hashlib
import io
import json
import os
import tarfile

from layers import D, F, L, tar_bytes

BUSYBOX = "/bin/busybox"
APPLETS = ["cat", "echo", "ls", "sync", "sleep", "true", "dd", "head", "sha256sum", "mkdir", "rm", "wc", "seq"]


def available():
    return os.path.exists(BUSYBOX)


def _layers(tag, big=0):
    """Two layers: busybox, then a file naming the image (and `big` bytes of data, so
    a pull or load spends a moment in each blob)."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    base = [D("bin"), F("bin/busybox", bb, mode=0o755), L("bin/sh", "busybox")]
    base += [L("bin/" + a, "busybox") for a in APPLETS]
    base += [D("tmp", mode=0o1777), D("root", mode=0o700), D("etc"), F("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]
    top = [D("etc"), F("etc/image", tag.encode() + b"\n")]
    if big:
        top.append(F("etc/filler", hashlib.sha256(tag.encode()).digest() * (big // 32)))
    return [tar_bytes(base), tar_bytes(top)]


def _config(tag, raws, extra=None):
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "config": {"Env": ["PATH=/bin"], "Cmd": ["cat", "/etc/image"], **(extra or {})},
                       "rootfs": {"type": "layers",
                                  "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]}},
                      sort_keys=True).encode()


def registry_image(tag, big=0):
    """(manifest bytes, {digest: blob}) for FakeRegistry.repos."""
    raws = _layers(tag, big)
    layers = [gzip.compress(r, mtime=0) for r in raws]
    config = _config(tag, raws)

    def desc(mt, data):
        return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", l) for l in layers]}).encode()
    blobs = {"sha256:" + hashlib.sha256(d).hexdigest(): d for d in [config] + layers}
    return manifest, blobs


def serve(fake, repo, tag, big=0):
    """Adds repo:tag to a FakeRegistry; returns the reference to pull."""
    manifest, blobs = registry_image(f"{repo}:{tag}", big)
    r = fake.repos.setdefault(repo, {"tags": {}, "blobs": {}})
    r["tags"][tag] = manifest
    r["blobs"].update(blobs)
    return f"{fake.host}/{repo}:{tag}"


def save_tarball(path, name, big=0, config=None, layers=None):
    """A `docker save` tarball of a busybox image tagged name (e.g. "crash/load:1");
    config: more fields of the image's config (e.g. {"Healthcheck": {...}}); layers:
    more layers on top (lists of layers.D/F/L entries)."""
    raws = _layers(name, big) + [tar_bytes(entries) for entries in (layers or [])]
    config = _config(name, raws, config)
    members = [("config.json", config)] + [(f"l{i}/layer.tar", r) for i, r in enumerate(raws)]
    members.append(("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [name],
                                                  "Layers": [f"l{i}/layer.tar" for i in range(len(raws))]}]).encode()))
    with tarfile.open(path, "w") as t:
        for n, data in members:
            info = tarfile.TarInfo(n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path
