"""A box's main process and detached execs through the SDK, on both transports:
Box.create(command=..., restart=...), main_status(), main_logs()/logs() (tail, since,
stream, follow left early), exec_detached with its status, output and kill, AsyncBox's
flavour, and the refusals (a malformed restart policy or since, logs of a box without a
main process, an unknown detached exec)."""
import asyncio
import time

import pytest

import cocoon
from cocoon import AsyncBox, Box

WAIT_S = 180  # bounds a hang only


def wait_for(what, check, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout} s for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def svc(client):
    box = Box.create(client=client, memory="256M", env={"WHO": "sdk"}, workdir="/tmp", restart="on-failure:2",
                     command=["sh", "-c", "echo hello $WHO $(pwd); echo warn >&2; "
                              "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"])
    try:
        wait_for("the main process to run", lambda: (box.main_status() or cocoon.MainStatus("")).running)
        wait_for("tick 3", lambda: any(x.text == "tick 3" for x in box.main_logs(stream="stdout")))
        yield box
    finally:
        box.remove(force=True)


def test_main_status_and_logs(svc):
    st = svc.main_status()
    assert st.state == "running" and st.pid and st.exit_code is None and st.restart == "on-failure:2", st
    assert st.command.startswith("sh -c echo hello"), st
    out = [x.text for x in svc.main_logs(stream="stdout")]
    assert out[:2] == ["hello sdk /tmp", "tick 1"], out[:3]
    assert [x.text for x in svc.main_logs(stream="stderr")] == ["warn"]
    last = list(svc.main_logs(tail=1, stream="stdout"))
    assert len(last) == 1 and last[0].text.startswith("tick") and last[0].time.endswith("Z"), last
    tick3 = next(x for x in svc.main_logs(stream="stdout") if x.text == "tick 3")
    since = [x.text for x in svc.main_logs(since=tick3.time, stream="stdout")]
    assert since[0] == "tick 3", since[:2]
    assert list(svc.main_logs(since="2999-01-01")) == []
    assert any(x.text == "warn" for x in svc.logs())  # logs() of a box with a main process: its output
    assert isinstance(svc.logs(console=True), str)


def test_follow_left_early(svc):
    seen = []
    for line in svc.main_logs(follow=True, tail=0, stream="stdout"):
        seen.append(line.text)
        if len(seen) == 2:
            break  # the follower stops; the box goes on
    assert all(t.startswith("tick") for t in seen), seen
    assert svc.main_status().running


def test_detached_execs(svc):
    xid = svc.exec_detached(["sh", "-c", "echo a; echo b >&2; exit 4"])
    assert isinstance(xid, int) and xid > 0
    st = wait_for("the detached exec to end", lambda: (lambda s: s if s.state == "exited" else None)(
        svc.detached_status(xid)))
    assert (st.exit_code, st.id) == (4, xid), st
    assert sorted(x.text for x in svc.detached_logs(xid)) == ["a", "b"]
    assert [x.text for x in svc.detached_logs(xid, stream="stderr")] == ["b"]
    with pytest.raises(cocoon.InvalidState):
        svc.kill_detached(xid)
    long_one = svc.exec_detached("sleep 600")
    svc.kill_detached(long_one, 15)
    st = wait_for("the killed exec to end", lambda: (lambda s: s if s.state == "exited" else None)(
        svc.detached_status(long_one)))
    assert st.signal == 15, st
    with pytest.raises(cocoon.NotFound):
        svc.detached_status(12345678)


def test_refusals(client, svc):
    with pytest.raises(cocoon.InvalidArgument):
        Box.create(client=client, start=False, command=["true"], restart="sometimes", ephemeral=True)
    with pytest.raises(cocoon.InvalidArgument):
        Box(restart="always", client=client)
    with pytest.raises(cocoon.InvalidArgument):
        list(svc.main_logs(since="yesterday"))
    plain = Box.create(client=client, start=False, ephemeral=True)
    try:
        assert plain.main_status() is None
        with pytest.raises(cocoon.InvalidState):
            list(plain.main_logs())
        assert isinstance(plain.logs(), str)  # the console, as before
    finally:
        plain.remove(force=True)


def test_async_main_process(client, svc):
    async def main():
        box = await AsyncBox.get(svc.id, client=client)
        assert (await box.main_status()).running
        lines = [x.text async for x in box.main_logs(stream="stderr")]
        assert lines == ["warn"]
        xid = await box.exec_detached(["sh", "-c", "echo async-detached"])
        for _ in range(600):
            if (await box.detached_status(xid)).state == "exited":
                break
            await asyncio.sleep(0.1)
        assert [x.text async for x in box.detached_logs(xid)] == ["async-detached"]
        async for line in box.main_logs(follow=True, tail=0, stream="stdout"):
            assert line.text.startswith("tick")
            break
    asyncio.run(main())
