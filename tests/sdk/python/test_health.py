"""Health checks and waiting through the SDK, on both transports: Box.create(healthcheck=
...), health() before and after the check passed, wait("healthy"/"running"/"exited")
returning the main process's exit code, cocoon.Timeout, AsyncBox's flavour, and the
refusals (a malformed healthcheck, an unknown condition, healthy without a check)."""
import asyncio

import pytest

import cocoon
from cocoon import AsyncBox, Box

WAIT_S = 180  # bounds a hang only


def test_healthcheck_wait_healthy_then_exited(client):
    box = Box.create(client=client, memory="128M",
                     command=["sh", "-c", "sleep 1; touch /tmp/ok; while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 3"],
                     healthcheck={"cmd": "test -f /tmp/ok", "interval": 1, "timeout": 5, "retries": 2})
    try:
        h = box.health()
        assert (h.test, h.interval, h.timeout, h.retries, h.on_failure) == \
            ("/bin/sh -c test -f /tmp/ok", 1.0, 5.0, 2, "none"), h
        assert box.wait("running", timeout=WAIT_S) is None
        assert box.wait("healthy", timeout=WAIT_S) is None
        h = box.health()
        assert h.healthy and h.last_exit_code == 0 and h.failing_streak == 0, h
        with pytest.raises(cocoon.Timeout):
            box.wait("exited", timeout=1)  # the main process waits for /tmp/stop
        box.run(["touch", "/tmp/stop"])
        assert box.wait("exited", timeout=WAIT_S) == 3
        assert box.main_status().exit_code == 3
        assert box.health().status is None  # stopped: the check's state is gone
    finally:
        box.remove(force=True)


def test_wait_without_a_check_and_bad_input(client):
    with pytest.raises(cocoon.InvalidArgument, match="cmd"):
        Box(healthcheck={"interval": 3}, client=client)
    with pytest.raises(cocoon.InvalidArgument, match="every"):
        Box(healthcheck={"cmd": "true", "every": 3}, client=client)
    with pytest.raises(cocoon.InvalidArgument, match="retries"):
        Box(healthcheck={"cmd": "true", "retries": 0}, client=client)
    box = Box.create(client=client, memory="128M", command=["sh", "-c", "exit 4"])
    try:
        assert box.health() is None
        with pytest.raises(cocoon.InvalidArgument, match="condition"):
            box.wait("sideways")
        assert box.wait("exited", timeout=WAIT_S) == 4
        with pytest.raises(cocoon.CocoonError):
            box.wait("healthy", timeout=WAIT_S)  # no check (and stopped)
    finally:
        box.remove(force=True)


def test_async_health_and_wait(client):
    async def go():
        box = await AsyncBox.create(client=client, memory="128M", command=["sh", "-c", "sleep 2; exit 6"],
                                    healthcheck={"cmd": ["true"], "interval": 1})
        try:
            assert (await box.health()).test == "true"
            return await box.wait(timeout=WAIT_S)
        finally:
            await box.remove(force=True)
    assert asyncio.run(asyncio.wait_for(go(), WAIT_S * 2)) == 6
