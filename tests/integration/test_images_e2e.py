"""Images end to end: `cocoon pull` from a loopback Debian docker-registry, boxes from the
pulled images on real microVMs, and the image commands (images, rmi, image prune,
image inspect, load).

The test images are written here layer by layer (Python tarfile, so whiteouts, opaque
directories, hard links, setuid bits and ownership are exactly what the test says), laid
out as an OCI layout and pushed with skopeo. What the guest sees is compared with what
the layers say."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

import registry_fixture as rf
from layers import D, F, H, L, tar_bytes  # noqa: F401
from conftest import decode

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("docker-registry", "skopeo")) or not os.path.exists(rf.BUSYBOX),
    reason="docker-registry, skopeo and busybox-static are needed (scripts/setup installs them)")

APPLETS = ["ls", "stat", "cat", "id", "pwd", "env", "echo", "readlink", "test", "touch", "sync", "sleep", "true",
           "find", "sort", "uname", "printf", "wc", "tr", "mkdir", "rm", "grep"]
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:5678:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napps:x:5678:\n"
CONFIG = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello-from-image", "SHADOWED=image"],
          "Cmd": ["sh", "-c", "echo default-cmd; id -u; id -g; pwd; echo $GREETING"],
          "WorkingDir": "/app", "User": "1234:5678"}


# ---- building the images ----

class Layout:
    """A hand-written OCI layout: blobs, manifests, an index with named refs."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.refs = []

    def blob(self, data, media_type):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + h, "size": len(data)}

    def layer(self, members, compress=True):
        raw = tar_bytes(members)
        if compress:
            d = self.blob(gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
        else:
            d = self.blob(raw, "application/vnd.oci.image.layer.v1.tar")
        d["diff_id"] = "sha256:" + hashlib.sha256(raw).hexdigest()
        return d

    def image(self, layers, config, arch="amd64"):
        cfg = {"architecture": arch, "os": "linux", "config": config,
               "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]}}
        c = self.blob(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
        m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c,
             "layers": [{k: v for k, v in l.items() if k != "diff_id"} for l in layers]}
        return self.blob(json.dumps(m).encode(), "application/vnd.oci.image.manifest.v1+json")

    def index(self, entries):
        """entries: [(manifest descriptor, arch)]"""
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [dict(m, platform={"architecture": a, "os": "linux"}) for m, a in entries]}
        return self.blob(json.dumps(body).encode(), "application/vnd.oci.image.index.v1+json")

    def tag(self, desc, name):
        self.refs.append(dict(desc, annotations={"org.opencontainers.image.ref.name": name}))
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.refs}, f)


def base_layer(lay):
    with open(rf.BUSYBOX, "rb") as f:
        bb = f.read()
    members = [D("./"), D("bin"), F("bin/busybox", bb, mode=0o755), L("bin/sh", "busybox")]
    members += [L("bin/" + a, "busybox") for a in APPLETS]
    members += [D("etc"), F("etc/passwd", PASSWD), F("etc/group", GROUP), D("root", mode=0o700),
                D("tmp", mode=0o1777), D("home"), D("home/app", mode=0o750, uid=1234, gid=5678)]
    return lay.layer(members)


def tree_layers(lay, base):
    l2 = lay.layer([
        D("data"), F("data/keep", b"keep\n"), F("data/gone", b"gone\n"),
        D("opq"), F("opq/old1", b"old\n"), D("opq/sub"), F("opq/sub/old2", b"old\n"),
        D("usr"), D("usr/bin"), F("usr/bin/owned", b"mine\n", mode=0o640, uid=1234, gid=5678),
    ])
    l3 = lay.layer([
        F("data/.wh.gone"),
        D("opq"), F("opq/.wh..wh..opq"), F("opq/new", b"new\n"),
        D("usr"), D("usr/bin"), F("usr/bin/su", b"#!/bin/sh\necho su\n", mode=0o4755),
        F("usr/bin/tool", b"tool\n", mode=0o755), H("usr/bin/tool-hl", "usr/bin/tool"),
        D("usr/local"), D("usr/local/bin"), L("usr/local/bin/a", "b"), L("usr/local/bin/b", "c"),
        L("usr/local/bin/c", "/bin/busybox"),
    ], compress=False)
    l4 = lay.layer([D("app", uid=1234, gid=5678), F("app/hello.txt", b"hello\n", uid=1234, gid=5678)])
    return [base, l2, l3, l4]


ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def fetch_manifest(reg, repo, tag):
    import urllib.request
    req = urllib.request.Request(f"http://{reg.host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read(), r.headers.get("Docker-Content-Digest")


def manifest_digest(reg, repo, tag):
    body, _ = fetch_manifest(reg, repo, tag)
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """test/tree:v1 (4 layers), test/other:v1 (another image), test/multi:latest
    (amd64 + arm64 index), pushed to a loopback registry."""
    work = str(tmp_path_factory.mktemp("img-e2e"))
    reg = rf.Registry(work)
    try:
        lay = Layout(os.path.join(work, "layout"))
        base = base_layer(lay)
        tree = lay.image(tree_layers(lay, base), CONFIG)
        lay.tag(tree, "tree")
        other = lay.image([base, lay.layer([F("etc/other", b"other\n")])], {"Cmd": ["sh"]})
        lay.tag(other, "other")
        amd = lay.image([base, lay.layer([F("etc/arch", b"amd64\n")])], {"Cmd": ["cat", "/etc/arch"]})
        arm = lay.image([lay.layer([F("etc/arch", b"arm64\n")])], {"Cmd": ["cat", "/etc/arch"]}, arch="arm64")
        lay.tag(lay.index([(arm, "arm64"), (amd, "amd64")]), "multi")
        reg.push_layout(lay.path, "tree", "test/tree:v1")
        reg.push_layout(lay.path, "other", "test/other:v1")
        reg.push_layout(lay.path, "multi", "test/multi:latest", all_images=True)
        # skopeo may rewrite manifests on push: ask the registry what it holds
        reg.tree_digest = manifest_digest(reg, "test/tree", "v1")
        idx = json.loads(fetch_manifest(reg, "test/multi", "latest")[0])
        reg.amd_digest = [m["digest"] for m in idx["manifests"] if m["platform"]["architecture"] == "amd64"][0]
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def ivm(vm, registry):
    """The vm fixture with the registry marked insecure for every cocoon call."""
    vm.env["COCOON_INSECURE_REGISTRIES"] = registry.host
    vm.reg = registry
    return vm


def ref(reg, name):
    return f"{reg.host}/{name}"


def images_json(c):
    return json.loads(decode(c.run("images", "--json", check=0).stdout))


def store_files(c):
    out = {}
    for sub in ("images/bases", "images/blobs/sha256"):
        d = os.path.join(c.home, sub)
        out[sub] = sorted(os.listdir(d)) if os.path.isdir(d) else []
    return out


# ---- tests ----

GUEST_TREE = r"""
for p in /data/keep /data/gone /usr/bin/su /usr/bin/tool /usr/bin/tool-hl /usr/bin/owned /home/app /app/hello.txt; do
  if [ -e $p ]; then stat -c '%n %a %u %g %h' $p; else echo "$p absent"; fi
done
echo "opq: $(ls -A /opq | sort | tr '\n' ' ')"
echo "links: $(readlink /usr/local/bin/a) $(readlink /usr/local/bin/b) $(readlink /usr/local/bin/c) $(readlink -f /usr/local/bin/a)"
echo "inodes: $(stat -c %i /usr/bin/tool) $(stat -c %i /usr/bin/tool-hl)"
echo "whoami: $(id -u):$(id -g) cwd=$(pwd) greeting=$GREETING shadowed=$SHADOWED"
cat /data/keep /opq/new
"""


def test_pull_run_tree_and_config(ivm):
    r = ivm.run("pull", ref(ivm.reg, "test/tree:v1"), check=0)
    out = decode(r.stdout)
    assert f"{ivm.reg.host}/test/tree:v1" in out and ivm.reg.tree_digest in out, out
    assert decode(r.stderr) == ""  # not a terminal: quiet

    r = ivm.run("run", "--rm", "--env", "SHADOWED=cli", ref(ivm.reg, "test/tree:v1"), "--", "sh", "-c", GUEST_TREE,
                check=0)
    lines = decode(r.stdout).splitlines()
    assert lines[:8] == [
        "/data/keep 644 0 0 1",
        "/data/gone absent",
        "/usr/bin/su 4755 0 0 1",
        "/usr/bin/tool 755 0 0 2",
        "/usr/bin/tool-hl 755 0 0 2",
        "/usr/bin/owned 640 1234 5678 1",
        "/home/app 750 1234 5678 2",
        "/app/hello.txt 644 1234 5678 1",
    ], lines
    assert lines[8] == "opq: new ", lines
    assert lines[9] == "links: b c /bin/busybox /bin/busybox", lines
    ino = lines[10].split()[1:]
    assert ino[0] == ino[1], lines
    # the image config: User, WorkingDir, Env (with --env winning over the image's value)
    assert lines[11] == "whoami: 1234:5678 cwd=/app greeting=hello-from-image shadowed=cli", lines
    assert lines[12:] == ["keep", "new"], lines


def test_default_cmd_overrides_images_and_second_pull(ivm):
    name = ref(ivm.reg, "test/tree:v1")
    # auto-pull on run, then the image's Cmd as the default command
    r = ivm.run("run", "--rm", name, check=0)
    assert decode(r.stdout).splitlines() == ["default-cmd", "1234", "5678", "/app", "hello-from-image"]
    assert "Unable to find image" in decode(r.stderr)
    # explicit options win over the config
    r = ivm.run("run", "--rm", "--user", "0", "--workdir", "/data", name, "sh", "-c", "id -u; pwd", check=0)
    assert decode(r.stdout).split() == ["0", "/data"]
    r = ivm.run("run", "--rm", "--entrypoint", "echo", name, "via", "entrypoint", check=0)
    assert decode(r.stdout).strip() == "via entrypoint"

    imgs = images_json(ivm)
    assert [(i["name"], i["id"]) for i in imgs] == [(name, ivm.reg.tree_digest)]
    table = decode(ivm.run("images", check=0).stdout).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "ID", "SIZE", "CREATED"]
    assert table[1].split()[:3] == [f"{ivm.reg.host}/test/tree", "v1", ivm.reg.tree_digest[7:19]]

    before = ivm.reg.blob_gets()
    ivm.run("pull", name, check=0)
    assert ivm.reg.blob_gets() == before, "a second pull fetched blobs again"
    info = json.loads(decode(ivm.run("image", "inspect", name, check=0).stdout))[0]
    assert info["config"]["config"]["WorkingDir"] == "/app"
    assert info["base_path"].endswith(ivm.reg.tree_digest[7:] + ".ext4")


def test_rmi_refused_while_used_and_prune(ivm):
    tree, other = ref(ivm.reg, "test/tree:v1"), ref(ivm.reg, "test/other:v1")
    ivm.run("pull", tree, check=0)
    ivm.run("pull", other, check=0)
    box = decode(ivm.run("create", "--name", "user", tree, check=0).stdout).strip()
    ls = decode(ivm.run("ls", "-a", check=0).stdout)
    assert f"{ivm.reg.host}/test/tree:v1" in ls, ls

    r = ivm.run("rmi", tree)
    assert r.returncode != 0
    err = decode(r.stderr)
    assert "used by box" in err and box in err and "remove the box first" in err, err
    assert len(images_json(ivm)) == 2

    # prune: the unused image goes with its base and its own layer; the used one stays
    out = decode(ivm.run("image", "prune", check=0).stdout)
    assert "Deleted images: 1" in out, out
    names = [i["name"] for i in images_json(ivm)]
    assert names == [tree]
    files = store_files(ivm)
    assert files["images/bases"] == [ivm.reg.tree_digest[7:] + ".ext4"], files

    ivm.run("rm", "user", check=0)
    r = ivm.run("rmi", tree, check=0)
    assert ivm.reg.tree_digest in decode(r.stdout)
    assert images_json(ivm) == []
    files = store_files(ivm)
    assert files == {"images/bases": [], "images/blobs/sha256": []}, files


def test_load_docker_archive_and_run(ivm, tmp_path):
    tarball = str(tmp_path / "saved.tar")
    rf.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref(ivm.reg, 'test/tree:v1')}",
            f"docker-archive:{tarball}:test/saved:v2"])
    out = decode(ivm.run("load", tarball, check=0).stdout)
    assert "Loaded image: docker.io/test/saved:v2" in out, out
    r = ivm.run("run", "--rm", "test/saved:v2", "--", "sh", "-c", "cat /data/keep; ls -A /opq; id -u", check=0)
    assert decode(r.stdout).split() == ["keep", "new", "1234"]


def test_multiarch_index_runs_amd64(ivm):
    name = ref(ivm.reg, "test/multi")
    r = ivm.run("run", "--rm", name, check=0)
    assert decode(r.stdout).strip() == "amd64"
    assert [i["id"] for i in images_json(ivm)] == [ivm.reg.amd_digest]


def test_missing_image_clear_error_nothing_left(ivm):
    name = ref(ivm.reg, "test/nosuch:v1")
    r = ivm.run("pull", name)
    assert r.returncode != 0
    err = decode(r.stderr)
    assert "test/nosuch" in err and ("not found" in err or "unknown" in err.lower()), err
    assert images_json(ivm) == []
    assert store_files(ivm) == {"images/bases": [], "images/blobs/sha256": []}
    r = ivm.run("run", "--rm", name, "--", "true")
    assert r.returncode == 125 and "test/nosuch" in decode(r.stderr)
    assert ivm.box_dirs() == []


def test_concurrent_pulls_of_one_image(ivm):
    name = ref(ivm.reg, "test/tree:v1")
    procs = [ivm.popen("pull", name) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, decode(err)
        assert ivm.reg.tree_digest in decode(out)
    assert [i["id"] for i in images_json(ivm)] == [ivm.reg.tree_digest]
    files = store_files(ivm)
    assert files["images/bases"] == [ivm.reg.tree_digest[7:] + ".ext4"], files
    assert not [b for b in files["images/blobs/sha256"] if b.startswith(".")], files


def test_pulled_box_keeps_files_across_stop_start(ivm):
    name = ref(ivm.reg, "test/tree:v1")
    ivm.run("create", "--name", "keeper", name, check=0)
    ivm.run("start", "keeper", check=0)
    ivm.run("exec", "keeper", "--", "sh", "-c", "echo persisted > /home/app/note; sync", check=0)
    ivm.run("stop", "keeper", check=0)
    ivm.run("start", "keeper", check=0)
    r = ivm.run("exec", "keeper", "--", "sh", "-c", "cat /home/app/note; stat -c '%u %g' /home/app/note; pwd", check=0)
    assert decode(r.stdout).split() == ["persisted", "1234", "5678", "/app"]
    ivm.run("rm", "-f", "keeper", check=0)


def test_racing_loads_publish_one_base(cocoon, tmp_path):
    """Two loads of one image at once both unpack it; the base is published once (a
    no-replace rename), the loser uses the winner's file: a base boxes stand on is
    never replaced. COCOON_TEST_DELAY_BASE_PUBLISH holds each before its rename."""
    lay = Layout(str(tmp_path / "layout"))
    img = lay.image([base_layer(lay)], {"Cmd": ["sh"]})
    lay.tag(img, "example.com/race/img:1")
    procs = [cocoon.popen("load", lay.path, env={"COCOON_TEST_DELAY_BASE_PUBLISH": ms}) for ms in ("1500", "4000")]
    out, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 0, decode(err)
    base = os.path.join(cocoon.home, "images", "bases", img["digest"][7:] + ".ext4")
    first = os.stat(base)
    out, err = procs[1].communicate(timeout=120)
    assert procs[1].returncode == 0, decode(err)
    second = os.stat(base)
    assert (first.st_ino, first.st_mtime_ns) == (second.st_ino, second.st_mtime_ns), "the base was replaced"
    assert os.listdir(os.path.dirname(base)) == [os.path.basename(base)]
    assert [i["id"] for i in images_json(cocoon)] == [img["digest"]]


def test_load_dir_refuses_fifo_and_escaping_symlink(cocoon, tmp_path):
    """A layout directory whose blob is a FIFO or a symlink to a host file: refused at
    once (the FIFO is never opened, so load cannot hang holding the store lock), and
    nothing of the host file ends up in the store."""
    lay = Layout(str(tmp_path / "layout"))
    img = lay.image([lay.layer([F("etc/x", b"x\n")])], {"Cmd": ["sh"]})
    lay.tag(img, "example.com/fifo/img:1")
    m = json.load(open(os.path.join(lay.path, "blobs", "sha256", img["digest"][7:])))
    layer = os.path.join(lay.path, "blobs", "sha256", m["layers"][0]["digest"][7:])
    os.unlink(layer)
    os.mkfifo(layer)
    r = cocoon.run("load", lay.path, timeout=60)
    assert r.returncode != 0 and "not a regular file" in decode(r.stderr), decode(r.stderr)
    os.unlink(layer)
    os.symlink("/etc/hostname", layer)
    r = cocoon.run("load", lay.path, timeout=60)
    assert r.returncode != 0 and "leads outside the layout" in decode(r.stderr), decode(r.stderr)
    assert images_json(cocoon) == []
    host = open("/etc/hostname", "rb").read()
    blobs = os.path.join(cocoon.home, "images", "blobs", "sha256")
    assert hashlib.sha256(host).hexdigest() not in (os.listdir(blobs) if os.path.isdir(blobs) else [])


def test_store_lock_wait_says_who_holds_it(cocoon):
    """`image prune` waiting for a load's lock says so on stderr after about a second,
    naming the holder, instead of blocking silently."""
    lock = os.path.join(cocoon.home, "images", ".lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    code = ("import fcntl, sys\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_SH)\n"
            "print('held', flush=True)\nsys.stdin.read()\n")
    holder = subprocess.Popen(["python3", "-c", code, lock], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        prune = cocoon.popen("image", "prune")
        time.sleep(3)
        assert prune.poll() is None, "prune did not wait for the lock"
        holder.stdin.close()
        holder.wait(timeout=10)
        out, err = prune.communicate(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert prune.returncode == 0, decode(err)
    assert f"waiting for the image store lock held by pid {holder.pid} (python3" in decode(err), decode(err)


def _save_tarball(path, tags, lay):
    """A `docker save` tarball of a one-layer busybox image with these RepoTags."""
    import io
    import tarfile
    img = lay.image([base_layer(lay)], {"Cmd": ["sh", "-c", "echo from-loaded"]})
    m = json.load(open(os.path.join(lay.path, "blobs", "sha256", img["digest"][7:])))
    blob = lambda d: open(os.path.join(lay.path, "blobs", "sha256", d[7:]), "rb").read()
    members = [("config.json", blob(m["config"]["digest"])), ("l/layer.tar", gzip.decompress(blob(m["layers"][0]["digest"]))),
               ("manifest.json", json.dumps([{"Config": "config.json", "Layers": ["l/layer.tar"],
                                               "RepoTags": tags}]).encode())]
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_image_names_are_tags(vm, tmp_path):
    """One image, several names: a docker save with two RepoTags and a second load
    under a third name keep them all; rmi removes a name, and the image only with its
    last one (refused while a box uses it)."""
    lay = Layout(str(tmp_path / "layout"))
    _save_tarball(str(tmp_path / "a.tar"), ["bb:1", "bb:2"], lay)
    _save_tarball(str(tmp_path / "b.tar"), ["example.com/bb:3"], lay)
    vm.run("load", str(tmp_path / "a.tar"), check=0)
    vm.run("load", str(tmp_path / "b.tar"), check=0)
    names = sorted(i["name"] for i in images_json(vm))
    assert names == ["docker.io/library/bb:1", "docker.io/library/bb:2", "example.com/bb:3"], names
    assert len({i["id"] for i in images_json(vm)}) == 1
    table = decode(vm.run("images", check=0).stdout)
    assert table.count("docker.io/library/bb") == 2 and "example.com/bb" in table, table
    for asked, full in (("bb:1", "docker.io/library/bb:1"), ("bb:2", "docker.io/library/bb:2"),
                        ("example.com/bb:3", "example.com/bb:3")):  # each name shows itself
        shown = json.loads(decode(vm.run("image", "inspect", asked, check=0).stdout))[0]
        assert (shown["name"], shown["tag"]) == (full, full.rsplit(":", 1)[1]), (asked, shown)
    r = vm.run("run", "--rm", "bb:1", check=0)  # a bare name reads as docker.io/library/bb
    assert decode(r.stdout) == "from-loaded\n"
    box = decode(vm.run("create", "bb:2", check=0).stdout).strip()
    r = vm.run("rmi", "bb:1", check=0)
    assert "Untagged: docker.io/library/bb:1" in decode(r.stdout) and "Deleted" not in decode(r.stdout)
    vm.run("rmi", "example.com/bb:3", check=0)
    r = vm.run("rmi", "bb:2")  # its last name, and a box uses it
    assert r.returncode != 0 and box in decode(r.stderr), decode(r.stderr)
    assert [i["name"] for i in images_json(vm)] == ["docker.io/library/bb:2"]
    vm.run("rm", box, check=0)
    r = vm.run("rmi", "bb:2", check=0)
    assert "Deleted: sha256:" in decode(r.stdout)
    assert images_json(vm) == []


def test_loaded_names_cannot_take_the_builtin_or_hold_escapes(vm, tmp_path):
    lay = Layout(str(tmp_path / "layout"))
    _save_tarball(str(tmp_path / "default.tar"), ["default"], lay)
    r = vm.run("load", str(tmp_path / "default.tar"))
    assert r.returncode != 0 and "built-in" in decode(r.stderr), decode(r.stderr)
    _save_tarball(str(tmp_path / "esc.tar"), ["x\x1b]0;owned\x07:1", "ok:1"], lay)
    r = vm.run("load", str(tmp_path / "esc.tar"))
    assert r.returncode != 0 and "control characters" in decode(r.stderr), decode(r.stderr)
    assert b"\x1b" not in r.stderr and b"\x1b" not in r.stdout
    assert [i for i in images_json(vm) if i["id"].startswith("sha256:")] == []
    # `run` of the built-in still gets the built-in
    r = vm.run("run", "--rm", "default", "--", "sh", "-c", "test -x /usr/bin/python3 && echo builtin", check=0)
    assert decode(r.stdout) == "builtin\n"
