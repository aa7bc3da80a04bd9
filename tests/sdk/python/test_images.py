"""Images through the SDK, on both transports: load a `docker save` tarball, pull from a
registry on loopback with progress, list, get with config, remove (refused while used)."""
import pytest

import cocoon
import small_images
from registry_fixture import FakeRegistry

pytestmark = pytest.mark.skipif(not small_images.available(), reason="skipped: no /bin/busybox for the small images")


def test_load_list_get_remove(client, tmp_path):
    path = small_images.save_tarball(str(tmp_path / "img.tar"), "sdk/loaded:1")
    loaded = client.images.load(path)
    assert [i.reference for i in loaded] == ["docker.io/sdk/loaded:1"]
    assert "docker.io/sdk/loaded:1" in [i.reference for i in client.images.list()]
    info = client.images.get("sdk/loaded:1")
    assert info.id == loaded[0].id and not info.builtin and info.size > 0
    assert client.images.config("sdk/loaded:1")["config"]["Cmd"] == ["cat", "/etc/image"]
    with cocoon.Box.create("sdk/loaded:1", client=client, ephemeral=True) as box:
        assert box.exec(["cat", "/etc/image"]).stdout == "sdk/loaded:1\n"
        assert box.exec(["sh", "-c", "echo $PATH"]).stdout == "/bin\n"  # the image's Env
        with pytest.raises(cocoon.InvalidState):
            client.images.remove("sdk/loaded:1")
    client.images.remove("sdk/loaded:1")
    assert not client.images.exists("sdk/loaded:1")
    with pytest.raises(cocoon.NotFound):
        client.images.get("sdk/loaded:1")


def test_pull_with_progress(client):
    reg = FakeRegistry()
    try:
        ref = small_images.serve(reg, "sdk/pulled", "2", big=300000)
        seen = []
        info = client.images.pull(ref, insecure=True, progress=seen.append)
        assert info.reference.endswith("sdk/pulled:2")
        assert seen and all(isinstance(p, cocoon.PullProgress) for p in seen)
        assert any(p.done == p.total and p.total > 0 for p in seen)
        with pytest.raises(cocoon.CocoonError):
            client.images.pull(f"{reg.host}/sdk/missing:1", insecure=True)
        client.images.remove(ref)
    finally:
        reg.stop()
