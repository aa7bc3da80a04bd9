"""Image fetching (src/image: image_pull, image_load) against a loopback Debian
docker-registry filled with images built here (umoci + skopeo), and against a fake
registry in Python for lying blobs and token auth. Driven through tests/tools/image-tool.c
compiled against the built libcocoon.a; no VM is needed.
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

import registry_fixture as rf

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("docker-registry", "skopeo", "umoci")) or not os.path.exists(rf.BUSYBOX),
    reason="docker-registry, skopeo, umoci and busybox-static are needed (scripts/setup installs them)")


@pytest.fixture(scope="session")
def image_tool(tmp_path_factory):
    return rf.build_image_tool(str(tmp_path_factory.mktemp("tool")))


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A running registry holding test/hello:v1, test/multi (amd64+arm64 index) and
    test/armonly (arm64-only index); built once per session."""
    work = str(tmp_path_factory.mktemp("registry"))
    reg = rf.Registry(work)
    try:
        lay = os.path.join(work, "layout")
        rf.build_layout(lay, "v1", {"etc/hello": b"hello from v1\n"}, cmd=["/bin/sh", "-c", "echo hi"],
                        env=["GREETING=hello"], workdir="/tmp")
        rf.build_layout(lay, "amd", {"etc/arch": b"amd64\n"}, arch="amd64")
        rf.build_layout(lay, "arm", {"etc/arch": b"arm64\n"}, arch="arm64")
        rf.add_multiarch_index(lay, [("arm", "arm64"), ("amd", "amd64")], "multi")
        rf.add_multiarch_index(lay, [("arm", "arm64")], "armonly")
        reg.push_layout(lay, "v1", "test/hello:v1")
        reg.push_layout(lay, "multi", "test/multi:latest", all_images=True)
        reg.push_layout(lay, "armonly", "test/armonly:latest", all_images=True)
        reg.layout = lay
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def tool(image_tool, tmp_path):
    return rf.Tool(image_tool, str(tmp_path / "images"))


@pytest.fixture
def fake():
    servers = []

    def start(**kw):
        s = rf.FakeRegistry(**kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def no_temp_files(tool):
    return [b for b in tool.blobs() if b.startswith(".tmp")] == []


def check_store(tool):
    """Every blob in the store hashes to its name."""
    d = os.path.join(tool.store, "blobs", "sha256")
    for name in tool.blobs():
        with open(os.path.join(d, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == name, f"blob {name} lies"


# ---- real registry ----

def test_pull_by_tag(registry, tool):
    info = tool.ok("pull", "--insecure", f"{registry.host}/test/hello:v1")
    want = rf.layout_manifest(registry.layout, "v1")["digest"]
    assert info["manifest"] == want
    assert len(info["layers"]) == 1
    assert info["layers"][0]["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert info["total_size"] == info["layers"][0]["size"] > 0
    for d in [info["manifest"], info["config"]] + [l["digest"] for l in info["layers"]]:
        assert d[7:] in tool.blobs()
    check_store(tool)
    assert no_temp_files(tool)
    cfg = tool.ok("config", info["config"])
    assert cfg["cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert "GREETING=hello" in cfg["env"]
    assert cfg["working_dir"] == "/tmp"
    assert (cfg["architecture"], cfg["os"]) == ("amd64", "linux")


def test_pull_by_digest(registry, tool):
    want = rf.layout_manifest(registry.layout, "v1")["digest"]
    info = tool.ok("pull", "--insecure", f"{registry.host}/test/hello@{want}")
    assert info["manifest"] == want
    check_store(tool)
    # an unknown (well-formed) digest is a clear 404
    missing = "sha256:" + "0" * 64
    p = tool.run("pull", "--insecure", f"{registry.host}/test/hello@{missing}")
    assert p.returncode == 1
    assert "answered 404 for manifest test/hello@" + missing in p.stderr


def test_multiarch_picks_amd64(registry, tool):
    info = tool.ok("pull", "--insecure", f"{registry.host}/test/multi")
    assert info["manifest"] == rf.layout_manifest(registry.layout, "amd")["digest"]
    assert tool.ok("config", info["config"])["architecture"] == "amd64"


def test_no_amd64_lists_platforms(registry, tool):
    p = tool.run("pull", "--insecure", f"{registry.host}/test/armonly")
    assert p.returncode == 1
    assert "no linux/amd64" in p.stderr and "linux/arm64" in p.stderr, p.stderr


def test_second_pull_fetches_nothing(registry, tool):
    ref = f"{registry.host}/test/hello:v1"
    tool.ok("pull", "--insecure", ref)
    before = registry.blob_gets()
    mtimes = {b: os.stat(os.path.join(tool.store, "blobs", "sha256", b)).st_mtime_ns for b in tool.blobs()}
    tool.ok("pull", "--insecure", ref)
    assert registry.blob_gets() == before
    assert {b: os.stat(os.path.join(tool.store, "blobs", "sha256", b)).st_mtime_ns for b in tool.blobs()} == mtimes


def test_concurrent_pulls(registry, tool):
    argv = [tool.path, tool.store, "pull", "--insecure", f"{registry.host}/test/multi"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert len({json.loads(o)["manifest"] for o, _ in outs}) == 1
    check_store(tool)
    assert no_temp_files(tool)


def test_insecure_required_for_http(registry, tool):
    p = tool.run("pull", f"{registry.host}/test/hello:v1")
    assert p.returncode == 1
    assert "insecure" in p.stderr, p.stderr
    assert tool.blobs() == [] or no_temp_files(tool)


def test_unknown_image_is_a_clear_404(registry, tool):
    p = tool.run("pull", "--insecure", f"{registry.host}/library/nope")
    assert p.returncode == 1
    assert f"registry {registry.host} answered 404 for manifest library/nope:latest: image or tag not found" \
        in p.stderr, p.stderr


def test_unreachable_registry(tool):
    port = rf.free_port()
    p = tool.run("pull", "--insecure", f"127.0.0.1:{port}/x:y")
    assert p.returncode == 1
    assert f"cannot reach registry 127.0.0.1:{port}" in p.stderr, p.stderr


# ---- load ----

def test_load_docker_archive(registry, tool, tmp_path):
    tar = str(tmp_path / "saved.tar")
    rf.run(["skopeo", "copy", "--quiet", f"oci:{registry.layout}:v1", f"docker-archive:{tar}:test/saved:v7"])
    imgs = tool.ok("load", tar)
    assert len(imgs) == 1
    img = imgs[0]
    assert img["name"] == "docker.io/test/saved:v7"
    assert len(img["layers"]) == 1
    # skopeo writes uncompressed layers; the config keeps its digest
    assert img["layers"][0]["media_type"] == "application/vnd.oci.image.layer.v1.tar"
    oci_cfg = json.load(open(os.path.join(registry.layout, "blobs", "sha256",
                                          rf.layout_manifest(registry.layout, "v1")["digest"][7:])))["config"]
    cfg = tool.ok("config", img["config"])
    assert cfg["cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert img["config"] == oci_cfg["digest"] or cfg["architecture"] == "amd64"
    for d in [img["manifest"], img["config"], img["layers"][0]["digest"]]:
        assert d[7:] in tool.blobs()
    check_store(tool)
    # the synthesised manifest is a valid OCI manifest naming the same blobs
    with open(os.path.join(tool.store, "blobs", "sha256", img["manifest"][7:])) as f:
        m = json.load(f)
    assert m["config"]["digest"] == img["config"]
    assert [l["digest"] for l in m["layers"]] == [l["digest"] for l in img["layers"]]


def test_load_legacy_docker_save(tool, tmp_path):
    """Old `docker save` layout: <id>/layer.tar directories, a config named <hex>.json, a
    second image whose layer is a symlink to the first one's, a gzip layer, gzip'd tarball."""
    import gzip
    import io
    layer1 = rf.make_image({"a": b"one"}, compress=False)[1]
    raw1 = [b for b in layer1.values() if not b.startswith(b"{")][0]
    gz2 = gzip.compress(b"not really a tar, just bytes", mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]}}).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([
        {"Config": cfg_name, "RepoTags": ["legacy:1", "example.com/x/legacy:2"], "Layers": ["aaa/layer.tar"]},
        {"Config": cfg_name, "RepoTags": None, "Layers": ["bbb/layer.tar", "ccc/layer.tar"]},
    ]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in [("aaa/layer.tar", raw1), ("ccc/layer.tar", gz2), (cfg_name, cfg),
                           ("manifest.json", manifest), ("repositories", b"{}")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../aaa/layer.tar"
        t.addfile(link)
    tar = str(tmp_path / "legacy.tar.gz")
    with open(tar, "wb") as f:
        f.write(gzip.compress(buf.getvalue()))
    imgs = tool.ok("load", tar)
    assert [i["name"] for i in imgs] == ["docker.io/library/legacy:1", "example.com/x/legacy:2", ""]
    d1 = "sha256:" + hashlib.sha256(raw1).hexdigest()
    d2 = "sha256:" + hashlib.sha256(gz2).hexdigest()
    assert [l["digest"] for l in imgs[0]["layers"]] == [d1]
    assert [(l["digest"], l["media_type"]) for l in imgs[2]["layers"]] == [
        (d1, "application/vnd.oci.image.layer.v1.tar"), (d2, "application/vnd.oci.image.layer.v1.tar+gzip")]
    assert imgs[0]["config"] == "sha256:" + cfg_name[:-5]
    assert tool.ok("config", imgs[2]["config"])["cmd"] == ["/bin/true"]
    check_store(tool)


def test_load_oci_layout_dir_and_tar(registry, tool, tmp_path):
    lay = str(tmp_path / "lay")
    rf.build_layout(lay, "v2", {"etc/x": b"x\n"}, cmd=["/bin/true"])
    imgs = tool.ok("load", lay)
    # an OCI ref.name is a reference like any other name: a bare "v2" is docker.io/library/v2:latest
    assert [i["name"] for i in imgs] == ["docker.io/library/v2:latest"]
    assert imgs[0]["manifest"] == rf.layout_manifest(lay, "v2")["digest"]
    assert tool.ok("config", imgs[0]["config"])["cmd"] == ["/bin/true"]
    check_store(tool)
    # the same layout as a tarball, into a fresh store
    tar = str(tmp_path / "lay.tar")
    with tarfile.open(tar, "w") as t:
        t.add(lay, arcname=".")
    tool2 = rf.Tool(tool.path, str(tmp_path / "images2"))
    imgs2 = tool2.ok("load", tar)
    assert imgs2[0]["manifest"] == imgs[0]["manifest"]
    assert set(tool2.blobs()) >= {imgs[0]["config"][7:], imgs[0]["layers"][0]["digest"][7:]}
    check_store(tool2)


def test_load_multiarch_layout_picks_amd64(registry, tool):
    # the session layout holds v1, amd, arm and two indexes: the multi-arch index gives
    # its amd64 image, the index without amd64 is skipped (single manifests load as they are)
    imgs = tool.ok("load", registry.layout)
    names = {i["name"].removeprefix("docker.io/library/").removesuffix(":latest"): i["manifest"] for i in imgs}
    assert names["multi"] == rf.layout_manifest(registry.layout, "amd")["digest"]
    assert set(names) == {"v1", "amd", "arm", "multi"}


@pytest.mark.parametrize("member", ["../evil", "/abs/evil", "a/../../evil"])
def test_load_refuses_escaping_members(tool, tmp_path, member):
    tar = str(tmp_path / "bad.tar")
    import io
    with tarfile.open(tar, "w") as t:
        for name, data in [("manifest.json", b'[{"Config":"c.json","Layers":["l.tar"]}]'), (member, b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    p = tool.run("load", tar)
    assert p.returncode == 1
    assert "refusing archive member" in p.stderr, p.stderr
    assert not os.path.exists(str(tmp_path / "evil")) and not os.path.exists("/abs/evil")


def test_load_oci_tar_with_lying_blob(tool, tmp_path):
    lay = str(tmp_path / "lay")
    rf.build_layout(lay, "v1", {"etc/x": b"x\n"})
    m = rf.layout_manifest(lay, "v1")
    layer = json.load(open(os.path.join(lay, "blobs", "sha256", m["digest"][7:])))["layers"][0]["digest"]
    with open(os.path.join(lay, "blobs", "sha256", layer[7:]), "r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    tar = str(tmp_path / "lay.tar")
    with tarfile.open(tar, "w") as t:
        t.add(lay, arcname=".")
    p = tool.run("load", tar)
    assert p.returncode == 1
    assert "failed verification" in p.stderr, p.stderr
    assert layer[7:] not in tool.blobs()
    assert no_temp_files(tool)


# ---- fake registry: what a real one never does ----

def test_lying_blob_is_refused(fake, tool):
    f = fake()
    manifest, blobs = f.add("lie/image", "latest", {"etc/a": b"a" * 5000})
    layer = json.loads(manifest)["layers"][0]["digest"]
    real = blobs[layer]
    f.lie[layer] = bytes(len(real))  # right size, wrong content
    p = tool.run("pull", "--insecure", f"{f.host}/lie/image")
    assert p.returncode == 1
    assert "failed verification" in p.stderr and layer in p.stderr, p.stderr
    assert layer[7:] not in tool.blobs()
    assert no_temp_files(tool)
    check_store(tool)
    # too many bytes: aborted while streaming
    f.lie[layer] = real + b"x" * 100000
    p = tool.run("pull", "--insecure", f"{f.host}/lie/image")
    assert p.returncode == 1 and "more than the expected" in p.stderr, p.stderr
    assert layer[7:] not in tool.blobs() and no_temp_files(tool)
    # too few bytes (an interrupted transfer): refused, then a clean restart works
    f.lie[layer] = real[:len(real) // 2]
    p = tool.run("pull", "--insecure", f"{f.host}/lie/image")
    assert p.returncode == 1 and f"got {len(real) // 2} bytes" in p.stderr, p.stderr
    assert layer[7:] not in tool.blobs() and no_temp_files(tool)
    del f.lie[layer]
    tool.ok("pull", "--insecure", f"{f.host}/lie/image")
    assert layer[7:] in tool.blobs()
    check_store(tool)


def test_stalled_transfer_times_out(fake, tool):
    f = fake()
    manifest, blobs = f.add("slow/img", "v1", {"a": os.urandom(20000)})
    layer = json.loads(manifest)["layers"][0]["digest"]
    f.stall[layer] = 20
    start = time.monotonic()
    # curl judges the speed over a window of a few seconds: 2 s of silence is noticed within ~8 s
    p = tool.run("pull", "--insecure", f"{f.host}/slow/img:v1", env={"COCOON_PULL_STALL_SECONDS": "2"})
    assert p.returncode == 1 and "stalled" in p.stderr, p.stderr
    assert time.monotonic() - start < 15
    assert layer[7:] not in tool.blobs() and no_temp_files(tool)


def test_pull_has_an_overall_deadline(fake, tool):
    """A registry that trickles a blob (never silent, so never 'stalled') is cut off by
    the pull's overall deadline (COCOON_PULL_TIMEOUT) with a clear error."""
    f = fake()
    manifest, blobs = f.add("drip/img", "v1", {"a": os.urandom(200000)})
    layer = json.loads(manifest)["layers"][0]["digest"]
    f.drip[layer] = 200  # bytes per second: the blob would take over 15 minutes
    start = time.monotonic()
    p = tool.run("pull", "--insecure", f"{f.host}/drip/img:v1", env={"COCOON_PULL_TIMEOUT": "4"})
    assert p.returncode == 1 and "COCOON_PULL_TIMEOUT" in p.stderr and "4 s" in p.stderr, p.stderr
    assert time.monotonic() - start < 30
    assert layer[7:] not in tool.blobs() and no_temp_files(tool)


def test_pull_below_the_low_speed_limit_fails(fake, tool):
    """Slower than COCOON_PULL_LOW_SPEED bytes/s for COCOON_PULL_STALL_SECONDS: an error
    that says so (a trickle used to keep a pull alive forever)."""
    f = fake()
    manifest, blobs = f.add("drip2/img", "v1", {"a": os.urandom(200000)})
    layer = json.loads(manifest)["layers"][0]["digest"]
    f.drip[layer] = 200
    start = time.monotonic()
    p = tool.run("pull", "--insecure", f"{f.host}/drip2/img:v1",
                 env={"COCOON_PULL_STALL_SECONDS": "2", "COCOON_PULL_LOW_SPEED": "1000"})
    assert p.returncode == 1 and "slower than 1000 bytes/s" in p.stderr, p.stderr
    assert time.monotonic() - start < 30
    assert no_temp_files(tool)


def test_stale_temp_files_are_swept(fake, tool):
    f = fake()
    f.add("x/y", "latest", {"a": b"a"})
    d = os.path.join(tool.store, "blobs", "sha256")
    os.makedirs(d)
    # a pid that cannot exist (above pid_max) stands for a pull killed mid-way
    stale = os.path.join(d, ".tmp-99999999-1-abc")
    open(stale, "w").write("partial")
    tool.ok("pull", "--insecure", f"{f.host}/x/y")
    assert not os.path.exists(stale)


def test_lying_manifest_digest_is_refused(fake, tool):
    f = fake()
    manifest, _ = f.add("m/x", "latest", {"a": b"a"})
    other = "sha256:" + "1" * 64
    f.repos["m/x"]["tags"][other] = manifest  # serves this manifest under a digest it does not have
    p = tool.run("pull", "--insecure", f"{f.host}/m/x@{other}")
    assert p.returncode == 1 and "refusing it" in p.stderr, p.stderr
    assert tool.blobs() == []


def test_token_auth_anonymous(fake, tool):
    f = fake(token=True)
    f.add("tok/img", "v1", {"a": b"hello"})
    info = tool.ok("pull", "--insecure", f"{f.host}/tok/img:v1")
    assert info["layers"]
    assert any(p.startswith("/token?") and "scope=repository%3Atok%2Fimg%3Apull" in p for p, _ in f.requests), \
        f.requests
    assert any(a == "Bearer " + f.token_value for _, a in f.requests)


def auth_file(tmp_path, host, user, pw):
    path = str(tmp_path / "auth.json")
    with open(path, "w") as fh:
        json.dump({"auths": {host: {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}}}, fh)
    return path


def test_token_auth_with_credentials(fake, tool, tmp_path):
    f = fake(token=True, basic="alice:s3cret")
    f.add("priv/img", "v1", {"a": b"private"})
    # anonymous: the token service refuses, and the message says what to do
    p = tool.run("pull", "--insecure", f"{f.host}/priv/img:v1", env={"COCOON_HOME": str(tmp_path / "nohome")})
    assert p.returncode == 1 and "refused anonymous access" in p.stderr and "auth file" in p.stderr, p.stderr
    # wrong password
    bad = auth_file(tmp_path, f.host, "alice", "wrong")
    p = tool.run("pull", "--insecure", "--auth", bad, f"{f.host}/priv/img:v1")
    assert p.returncode == 1 and "refused the credentials" in p.stderr, p.stderr
    # right password, from $COCOON_HOME/auth.json (the default location)
    home = tmp_path / "home"
    home.mkdir()
    good = auth_file(tmp_path, "http://" + f.host, "alice", "s3cret")
    shutil.move(good, str(home / "auth.json"))
    info = tool.ok("pull", "--insecure", f"{f.host}/priv/img:v1", env={"COCOON_HOME": str(home)})
    assert info["layers"]


def test_basic_auth_registry(fake, tool, tmp_path):
    f = fake(basic="bob:pw", basic_only=True)
    f.add("b/img", "v1", {"a": b"basic"})
    p = tool.run("pull", "--insecure", f"{f.host}/b/img:v1", env={"COCOON_HOME": str(tmp_path / "nohome")})
    assert p.returncode == 1 and "needs a user name and password" in p.stderr, p.stderr
    info = tool.ok("pull", "--insecure", "--auth", auth_file(tmp_path, f.host, "bob", "pw"), f"{f.host}/b/img:v1")
    assert info["layers"]


def test_uncompressed_layers(fake, tool):
    f = fake()
    f.add("plain/img", "v1", {"a": b"plain"}, compress=False)
    info = tool.ok("pull", "--insecure", f"{f.host}/plain/img:v1")
    assert info["layers"][0]["media_type"] == "application/vnd.oci.image.layer.v1.tar"


def test_cli_login_then_pull_then_logout(fake, tool, tmp_path):
    """`cocoon login` stores credentials the pull then uses; logout forgets them."""
    cocoon = os.path.join(os.environ.get("COCOON_BIN_DIR", "build/bin"), "cocoon")
    f = fake(token=True, basic="carol:pa55")
    f.add("login/img", "v1", {"a": b"after login"})
    home = tmp_path / "home"
    env = dict(os.environ, COCOON_HOME=str(home))
    run = lambda args, stdin="": subprocess.run([cocoon, *args], input=stdin, capture_output=True, text=True,
                                                env=env, timeout=60)
    p = run(["login", "-u", "carol", "--password-stdin", f.host], "pa55\n")
    assert p.returncode == 0, p.stderr
    auth = home / "auth.json"
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    saved = json.load(open(auth))["auths"][f.host]["auth"]
    assert base64.b64decode(saved) == b"carol:pa55"
    info = tool.ok("pull", "--insecure", f"{f.host}/login/img:v1", env={"COCOON_HOME": str(home)})
    assert info["layers"]
    # no password on a pipe without --password-stdin, and bad registry names, are refused
    p = run(["login", "-u", "carol", f.host], "x\n")
    assert p.returncode == 2 and "--password-stdin" in p.stderr, p.stderr
    p = run(["login", "-u", "carol", "--password-stdin", "bad/host"], "x\n")
    assert p.returncode != 0 and "not a registry host" in p.stderr, p.stderr
    p = run(["logout", f.host])
    assert p.returncode == 0, p.stderr
    assert f.host not in json.load(open(auth))["auths"]
    p = run(["logout", f.host])
    assert p.returncode != 0 and "not logged in" in p.stderr, p.stderr


def _cli(tmp_path):
    cocoon = os.path.join(os.environ.get("COCOON_BIN_DIR", "build/bin"), "cocoon")
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    return cocoon, home, dict(os.environ, COCOON_HOME=str(home))


def test_login_long_password_kept_whole_or_refused(tmp_path):
    """A 60 KiB token as password is stored whole (it was cut at 1023 bytes); one over
    the 64 KiB bound is an error and stores nothing."""
    cocoon, home, env = _cli(tmp_path)
    token = "t" * (60 << 10)
    p = subprocess.run([cocoon, "login", "-u", "bot", "--password-stdin", "ghcr.io"], input=token + "\n",
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    saved = json.load(open(home / "auth.json"))["auths"]["ghcr.io"]["auth"]
    assert base64.b64decode(saved) == b"bot:" + token.encode()
    p = subprocess.run([cocoon, "login", "-u", "bot", "--password-stdin", "quay.io"], input="x" * (65 << 10) + "\n",
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode != 0 and "longer than 65536 bytes" in p.stderr, p.stderr
    assert "quay.io" not in json.load(open(home / "auth.json"))["auths"]


def test_login_ctrl_c_at_the_prompt_restores_echo(tmp_path):
    """Ctrl-C at the password prompt (echo off) leaves the terminal with echo on."""
    import pty
    import termios
    cocoon, home, env = _cli(tmp_path)
    master, slave = pty.openpty()
    p = subprocess.Popen([cocoon, "login", "-u", "carol", "ghcr.io"], stdin=slave, stdout=slave, stderr=slave,
                         env=env, start_new_session=True,
                         preexec_fn=lambda: __import__("fcntl").ioctl(0, termios.TIOCSCTTY, 0))
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"Password: " not in seen and time.monotonic() < deadline:
            seen += os.read(master, 1024)
        assert b"Password: " in seen, seen
        for _ in range(100):  # the prompt is written before echo goes off
            if not termios.tcgetattr(slave)[3] & termios.ECHO:
                break
            time.sleep(0.02)
        assert not termios.tcgetattr(slave)[3] & termios.ECHO, "echo is on while the password is typed"
        os.write(master, b"sec\x03")  # Ctrl-C: SIGINT from the terminal
        p.wait(timeout=30)
        assert termios.tcgetattr(slave)[3] & termios.ECHO, "the terminal was left without echo"
        assert not (home / "auth.json").exists()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)
