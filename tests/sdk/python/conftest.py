"""Fixtures of the Python SDK suite: every test that takes `client` (or `box`) runs once
per transport, embedded (libcocoon of the build in this process) and remote (a private
`cocoon serve --socket` of the build, started in a temporary home and stopped at the
end). Each transport has its own COCOON_HOME; at the end no box process of either may be
left running.

Environment (scripts/test-sdk-python sets these):
  COCOON_BUILD      the build directory (default build): bin/cocoon, bin/cocoon-vmm, lib/libcocoon.so
  COCOON_SHARE_DIR  kernel, initramfs, images (default build/share/cocoon)
"""
import importlib.util
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.path.abspath(os.environ.get("COCOON_BUILD") or os.path.join(REPO, "build"))
SHARE_DIR = os.path.abspath(os.environ.get("COCOON_SHARE_DIR") or os.path.join(REPO, "build", "share", "cocoon"))
LIB = os.path.join(BUILD, "lib", "libcocoon.so")
COCOON = os.path.join(BUILD, "bin", "cocoon")
VMM = os.path.join(BUILD, "bin", "cocoon-vmm")
INTEGRATION = os.path.join(REPO, "tests", "integration")

sys.path.insert(0, os.path.join(REPO, "sdk", "python"))
sys.path.insert(0, INTEGRATION)  # small_images, registry_fixture, layers

import cocoon  # noqa: E402


def _integration_conftest():
    spec = importlib.util.spec_from_file_location("cocoon_integration_conftest", os.path.join(INTEGRATION,
                                                                                             "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ic = _integration_conftest()


def guest_missing():
    return _ic.vm_missing_reason("qemu")


TRANSPORTS = ("embedded", "remote")


class Server:
    """A private cocoon serve on a unix socket in home."""

    def __init__(self, home):
        self.home = home
        self.socket = os.path.join(home, "cocoon.sock")
        self.log = os.path.join(home, "serve.log")
        env = dict(os.environ, COCOON_HOME=home, COCOON_SHARE_DIR=SHARE_DIR, COCOON_VMM=VMM)
        self.proc = subprocess.Popen([COCOON, "serve", "--socket", self.socket, "--log-file", self.log],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "serve.stderr"), "wb"),
                                     env=env)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("cocoon serve did not listen: " + open(os.path.join(home, "serve.stderr")).read())
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def homes(tmp_path_factory):
    """{transport: COCOON_HOME}; after the session, no box process of them is left."""
    out = {t: str(tmp_path_factory.mktemp(t[:3])) for t in TRANSPORTS}
    for h in out.values():
        os.chmod(h, 0o700)
    yield out
    left = {}
    for h in out.values():
        left.update(_ic.kill_leftovers(h))
    assert not left, f"box processes left running (killed now): {left}"


@pytest.fixture(scope="session", params=TRANSPORTS)
def client(request, homes):
    """A cocoon.Client of each transport."""
    reason = guest_missing()
    if reason:
        pytest.skip(reason)
    home = homes[request.param]
    if request.param == "embedded":
        c = cocoon.Client(home=home, share_dir=SHARE_DIR, vmm=VMM, lib=LIB)
        yield c
        c.close()
        return
    server = Server(home)
    c = cocoon.Client(socket=server.socket)
    try:
        yield c
    finally:
        c.close()
        for b in cocoon.Client(home=home, share_dir=SHARE_DIR, vmm=VMM, lib=LIB).boxes():
            if b.status == "running":
                try:
                    cocoon.Box.get(b.id, client=cocoon.Client(home=home, share_dir=SHARE_DIR, vmm=VMM,
                                                              lib=LIB)).remove(force=True)
                except cocoon.CocoonError:
                    pass
        server.stop()


@pytest.fixture(scope="session")
def transport(client):
    return client.transport


@pytest.fixture(scope="module")
def box(client):
    """A running ephemeral box of the default image, shared by a module's tests."""
    with cocoon.Box.create(client=client, memory="512M", ephemeral=True) as b:
        yield b
