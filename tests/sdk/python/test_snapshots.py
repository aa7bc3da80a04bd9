"""Disk snapshots, clones, export and import through the SDK, on both transports. One
box per transport (of a small busybox image when /bin/busybox is here, so exports are
small), created without booting: snapshots, restores, clones and exports need a stopped
box. It boots once, for the refusals a running box gets. The data a restore, a clone or
an import brings back is checked end to end by tests/integration/test_snapshot.py and
test_clone.py; these check the SDK's calls, values and typed errors."""
import os

import pytest

import cocoon
import small_images

IMAGE = "sdk/snap:1"


@pytest.fixture(scope="module")
def stopped(client, tmp_path_factory):
    """A stopped box (never booted) and the image it was made of."""
    image = None
    if small_images.available():
        tarball = small_images.save_tarball(str(tmp_path_factory.mktemp("img") / "snap.tar"), IMAGE)
        image = client.images.load(tarball)[0].reference
    b = cocoon.Box.create(image, client=client, start=False, memory="256M")
    yield b
    try:
        b.remove(force=True)
    except cocoon.CocoonError:
        pass


def test_snapshot_list_restore_remove(client, stopped):
    first = stopped.snapshot("sdk-first")
    assert isinstance(first, cocoon.Snapshot)
    assert (first.name, first.box_id, first.parent, first.depth, first.users) == ("sdk-first", stopped.id, None, 1, 1)
    assert first.virtual_size > 0 and first.created > 0 and first.image
    second = stopped.snapshot()
    assert second.name.startswith(stopped.id) and second.parent == first.id and second.depth == 2
    assert [s.id for s in stopped.snapshots()] == [first.id, second.id]
    assert [s.id for s in client.snapshots.list(stopped.id)] == [first.id, second.id]
    assert {first.id, second.id} <= {s.id for s in client.snapshots.list()}
    got = client.snapshots.get("sdk-first")
    assert got.id == first.id and got.users == 2  # second and the box (through second) stand on it
    with pytest.raises(cocoon.AlreadyExists):
        stopped.snapshot("sdk-first")

    # second and the box stand on first: it stays
    with pytest.raises(cocoon.SnapshotInUse, match="in use by") as e:
        client.snapshots.remove(first)
    assert isinstance(e.value, cocoon.InvalidState)
    assert stopped.restore("sdk-first").id == first.id
    client.snapshots.remove(second)  # nothing stands on it since the restore
    assert [s.id for s in stopped.snapshots()] == [first.id]

    done = stopped.compact()  # the box stands on first: one layer over the image after
    assert (done["layers_before"], done["layers_after"], done["released"]) == (2, 1, [first.id]), done
    assert client.snapshots.get("sdk-first").users == 0
    assert stopped.compact()["released"] == []  # nothing left to merge

    with pytest.raises(cocoon.SnapshotNotFound) as e:
        stopped.restore(second.id)
    assert isinstance(e.value, cocoon.NotFound)
    with pytest.raises(cocoon.SnapshotNotFound):
        client.snapshots.get("no-such-snapshot")
    with pytest.raises(cocoon.SnapshotNotFound):
        client.snapshots.remove("no-such-snapshot")


def test_refused_while_running(client, stopped, tmp_path):
    # (a snapshot of a running box is taken live on the qemu backend:
    # tests/integration/test_live_snapshot.py)
    stopped.start()
    try:
        with pytest.raises(cocoon.BoxRunning, match="stop it"):
            stopped.restore("sdk-first")
        with pytest.raises(cocoon.BoxRunning):
            stopped.export(tmp_path / "running.cocoon")
        with pytest.raises(cocoon.BoxRunning):
            stopped.clone()
        with pytest.raises(cocoon.BoxRunning):
            stopped.compact()
    finally:
        stopped.stop()
    assert "while-running" not in [s.name for s in stopped.snapshots()]
    assert not os.listdir(tmp_path)


def test_clone(client, stopped):
    twin = stopped.clone("sdk-twin")
    try:
        info = twin.info()
        assert twin.id != stopped.id and info.name == "sdk-twin" and info.status != "running"
        assert info.image == stopped.info().image
        other = stopped.clone(snapshot="sdk-first")
        assert other.name == "sdk-first-clone-1", other.name  # "<source>-clone-<k>", the smallest free k
        other.remove()
        with pytest.raises(cocoon.SnapshotNotFound):
            stopped.clone(snapshot="no-such-snapshot")
        with pytest.raises(cocoon.AlreadyExists):
            stopped.clone("sdk-twin")
    finally:
        twin.remove()


def test_export_import(client, stopped, tmp_path):
    archive = tmp_path / "box.cocoon"
    stopped.export(archive)
    assert archive.stat().st_size > 0
    assert not [f for f in os.listdir(tmp_path) if ".partial-" in f]
    imported = client.import_box(archive, name="sdk-imported")
    try:
        info = imported.info()
        assert imported.id != stopped.id and info.name == "sdk-imported" and info.status != "running"
        assert info.image == stopped.info().image
        # a snapshot exports too (by the client or its box); an import without a name has none
        client.snapshots.export("sdk-first", tmp_path / "snap.cocoon")
        stopped.export(tmp_path / "snap2.cocoon", snapshot="sdk-first")
        other = client.import_box(tmp_path / "snap.cocoon")
        assert other.info().name is None
        other.remove()
    finally:
        imported.remove()
    # a truncated archive is refused and leaves no box behind
    before = {b.id for b in client.boxes()}
    data = archive.read_bytes()
    (tmp_path / "cut.cocoon").write_bytes(data[: len(data) // 2])
    with pytest.raises(cocoon.InvalidArgument, match="cut.cocoon|archive|export"):
        client.import_box(tmp_path / "cut.cocoon", name="sdk-cut")
    assert {b.id for b in client.boxes()} == before
    with pytest.raises(cocoon.NotFound):
        client.import_box(tmp_path / "missing.cocoon")
    with pytest.raises(cocoon.SnapshotNotFound):
        stopped.export(tmp_path / "none.cocoon", snapshot="no-such-snapshot")


def test_fork(client, stopped):
    """Box.fork on a running box (qemu backend): children that run, refusals typed."""
    stopped.start()
    kids = []
    try:
        kids = stopped.fork(2)
        assert len(kids) == 2 and len({k.id for k in kids}) == 2
        for k in kids:
            assert k.running and k.id != stopped.id
            assert k.run(["sh", "-c", "hostname"]).stdout.strip() == f"cocoon-{k.id[:6]}"
        kids += stopped.fork()  # again, in the same run
        assert len(kids) == 3 and kids[2].running
    finally:
        for k in kids:
            k.remove(force=True)
        stopped.stop()
    with pytest.raises(cocoon.InvalidState, match="not running"):
        stopped.fork()
