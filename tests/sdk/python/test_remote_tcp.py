"""The remote transport over TCP with a bearer token (cocoon serve --listen): a right
token works, a wrong one is PermissionDenied; COCOON_URL/COCOON_TOKEN make Client() remote."""
import os
import socket
import subprocess
import time

import pytest

import cocoon
from conftest import COCOON, SHARE_DIR, VMM, guest_missing


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_server(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    token = tmp_path / "token"
    token.write_text("sdk-test-token-0123456789abcdef\n")
    token.chmod(0o600)
    port = _port()
    env = dict(os.environ, COCOON_HOME=str(home), COCOON_SHARE_DIR=SHARE_DIR, COCOON_VMM=VMM)
    p = subprocess.Popen([COCOON, "serve", "--socket", "none", "--listen", f"127.0.0.1:{port}", "--token-file",
                          str(token), "--log-file", "none"], env=env, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if p.poll() is not None:
                pytest.fail("cocoon serve exited: " + p.stderr.read().decode())
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", "sdk-test-token-0123456789abcdef"
    p.terminate()
    p.wait(30)


def test_url_and_token(tcp_server, monkeypatch):
    url, token = tcp_server
    with pytest.raises(cocoon.PermissionDenied):
        cocoon.Client(url=url, token="wrong").boxes()
    monkeypatch.setenv("COCOON_URL", url)
    monkeypatch.setenv("COCOON_TOKEN", token)
    client = cocoon.Client()
    assert client.transport == "remote" and client.boxes() == []
    assert [i.id for i in client.images.list()] in ([], ["local:default"])
    if guest_missing():
        pytest.skip(guest_missing())
    with cocoon.Box.create(client=client, ephemeral=True) as box:
        assert box.exec(["echo", "over tcp"]).stdout == "over tcp\n"
