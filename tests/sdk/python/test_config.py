"""cocoon.yaml through the SDK: load_config (libcocoon's reader) and Box.from_config with
named scripts, on both transports."""
import pytest

import cocoon

YAML = """\
boxes:
  web:
    cpus: 2
    memory: 640M
    env: {GREETING: "${SDK_TEST_GREETING:-hello}"}
    workdir: /tmp
    ephemeral: true
    network:
      mode: none
    scripts:
      hi: echo "$GREETING from $(pwd)" "$@"
      fail: [sh, -c, "exit 3"]
  other:
    image: default
"""


def _has_config():
    try:
        from cocoon import _capi
        return _capi.lib().has("cocoon_config_load")
    except cocoon.CocoonError:
        return False


pytestmark = pytest.mark.skipif(not _has_config(), reason="skipped: this libcocoon has no cocoon_config_load")


def test_load_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SDK_TEST_GREETING", "bonjour")
    (tmp_path / "cocoon.yaml").write_text(YAML)
    cfg = cocoon.load_config(tmp_path / "cocoon.yaml")
    assert cfg.file == str(tmp_path / "cocoon.yaml") and [b.name for b in cfg.boxes] == ["web", "other"]
    web = cfg.box("web")
    assert (web.cpus, web.memory_mib, web.env, web.workdir, web.network.mode) == (2, 640, {"GREETING": "bonjour"},
                                                                                   "/tmp", "none")
    assert web.scripts["fail"] == ["sh", "-c", "exit 3"] and web.digest.startswith("sha256:")
    with pytest.raises(cocoon.NotFound):
        cfg.box("nope")
    (tmp_path / "bad.yaml").write_text("boxes:\n  web:\n    cpu: 2\n")
    with pytest.raises(cocoon.InvalidArgument) as e:
        cocoon.load_config(tmp_path / "bad.yaml")
    assert "bad.yaml:3" in str(e.value)


def test_box_from_config(client, tmp_path):
    (tmp_path / "cocoon.yaml").write_text(YAML)
    with cocoon.Box.from_config(tmp_path / "cocoon.yaml", "web", client=client) as box:
        info = box.info()
        assert (info.name, info.cpus, info.memory_mib) == ("web", 2, 640)
        assert box.script("hi", "and", "more").stdout == "hello from /tmp and more\n"
        assert box.script("fail").exit_code == 3
        with pytest.raises(cocoon.NotFound):
            box.script("nope")
