"""Clones of stopped boxes and snapshots (`cocoon clone`, POST /v1/boxes/{id}/clone),
and export/import over REST (POST /v1/boxes/{id}/export, POST /v1/boxes/import).

Cheap on purpose: two boots in the whole file (the parent writes a file; one clone
reads it and writes its own); what the other boxes hold is read on the host from their
flattened disks (qemu-img convert + debugfs), and everything else never boots: names,
refusals, the in-use rule, kill -9 at each step of a clone, and the REST routes against
docs/openapi.yaml and BoxLite's published client.
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess

import pytest

import state_invariants as inv
from conftest import REPO, decode, sh
from openapi_check import check_response
from serve_client import ServeServer
from test_serve_boxlite import TOKEN, node_modules, tcp_serve

BOXLITE_SCRIPT = os.path.join(REPO, "tests", "js", "boxlite_clone.mjs")
BOXLITE_CHECKS = ["create", "clone_named", "clone_unnamed", "clone_taken_name_refused", "export", "import",
                  "import_corrupt_refused", "snapshot_create_list", "snapshot_get_restore_remove", "cleanup"]

KILLED = -signal.SIGKILL


def out(r):
    return decode(r.stdout).strip()


def box_id(c, name):
    return json.loads(out(c.run("inspect", "--json", name, check=0)))["id"]


def snapshots(c):
    return json.loads(out(c.run("snapshot", "ls", "--json", check=0)))


def names(c):
    ids = out(c.run("ls", "-a", "-q", check=0)).split()
    return sorted(json.loads(out(c.run("inspect", "--json", i, check=0)))["name"] for i in ids)


def guest_file(c, tmp_path, box, path):
    """A file of a stopped box's disk, read on the host (None when it is not there)."""
    if not shutil.which("debugfs"):
        pytest.skip("skipped: debugfs (e2fsprogs) is not installed")
    raw = str(tmp_path / f"{box}.raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", os.path.join(c.home, "boxes", box_id(c, box),
                                                                            "disk.qcow2"), raw], check=True)
    p = subprocess.run(["debugfs", "-R", f"cat {path}", raw], capture_output=True, text=True)
    os.unlink(raw)
    return p.stdout if p.stdout or "not found" not in p.stderr else None


# ---- with boots: a clone has its parent's files; writes stay apart ----

def test_clone_boots_with_the_parents_files_and_writes_stay_apart(vm, tmp_path):
    vm.run("create", "--name", "p", check=0)
    vm.run("start", "p", check=0)
    sh(vm, "p", "echo parent > /root/f && sync")
    vm.run("stop", "p", check=0)
    made = out(vm.run("clone", "-n", "2", "p", check=0)).split()
    assert len(made) == 2 and names(vm) == ["p", "p-clone-1", "p-clone-2"]
    assert [box_id(vm, n) for n in ("p-clone-1", "p-clone-2")] == made
    vm.run("start", "p-clone-1", check=0)
    assert out(sh(vm, "p-clone-1", "cat /root/f")) == "parent"
    assert out(sh(vm, "p-clone-1", "hostname")) == f"cocoon-{made[0][:6]}"  # its own, not the parent's
    sh(vm, "p-clone-1", "echo clone > /root/f && echo mine > /root/only-clone && sync")
    vm.run("stop", "p-clone-1", check=0)
    assert guest_file(vm, tmp_path, "p-clone-1", "/root/only-clone") == "mine\n"
    for other in ("p", "p-clone-2"):  # neither the parent nor the sibling sees it
        assert guest_file(vm, tmp_path, other, "/root/f") == "parent\n", other
        assert guest_file(vm, tmp_path, other, "/root/only-clone") is None, other
    [snap] = snapshots(vm)
    assert snap["box_name"] == "p" and snap["users"] == 3  # the parent and both clones
    inv.assert_clean(vm.home, "after clones booted")


# ---- without boots ----

def test_clone_names_sources_and_refusals(cocoon):
    c = cocoon
    c.run("create", "--name", "b", check=0)
    r = c.run("clone", "nosuch")
    assert r.returncode != 0 and 'no box or snapshot with id or name "nosuch"' in decode(r.stderr)
    assert out(c.run("clone", "--name", "web", "-n", "3", "b", check=0)).count("\n") == 2
    assert names(c) == ["b", "web-1", "web-2", "web-3"]
    # a taken name refuses the whole call: no clone is made, not even the free ones
    c.run("create", "--name", "x-2", check=0)
    r = c.run("clone", "--name", "x", "-n", "3", "b")
    assert r.returncode != 0 and 'box name "x-2" is already in use' in decode(r.stderr), decode(r.stderr)
    r = c.run("clone", "--name", "b", "web-1")
    assert r.returncode != 0 and "already in use" in decode(r.stderr)
    r = c.run("clone", "--name", "../evil", "b")
    assert r.returncode != 0 and "invalid box name" in decode(r.stderr)
    r = c.run("clone", "-n", "257", "b")
    assert r.returncode != 0 and "1 to 256" in decode(r.stderr)
    assert names(c) == ["b", "web-1", "web-2", "web-3", "x-2"]
    # an unchanged box cloned again reuses its snapshot: the chain does not grow
    c.run("clone", "b", check=0)
    assert [s["name"] for s in snapshots(c)] == ["b-1"]
    # a clone of a snapshot; generated names count on from the smallest free one
    c.run("snapshot", "create", "--name", "gold", "x-2", check=0)
    c.run("clone", "gold", check=0)
    c.run("clone", "gold", check=0)
    assert "gold-clone-1" in names(c) and "gold-clone-2" in names(c)
    # a snapshot clones stand on cannot be removed, and says who stands on it
    r = c.run("snapshot", "rm", "gold")
    assert r.returncode != 0 and "in use" in decode(r.stderr) and "gold-clone-1" in decode(r.stderr)
    c.run("rm", "gold-clone-1", "gold-clone-2", "x-2", check=0)
    c.run("snapshot", "rm", "gold", check=0)
    inv.assert_clean(c.home, "after the clones")


def test_clone_of_a_running_box_is_refused_clearly(cocoon):
    """A running box holds its box lock (boxes/<id>/vmm.pid, flock) for as long as its
    monitor lives: holding it here is what a running box looks like to clone."""
    cocoon.run("create", "--name", "r", check=0)
    with open(os.path.join(cocoon.home, "boxes", box_id(cocoon, "r"), "vmm.pid"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = cocoon.run("clone", "r")
    assert r.returncode != 0 and "stop it before cloning it" in decode(r.stderr), decode(r.stderr)
    assert names(cocoon) == ["r"] and snapshots(cocoon) == []


@pytest.mark.parametrize("point", ["CLONE_BUILD", "CLONE_PUBLISH", "CLONE_ROW"])
def test_kill_clone(cocoon, point):
    """Killed inside a clone: the clone is whole (after its row) or not there; the
    source and its snapshot are intact; doctor --fix leaves the home clean."""
    c = cocoon
    c.run("create", "--name", "k", check=0)
    r = c.run("clone", "--name", "kc", "k", env={"COCOON_TEST_CRASH_AT": point})
    assert r.returncode == KILLED, decode(r.stderr)
    inv.assert_consistent(c.home, f"clone killed at {point}")
    assert names(c) == (["k", "kc"] if point == "CLONE_ROW" else ["k"])
    assert [s["name"] for s in snapshots(c)] == ["k-1"]  # committed before the clone began
    inv.doctor_fix(c)
    inv.assert_clean(c.home, f"clone killed at {point}, then doctor --fix")
    if point != "CLONE_ROW":  # the name is free
        c.run("clone", "--name", "kc", "k", check=0)
    inv.assert_clean(c.home, "after the clone")


# ---- REST: clone, export, import ----

def test_rest_clone_export_import(cocoon, tmp_path):
    c = cocoon
    with ServeServer(c) as server:
        api = server.client(check=check_response)
        config = api.request("GET", "/v1/config").json
        caps = config["capabilities"]
        assert caps["snapshots_enabled"] and caps["clone_enabled"] and caps["export_enabled"] and caps["import_enabled"]
        src = api.request("POST", "/v1/boxes", json={"name": "src"}).json["box_id"]
        r = api.request("POST", f"/v1/boxes/{src}/clone", json={"name": "c1"})
        assert r.status == 201 and r.json["name"] == "c1" and r.json["box_id"] != src, r
        assert r.headers["Location"] == f"/v1/boxes/{r.json['box_id']}"
        r = api.request("POST", f"/v1/boxes/{src}/clone")  # BoxLite sends no name: one is made
        assert r.status == 201 and r.json["name"] == "src-clone-1", r
        r = api.request("POST", f"/v1/boxes/{src}/clone", json={"name": "c1"})
        assert r.status == 409 and r.json["error"]["code"] == "already_exists", r
        r = api.request("POST", f"/v1/boxes/{src}/clone", json={"nmae": "x"})
        assert r.status == 400, r
        r = api.request("POST", "/v1/boxes/nosuch/clone", json={})
        assert r.status == 404, r
        api.request("POST", f"/v1/boxes/{src}/snapshots", json={"name": "gold"})
        r = api.request("POST", f"/v1/boxes/{src}/clone", json={"name": "g1", "snapshot": "gold"})
        assert r.status == 201, r
        r = api.request("POST", f"/v1/boxes/{r.json['box_id']}/clone", json={"snapshot": "gold"})
        assert r.status == 404, r  # gold is src's, not g1's

        r = api.request("POST", f"/v1/boxes/{src}/export", json={})
        assert r.status == 200 and r.headers["Content-Type"] == "application/octet-stream", r
        archive = r.body
        assert archive[:4] == b"\x28\xb5\x2f\xfd"  # zstd
        r = api.request("POST", f"/v1/boxes/{src}/export", json={"snapshot": "gold"})
        assert r.status == 200 and r.body[:4] == b"\x28\xb5\x2f\xfd", r
        before = c.box_dirs()
        r = api.request("POST", "/v1/boxes/import?name=imp", body=archive,
                        headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201 and r.json["name"] == "imp" and r.json["status"] == "configured", r
        assert len(c.box_dirs()) == len(before) + 1
        r = api.request("POST", "/v1/boxes/import?name=imp", body=archive,
                        headers={"Content-Type": "application/octet-stream"})
        assert r.status == 409 and r.json["error"]["code"] == "already_exists", r
        # corrupt and truncated archives: 400 with the import's reason, nothing left
        corrupt = bytearray(archive)
        corrupt[len(corrupt) // 3] ^= 0xFF
        for bad in (bytes(corrupt), archive[: len(archive) // 2], b"not an archive"):
            r = api.request("POST", "/v1/boxes/import?name=bad", body=bad,
                            headers={"Content-Type": "application/octet-stream"})
            assert r.status == 400 and r.json["error"]["message"].startswith("the body "), r
        r = api.request("POST", "/v1/boxes/import", body=b"", headers={"Content-Type": "application/octet-stream"})
        assert r.status == 400, r
        assert len(c.box_dirs()) == len(before) + 1 and "bad" not in names(c)
        assert os.listdir(os.path.join(c.home, "tmp")) == []  # spools and exports are gone
        r = api.request("GET", "/v1/boxes/import")
        assert r.status == 405, r
    c.run("rm", *out(c.run("ls", "-a", "-q", check=0)).split(), check=0)
    for s in reversed(snapshots(c)):
        c.run("snapshot", "rm", s["id"], check=0)
    inv.assert_clean(c.home, "after REST clone, export and import")


def test_boxlite_client_clone_export_import(tmp_path):
    """BoxLite's published client (cloneBox, export, importBox, snapshot.*) against a
    cocoon-serve on loopback TCP with a token, on boxes that never boot."""
    modules = node_modules()
    scratch = tmp_path / "client"
    scratch.mkdir()
    with tcp_serve(tmp_path, TOKEN) as served:
        env = dict(os.environ, BOXLITE_URL=served.url, BOXLITE_TOKEN=TOKEN, BOXLITE_NODE_MODULES=modules,
                   BOXLITE_TMP=str(scratch))
        p = subprocess.run(["node", BOXLITE_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    results = {}
    for line in p.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        results[rec.get("check")] = rec
    failed = [f"{n}: {results[n]['detail']}" if n in results else f"{n}: never reported" for n in BOXLITE_CHECKS
              if not results.get(n, {}).get("ok")]
    assert not failed and not served.problems, "\n".join(failed + served.problems) + \
        f"\nclient stderr: {p.stderr[-2000:]}\nserver log: {served.server_log[-2000:]}"
