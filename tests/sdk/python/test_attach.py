"""Attaching to a box's main process through the SDK (Box.attach), on both transports
(embedded: cocoon_attach_* over pipes; remote: the WebSocket GET /boxes/{id}/attach).
One box per transport, of the small busybox image when /bin/busybox is here, whose main
process is `sh` on a terminal with open stdin (`cocoon run -d -t -i`): a line written is
run and its output read back, the terminal resized, a detach leaves the shell running,
a second attachment finds it (and the 8-attacher bound), a signal it traps ends it with
its code;
then the refusals once it ended. AsyncBox's flavour rides on the same box."""
import asyncio
import threading
import time

import pytest

import cocoon
import small_images
from cocoon import AsyncBox, Box

WAIT_S = 60  # bounds a hang only
IMAGE = "sdk/attach:1"


def wait_for(what, check, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout} s for {what}")
        time.sleep(0.1)


class Reader:
    """Iterates an attachment in a thread, keeping what came (the test's reads are bounded)."""

    def __init__(self, att):
        self.att = att
        self.data = b""
        self.streams = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for chunk in self.att:
            with self.lock:
                self.data += chunk.data
                self.streams.add(chunk.stream)

    def until(self, text):
        return wait_for(f"{text!r} in the output", lambda: text.encode() in self.data)


async def async_round_trip(shell):
    """AsyncBox.attach: a line in, its answer out of `async for`, a detach."""
    box = await AsyncBox.get(shell.id, client=shell.client)
    try:
        async with await box.attach() as a:
            await a.write("echo async $((2*3))\n")
            seen = b""
            async for chunk in a:
                seen += chunk.data
                if b"async 6" in seen:
                    break
            await a.detach()
            assert await a.wait(timeout=WAIT_S) is None
    finally:
        await box.close()


@pytest.fixture(scope="module")
def shell(client, tmp_path_factory):
    image = None
    if small_images.available():
        tarball = small_images.save_tarball(str(tmp_path_factory.mktemp("img") / "attach.tar"), IMAGE)
        image = client.images.load(tarball)[0].reference
    box = Box.create(image, client=client, memory="256M", command=["sh"], tty=True, open_stdin=True)
    try:
        # At once, while the main process may still be starting: input written then waits
        # in the monitor for the agent's STARTED (it used to be dropped).
        with box.attach() as early:
            reader = Reader(early)
            early.write("echo early $((6*7))\n")
            box.early_output = wait_for("the early line's answer", lambda: b"early 42" in reader.data and reader.data)
        wait_for("the main process to run", lambda: (box.main_status() or cocoon.MainStatus("")).running)
        yield box
    finally:
        box.remove(force=True)


def test_create_refuses_tty_without_main():
    with pytest.raises(cocoon.InvalidArgument, match="for a main process"):
        Box(tty=True)
    with pytest.raises(cocoon.InvalidArgument, match="for a main process"):
        Box(open_stdin=True)


def test_attach_write_resize_detach_reattach_exit(shell):
    with shell.attach(rows=30, cols=100) as a:
        r = Reader(a)
        a.write("echo hi $((6*7))\n")
        r.until("hi 42")  # the shell's answer: the typed line (echoed) has $((6*7))
        a.write(b"busybox stty size\n")
        r.until("30 100")
        a.resize(40, 120)
        a.write("busybox stty size\n")
        r.until("40 120")
        assert r.streams == {"stdout"}  # a terminal merges stderr
        assert a.attached
        a.detach()
        assert a.wait(timeout=WAIT_S) is None
        assert not a.attached
        with pytest.raises(cocoon.InvalidState, match="ended"):
            a.write("echo lost\n")
    assert shell.main_status().running  # a detach leaves it running
    asyncio.run(async_round_trip(shell))

    with pytest.raises(cocoon.InvalidArgument):
        shell.attach(rows=70000, cols=80)

    got = []
    b = shell.attach(on_stdout=got.append)
    others = []
    try:
        others = [shell.attach() for _ in range(7)]  # 8 with b: the monitor's bound
        with pytest.raises(cocoon.ResourceExhausted, match="already attached"):
            shell.attach()
    finally:
        for o in others:
            o.detach()
            assert o.wait(timeout=WAIT_S) is None
    b.write("echo again $((1+1))\n")
    wait_for("the second attachment's output", lambda: b"again 2" in b"".join(got))
    b.write("trap 'exit 7' USR1; echo trapped\n")
    wait_for("the trap", lambda: b"\ntrapped" in b"".join(got))
    with pytest.raises(cocoon.InvalidArgument):
        b.signal(65)
    b.signal(10)  # SIGUSR1 to the main process: its trap ends it once its line editor returns
    b.write("\n")
    assert b.wait(timeout=WAIT_S) == 7
    assert shell.wait("exited", timeout=WAIT_S) == 7  # its end stops the box (restart policy "no")
    assert shell.main_status().exit_code == 7

    with pytest.raises(cocoon.InvalidState, match="not running"):
        shell.attach()


def test_attach_refusals(client, shell):
    plain = Box.create(client=client, memory="256M", start=False)
    try:
        with pytest.raises(cocoon.InvalidState, match="not running"):
            plain.attach()
    finally:
        plain.remove(force=True)
