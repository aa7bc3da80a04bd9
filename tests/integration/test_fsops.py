"""File operations on real boxes (`cocoon fs`, the C API it wraps, and the fs/ routes of
`cocoon serve`): list, stat, mkdir, rm, mv and their errors (a missing path, a relative
path, a non-empty directory without -r, an existing name); rm of a symlink to a
directory or rm -r of a tree holding one leaves what it points to alone; a directory
of 3000 entries comes in several frames; rm -r stops at its depth bound; a stopped box
is started by the REST routes."""
import json

import pytest

from conftest import decode, sh
from openapi_check import OpenAPIMismatch, check_request, check_response
from serve_client import ServeServer


def fs(vm, *args, check=0):
    return vm.run("fs", *args, check=check)


def failed(vm, *args):
    """Runs `cocoon fs ARGS`, which must fail; returns its message."""
    r = vm.run("fs", *args)
    assert r.returncode == 125, (r.returncode, r.stdout, r.stderr)
    return decode(r.stderr).strip()


def test_fs_cli(vm, boxes):
    box = boxes("fs")
    sh(vm, box, "mkdir -p /t/d && printf hello > /t/f && chmod 640 /t/f && ln -s /etc /t/l && "
                "touch -d '2001-02-03 04:05:06.123456789' /t/f")
    lines = decode(fs(vm, "ls", box, "/t").stdout).splitlines()
    assert [ln.split()[-1] for ln in lines] == ["d", "f", "/etc"], lines
    assert lines[1].split() == ["-rw-r-----", "5", "2001-02-03", "04:05:06", "f"], lines
    assert lines[2].startswith("lrwxrwxrwx") and lines[2].endswith(" l -> /etc"), lines
    entries = json.loads(fs(vm, "ls", "--json", box, "/t").stdout)["entries"]
    assert [(e["name"], e["path"], e["type"]) for e in entries] == [
        ("d", "/t/d", "directory"), ("f", "/t/f", "file"), ("l", "/t/l", "symlink")]
    f = entries[1]
    assert (f["mode"], f["size"], f["uid"], f["gid"], f["link_target"]) == (0o640, 5, 0, 0, None)
    assert f["mtime"] == "2001-02-03T04:05:06.123456789Z"
    # stat does not follow a final symlink; options may follow the operands
    st = json.loads(fs(vm, "stat", box, "/t/l", "--json").stdout)
    assert (st["name"], st["type"], st["link_target"]) == ("l", "symlink", "/etc")
    assert json.loads(fs(vm, "stat", "--json", box, "/").stdout)["name"] == "/"

    # mkdir: the parent must exist and the name not, unless -p
    assert failed(vm, "mkdir", box, "/t/x/y") == "cocoon: /t/x/y: No such file or directory"
    fs(vm, "mkdir", "-p", "-m", "700", box, "/t/x/y")
    fs(vm, "mkdir", "-p", box, "/t/x/y")
    assert failed(vm, "mkdir", box, "/t/x/y") == "cocoon: /t/x/y: File exists"
    assert "not a directory" in failed(vm, "mkdir", "-p", box, "/t/f/sub")
    fs(vm, "mkdir", "-m", "2750", box, "/t/x/sg")  # setgid: mkdir(2) leaves it out, a chmod sets it
    fs(vm, "mkdir", "-p", "-m", "700", box, "/t/x/sg")  # an existing directory keeps its mode
    r = sh(vm, box, "stat -c %a /t/x /t/x/y /t/x/sg")
    assert decode(r.stdout).split() == ["755", "700", "2750"]
    fs(vm, "rm", box, "/t/x/sg")

    # rm: a non-empty directory needs -r; files and empty directories do not
    assert failed(vm, "rm", box, "/t/x") == "cocoon: /t/x: Directory not empty (remove it recursively)"
    fs(vm, "rm", box, "/t/x/y")
    fs(vm, "rm", box, "/t/x")
    fs(vm, "rm", box, "/t/f")
    assert failed(vm, "rm", box, "/t/f") == "cocoon: /t/f: No such file or directory"
    assert "refusing to remove the root" in failed(vm, "rm", "-r", box, "/")

    # mv: replaces unless -n
    sh(vm, box, "echo a > /t/a && echo b > /t/b")
    assert failed(vm, "mv", "-n", box, "/t/a", "/t/b") == "cocoon: /t/a -> /t/b: File exists"
    fs(vm, "mv", box, "/t/a", "/t/b")
    assert decode(sh(vm, box, "cat /t/b; ls /t").stdout).split() == ["a", "b", "d", "l"]
    assert "No such file or directory" in failed(vm, "mv", box, "/t/nope", "/t/c")

    # what is wrong with a request is said before the box is asked
    assert failed(vm, "ls", box, "t") == "cocoon: t: the path must be absolute (start with /)"
    assert failed(vm, "stat", box, "/nope") == "cocoon: /nope: No such file or directory"
    assert "Not a directory" in failed(vm, "ls", box, "/t/b")
    r = vm.run("fs", "chmod", box, "/t")
    assert r.returncode == 2 and "unknown command" in decode(r.stderr)


def test_rm_leaves_symlink_targets_alone(vm, boxes):
    box = boxes("fsln")
    sh(vm, box, "mkdir -p /keep/sub && echo x > /keep/sub/x && ln -s /keep /lk && "
                "mkdir -p /tree/in && ln -s /keep /tree/in/out && ln -s /keep/sub/x /tree/file-link")
    fs(vm, "rm", box, "/lk")  # a symlink to a directory: the link goes, without -r
    fs(vm, "rm", "-r", box, "/tree")
    r = sh(vm, box, "ls /keep/sub; test -e /lk || echo no-lk; test -e /tree || echo no-tree")
    assert decode(r.stdout).split() == ["x", "no-lk", "no-tree"]
    sh(vm, box, "ln -s /keep /lk2")
    fs(vm, "rm", "-r", box, "/lk2")  # -r on a symlink removes the symlink
    assert decode(sh(vm, box, "ls /keep/sub").stdout).split() == ["x"]


def test_directory_larger_than_a_frame(vm, boxes):
    box = boxes("fsbig")
    sh(vm, box, "mkdir /big && cd /big && i=0; while [ $i -lt 3000 ]; do "
                ": > entry-with-a-name-long-enough-to-fill-frames-$i; i=$((i+1)); done")
    names = [ln.split()[-1] for ln in decode(fs(vm, "ls", box, "/big").stdout).splitlines()]
    want = sorted(f"entry-with-a-name-long-enough-to-fill-frames-{i}" for i in range(3000))
    assert names == want
    # the JSON of 3000 entries is several times a frame (64 KiB)
    out = fs(vm, "ls", "--json", box, "/big").stdout
    assert len(out) > 4 * 65536 and len(json.loads(out)["entries"]) == 3000
    fs(vm, "rm", "-r", box, "/big")
    assert "No such file" in failed(vm, "ls", box, "/big")


def test_rm_r_depth_bound(vm, boxes):
    box = boxes("fsdeep")
    sh(vm, box, "cd / && mkdir deep && cd deep && i=0; while [ $i -lt 300 ]; do mkdir d && cd d; i=$((i+1)); done")
    msg = failed(vm, "rm", "-r", box, "/deep")
    assert "deeper than 256 levels" in msg and msg.startswith("cocoon: /deep: /deep/d/d/"), msg
    r = sh(vm, box, "test -d /deep && echo kept")  # what the bound stopped is still there
    assert decode(r.stdout).strip() == "kept"


class CheckedClient:
    """Answers checked against docs/openapi.yaml (by the client), and so are the
    bodies: one the server took must be one the document takes, one it refused as a bad
    argument one the document refuses."""

    def __init__(self, api):
        self.api = api

    def request(self, method, path, json=None):
        r = self.api.request(method, path, json=json)
        if json is not None and 200 <= r.status < 300:
            check_request(method, path, json)
        if json is not None and r.status == 400 and "field" in r.json["error"]["message"]:
            with pytest.raises(OpenAPIMismatch):
                check_request(method, path, json)
        return r


def test_fs_rest(vm):
    with ServeServer(vm) as server:
        api = CheckedClient(server.client(check=check_response))
        r = api.request("POST", "/v1/boxes", json={"vmm": vm.backend, "network": {"mode": "disabled"}})
        assert r.status == 201, r
        box = r.json["box_id"]
        base = f"/v1/boxes/{box}/fs"
        try:
            # the box is not running: the first call boots it
            r = api.request("POST", f"{base}/mkdir", json={"path": "/w/a/b", "parents": True, "mode": 0o700})
            assert r.status == 200, r
            assert (r.json["name"], r.json["path"], r.json["type"], r.json["mode"]) == ("b", "/w/a/b", "directory",
                                                                                       0o700)
            r = api.request("GET", f"{base}/list?path=/w")
            assert r.status == 200 and [e["name"] for e in r.json["entries"]] == ["a"], r
            r = api.request("GET", f"{base}/stat?path=/w/a")
            assert r.status == 200 and r.json["type"] == "directory" and r.json["link_target"] is None, r
            r = api.request("POST", f"{base}/move", json={"from": "/w/a", "to": "/w/c"})
            assert r.status == 200 and (r.json["name"], r.json["path"]) == ("c", "/w/c"), r
            r = api.request("POST", f"{base}/mkdir", json={"path": "/w/e"})
            assert r.status == 200 and r.json["mode"] == 0o755, r
            r = api.request("POST", f"{base}/move", json={"from": "/w/e", "to": "/w/c", "no_replace": True})
            assert (r.status, r.error_code()) == (400, "invalid_argument"), r

            # errors
            r = api.request("GET", f"{base}/stat?path=/w/nope")
            assert (r.status, r.error_code()) == (404, "not_found"), r
            assert "/w/nope: No such file or directory" in r.json["error"]["message"]
            for path in ("w", ""):
                r = api.request("GET", f"{base}/list?path={path}")
                assert (r.status, r.error_code()) == (400, "invalid_argument"), r
            r = api.request("POST", f"{base}/remove", json={"path": "/w"})
            assert (r.status, r.error_code()) == (400, "invalid_argument"), r
            assert "Directory not empty" in r.json["error"]["message"]
            for body in ({"path": "/w", "recursive": True, "force": True}, {"path": "/w", "recursive": "yes"}):
                r = api.request("POST", f"{base}/remove", json=body)
                assert (r.status, r.error_code()) == (400, "invalid_argument"), r  # an unknown field, a bad type
            r = api.request("POST", f"{base}/mkdir", json={"path": "/w/m", "mode": 0o10000})
            assert (r.status, r.error_code()) == (400, "invalid_argument"), r
            r = api.request("POST", f"{base}/remove", json={"path": "/w", "recursive": True})
            assert r.status == 204, r
            r = api.request("GET", f"{base}/list?path=/w")
            assert (r.status, r.error_code()) == (404, "not_found"), r
            r = api.request("GET", "/v1/boxes/nobox-here/fs/stat?path=/")
            assert (r.status, r.error_code()) == (404, "not_found"), r
        finally:
            api.request("DELETE", f"/v1/boxes/{box}?force=true")


def test_fs_on_a_stopped_box(vm):
    vm.run("create", "--name", "fsstopped", check=0)
    try:
        r = vm.run("fs", "ls", "fsstopped", "/")
        assert r.returncode == 125 and "not running" in decode(r.stderr), decode(r.stderr)
    finally:
        vm.run("rm", "-f", "fsstopped")


@pytest.mark.parametrize("sub", ["ls", "stat", "rm"])
def test_fs_on_a_missing_box(cocoon, sub):
    r = cocoon.run("fs", sub, "no-such-box", "/")
    assert r.returncode == 125 and "no-such-box" in decode(r.stderr), decode(r.stderr)
