"""`cocoon serve` and a box's main process (issue 19): create with command/restart, the
Box object's "main", GET /logs of the main process (tail, since, timestamps, stream,
NDJSON, follow), followers that leave mid-stream, detached execs (/detached: start,
status, output, kill), and the bad cases each refused with a clear 4xx that changes
nothing. One home, one server, boxes shared by the tests in file order."""
import asyncio
import json
import os

import pytest

from test_mainproc import wait_for
from test_serve import Api, assert_error, module_home, module_server

WAIT_S = 180  # bounds a hang only: a boot under TCG on a loaded host takes seconds


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    yield from module_home(tmp_path_factory, "serve-main")


@pytest.fixture(scope="module")
def server(home):
    yield from module_server(home)


@pytest.fixture(scope="module")
def api(server):
    return Api(socket_path=server.socket)


def box(api, name):
    r = api.get(f"/v1/boxes/{name}")
    assert r.status == 200, r
    return r.data


def main_state(api, name, *states):
    return wait_for(f"{name}'s main process to be {states}",
                    lambda: (lambda m: m if m and m["state"] in states else None)(box(api, name)["main"]))


def boxes(home):
    return sorted(b["name"] for b in json.loads(home.run("ls", "-a", "--json").stdout or b"[]"))


@pytest.fixture(scope="module")
def svc(api):
    """A service: a line on stdout and one on stderr, then a tick every 0.5 s."""
    r = api.post("/v1/boxes", {"name": "svc", "memory_mib": 256, "auto_start": True, "env": {"WHO": "svc-env"},
                               "working_dir": "/tmp", "restart": "on-failure:3",
                               "command": ["sh", "-c", "echo out $WHO $(pwd); echo err >&2; "
                                           "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"]})
    assert r.status == 201, r
    assert r.data["main"]["restart"] == "on-failure:3", r.data
    main_state(api, "svc", "running")
    wait_for("a tick", lambda: b"tick 2" in api.get("/v1/boxes/svc/logs").body)
    return "svc"


def test_create_with_a_main_process_shows_its_status(api, svc):
    m = box(api, svc)["main"]
    assert m["state"] == "running" and m["pid"] > 0 and m["exit_code"] is None, m
    assert m["command"].startswith("sh -c echo out"), m
    assert m["restarts"] == 0 and m["started_at"].endswith("Z") and m["finished_at"] is None, m


def test_logs_of_the_main_process(api, svc):
    # stdout and stderr are two pipes in the box: their lines interleave in any order
    lines = api.get(f"/v1/boxes/{svc}/logs").body.decode().splitlines()
    assert sorted(lines[:3]) == ["err", "out svc-env /tmp", "tick 1"], lines[:3]
    assert api.get(f"/v1/boxes/{svc}/logs?stream=stdout").body.startswith(b"out svc-env /tmp\ntick 1\n")
    only_err = api.get(f"/v1/boxes/{svc}/logs?stream=stderr").body
    assert only_err == b"err\n"
    tail = api.get(f"/v1/boxes/{svc}/logs?tail=1&stream=stdout").body.decode()
    assert len(tail.splitlines()) == 1 and tail.startswith("tick "), tail
    stamped = api.get(f"/v1/boxes/{svc}/logs?timestamps=true&tail=2").body.decode().splitlines()
    assert all(len(line.split(" ")[0]) == 27 and line.split(" ")[0].endswith("Z") for line in stamped), stamped
    r = api.get(f"/v1/boxes/{svc}/logs?format=ndjson&tail=3")
    assert r.headers["Content-Type"] == "application/x-ndjson"
    recs = [json.loads(line) for line in r.body.splitlines()]
    assert len(recs) == 3 and all(set(x) == {"time", "stream", "text"} for x in recs), recs
    # since: from a record's own time on, that record included; the future shows nothing
    wait_for("tick 3", lambda: b"tick 3" in api.get(f"/v1/boxes/{svc}/logs").body)
    tick3 = json.loads(api.get(f"/v1/boxes/{svc}/logs?format=ndjson&stream=stdout").body.splitlines()[3])
    assert tick3["text"] == "tick 3", tick3
    since = api.get(f"/v1/boxes/{svc}/logs?since={tick3['time']}&stream=stdout").body.decode().splitlines()
    assert since[0] == "tick 3", since[:2]
    assert api.get(f"/v1/boxes/{svc}/logs?since=2999-01-01T00:00:00Z").body == b""
    assert b"tick" in api.get(f"/v1/boxes/{svc}/logs?since=10m&tail=1").body
    # the console stays available
    assert b"cocoon" in api.get(f"/v1/boxes/{svc}/logs?console=true").body.lower()


def test_bad_log_queries_are_refused(api, svc, home):
    assert_error(api.get(f"/v1/boxes/{svc}/logs?since=yesterday"), 400, "invalid_argument", "since")
    assert_error(api.get(f"/v1/boxes/{svc}/logs?since=2026-12-03T14:00"), 400, "invalid_argument", "zone")
    assert_error(api.get(f"/v1/boxes/{svc}/logs?tail=-1"), 400, "invalid_argument", "tail")
    assert_error(api.get(f"/v1/boxes/{svc}/logs?stream=both"), 400, "invalid_argument", "stream")
    assert_error(api.get(f"/v1/boxes/{svc}/logs?format=xml"), 400, "invalid_argument", "format")
    assert_error(api.get(f"/v1/boxes/{svc}/logs?console=true&tail=3"), 400, "invalid_argument", "console")
    assert_error(api.get("/v1/boxes/nosuchbox/logs"), 404, "not_found")
    # a box without a main process: its console, and 409 for what only a main process has
    r = api.post("/v1/boxes", {"name": "plain", "memory_mib": 128})
    assert r.status == 201 and r.data["main"] is None, r
    assert api.get("/v1/boxes/plain/logs").status == 200
    assert_error(api.get("/v1/boxes/plain/logs?tail=5"), 409, "invalid_state", "no main process")
    assert_error(api.get("/v1/boxes/plain/detached/5"), 404, "not_found")


def test_bad_create_bodies_make_no_box(api, home):
    before = boxes(home)
    assert_error(api.post("/v1/boxes", {"name": "b1", "command": ["true"], "restart": "sometimes"}), 400,
                 "invalid_argument", "restart")
    assert_error(api.post("/v1/boxes", {"name": "b2", "command": ["true"], "restart": "on-failure:0"}), 400,
                 "invalid_argument", "restart")
    assert_error(api.post("/v1/boxes", {"name": "b3", "restart": "always"}), 400, "invalid_argument",
                 "main process")
    assert_error(api.post("/v1/boxes", {"name": "b4", "command": ["a"], "cmd": ["b"]}), 400, "invalid_argument",
                 "cmd")
    assert_error(api.post("/v1/boxes", {"name": "b5", "command": "sh -c x"}), 400, "invalid_argument", "command")
    assert_error(api.post("/v1/boxes", {"name": "b6", "command": ["x"] * 5000}), 400, "invalid_argument")
    assert boxes(home) == before


def test_a_follower_that_leaves_holds_nothing(api, server, svc):
    """Followers of a log that keeps going hang up mid-stream: each one's thread and
    reader go (the server's thread count comes back), and others are served meanwhile."""
    task_dir = f"/proc/{server.pid}/task"
    base = len(os.listdir(task_dir))
    streams = []
    for i in range(4):
        if i % 2:  # a busy log
            conn, r = api.stream(f"/v1/boxes/{svc}/logs?follow=true&tail=0&format=ndjson", timeout=WAIT_S)
            rec = json.loads(r.readline())
            assert rec["text"].startswith("tick"), rec
        else:  # a quiet one: nothing comes after its first line, so no write can find the client gone
            conn, r = api.stream(f"/v1/boxes/{svc}/logs?follow=true&stream=stderr", timeout=WAIT_S)
            assert r.readline() == b"err\n"
        streams.append(conn)
    assert len(os.listdir(task_dir)) >= base + 4  # a connection thread and a reader each
    assert api.get("/v1/boxes").status == 200  # others are served meanwhile
    for conn in streams:
        conn.close()
    wait_for("the followers' threads to end", lambda: len(os.listdir(task_dir)) <= base)
    assert api.get(f"/v1/boxes/{svc}").status == 200


def test_follow_ends_when_the_box_stops(api):
    r = api.post("/v1/boxes", {"name": "short", "memory_mib": 128, "auto_start": True,
                               "command": ["sh", "-c", "echo one; sleep 2; echo two; exit 3"]})
    assert r.status == 201, r
    conn, resp = api.stream("/v1/boxes/short/logs?follow=true", timeout=WAIT_S)
    try:
        assert resp.read() == b"one\ntwo\n"  # to its end: the box stopped when its main process ended
    finally:
        conn.close()
    m = main_state(api, "short", "exited")
    assert m["exit_code"] == 3 and m["finished_at"], m
    assert box(api, "short")["status"] == "stopped"


def test_detached_execs(api, svc):
    r = api.post(f"/v1/boxes/{svc}/detached", {"command": "sh", "args": ["-c", "echo a; echo b >&2; echo c; exit 4"]})
    assert r.status == 201, r
    xid = r.data["id"]
    assert r.headers["Location"] == f"/v1/boxes/{box(api, svc)['box_id']}/detached/{xid}"
    done = wait_for("the detached exec to end",
                    lambda: (lambda d: d if d["state"] == "exited" else None)(api.get(f"/v1/boxes/{svc}/detached/{xid}").data))
    assert done["exit_code"] == 4 and done["signal"] is None, done
    assert sorted(api.get(f"/v1/boxes/{svc}/detached/{xid}/logs").body.splitlines()) == [b"a", b"b", b"c"]
    assert api.get(f"/v1/boxes/{svc}/detached/{xid}/logs?stream=stderr").body == b"b\n"
    assert api.get(f"/v1/boxes/{svc}/detached/{xid}/logs?stream=stdout").body == b"a\nc\n"
    assert_error(api.delete(f"/v1/boxes/{svc}/detached/{xid}"), 409, "invalid_state", "not running")
    # a long one, killed
    r = api.post(f"/v1/boxes/{svc}/detached", {"command": "sleep 600", "shell": True})
    assert r.status == 201 and r.data["state"] == "running", r
    xid = r.data["id"]
    assert_error(api.delete(f"/v1/boxes/{svc}/detached/{xid}?signal=99"), 400, "invalid_argument", "signal")
    assert api.delete(f"/v1/boxes/{svc}/detached/{xid}?signal=15").status == 204
    done = wait_for("the killed exec to end",
                    lambda: (lambda d: d if d["state"] == "exited" else None)(api.get(f"/v1/boxes/{svc}/detached/{xid}").data))
    assert done["signal"] == 15 and done["exit_code"] == 143, done
    # refused
    assert_error(api.post(f"/v1/boxes/{svc}/detached", {"command": "true", "tty": True}), 400, "invalid_argument",
                 "tty")
    assert_error(api.post(f"/v1/boxes/{svc}/detached", {"command": "true", "stdin": "x"}), 400, "invalid_argument",
                 "stdin")
    assert_error(api.post(f"/v1/boxes/{svc}/detached", {}), 400, "invalid_argument", "command")
    assert_error(api.get(f"/v1/boxes/{svc}/detached/12345678"), 404, "not_found")
    assert_error(api.get(f"/v1/boxes/{svc}/detached/abc"), 404, "not_found")
    assert_error(api.get(f"/v1/boxes/{svc}/detached/12345678/logs"), 404, "not_found")


def test_entrypoint_takes_command_as_its_arguments(api):
    """docker's rule: an entrypoint replaces the image's and runs with command as its arguments."""
    r = api.post("/v1/boxes", {"name": "ep", "memory_mib": 128, "auto_start": True, "user": "nobody",
                               "entrypoint": ["sh", "-c"], "cmd": ["echo via-entrypoint $(id -un); exit 0"]})
    assert r.status == 201, r
    assert r.data["main"]["command"] == "sh -c echo via-entrypoint $(id -un); exit 0", r.data["main"]
    m = main_state(api, "ep", "exited")
    assert m["exit_code"] == 0, m
    assert api.get("/v1/boxes/ep/logs").body == b"via-entrypoint nobody\n"


def ws_attach(server, name):
    import websockets
    return websockets.unix_connect(server.socket, f"ws://localhost/v1/boxes/{name}/attach", max_size=None)


async def ws_read_until(ws, needle, channel=b"\x01"):
    got = b""
    while needle not in got:
        frame = await ws.recv()
        assert isinstance(frame, bytes) and frame[:1] in (b"\x01", b"\x02"), frame
        if frame[:1] == channel:
            got += frame[1:]
    return got


def test_attach_over_a_websocket(api, server, home):
    """GET /boxes/{id}/attach: a `run -d -i` main process's output, stdin forwarded, a
    client that leaves does not stop it, at most 8 at once, and the exit frame at its end."""
    try:
        import websockets
    except ImportError:
        pytest.skip("skipped: python3-websockets is not installed (scripts/setup installs it)")
    script = ('echo ready; while read l; do echo "got $l"; echo "err $l" >&2; '
              '[ "$l" = quit ] && exit 5; done')
    home.run("run", "-d", "-i", "--name", "wsmain", "--", "sh", "-c", script)
    main_state(api, "wsmain", "running")
    wait_for("its first line", lambda: b"ready" in api.get("/v1/boxes/wsmain/logs").body)

    async def leave_early():
        async with ws_attach(server, "wsmain") as ws:
            await ws.send(b"one\n")
            await ws_read_until(ws, b"got one\n")
            await ws_read_until(ws, b"err one\n", b"\x02")
            await ws.send(json.dumps({"type": "resize", "cols": 0, "rows": 5}))
            while True:  # a bad control message is answered, the session goes on
                frame = await ws.recv()
                if isinstance(frame, str):
                    assert json.loads(frame) == {"type": "error",
                                                 "message": "resize needs cols and rows from 1 to 65535"}
                    break
    asyncio.run(asyncio.wait_for(leave_early(), WAIT_S))
    assert box(api, "wsmain")["main"]["state"] == "running"

    async def too_many():
        conns = []
        while len(conns) < 8:  # the first client's slot frees once the monitor saw it leave
            try:
                conns.append(await ws_attach(server, "wsmain").__aenter__())
            except websockets.exceptions.InvalidHandshake:
                await asyncio.sleep(0.2)
        try:
            with pytest.raises(websockets.exceptions.InvalidHandshake) as refused:
                await ws_attach(server, "wsmain").__aenter__()
            e = refused.value  # InvalidStatusCode (websockets 10) or InvalidStatus (11 on)
            assert getattr(e, "status_code", None) == 429 or e.response.status_code == 429, e
        finally:
            for ws in conns:
                await ws.close()
    asyncio.run(asyncio.wait_for(too_many(), WAIT_S))
    assert box(api, "wsmain")["main"]["state"] == "running"

    async def to_the_end():
        frames = []
        async with ws_attach(server, "wsmain") as ws:
            await ws.send(b"two\n")
            await ws_read_until(ws, b"got two\n")
            await ws.send(b"quit\n")
            async for message in ws:
                frames.append(message)
        return frames
    frames = asyncio.run(asyncio.wait_for(to_the_end(), WAIT_S))
    texts = [json.loads(f) for f in frames if isinstance(f, str)]
    assert texts == [{"type": "exit", "exit_code": 5, "status": "completed"}], frames
    assert b"got quit\n" in b"".join(f[1:] for f in frames if isinstance(f, bytes) and f[:1] == b"\x01")
    assert main_state(api, "wsmain", "exited")["exit_code"] == 5

    # refused as ordinary errors, before any upgrade
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert_error(api.request("GET", "/v1/boxes/wsmain/attach", headers=upgrade), 409, "invalid_state")
    assert api.post("/v1/boxes", {"name": "nomain", "memory_mib": 128, "auto_start": True}).status == 201
    assert_error(api.request("GET", "/v1/boxes/nomain/attach", headers=upgrade), 409, "invalid_state",
                 "main process")
    assert_error(api.request("GET", "/v1/boxes/nosuchbox/attach", headers=upgrade), 404, "not_found")
    assert_error(api.get("/v1/boxes/wsmain/attach"), 400, "invalid_argument", "WebSocket")


def test_create_with_a_health_check(api, home):
    """The create body's "health": the Box's health object shows it, POST /wait healthy
    returns once it passed, and bad checks are refused without making a box."""
    r = api.post("/v1/boxes", {"name": "hc", "memory_mib": 128, "auto_start": True,
                               "command": ["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 600"],
                               "health": {"cmd": "test -f /tmp/ok", "interval_seconds": 1, "retries": 2,
                                          "timeout_seconds": 5, "start_period_seconds": 0}})
    assert r.status == 201, r
    h = r.data["health"]
    assert (h["test"], h["interval_ms"], h["retries"], h["timeout_ms"]) == \
        ("/bin/sh -c test -f /tmp/ok", 1000, 2, 5000), h
    r = api.post("/v1/boxes/hc/wait", {"condition": "healthy", "timeout_seconds": WAIT_S}, timeout=WAIT_S + 30)
    assert r.status == 200 and r.data == {"condition": "healthy", "exit_code": None}, r
    assert box(api, "hc")["health"]["status"] == "healthy"
    before = boxes(home)
    for bad, word in (({"cmd": "true", "test": ["true"]}, "either"), ({}, "either"),
                      ({"cmd": "true", "retries": 0}, "retries"), ({"cmd": "true", "every": 3}, "every"),
                      ({"cmd": "true", "interval_seconds": -1}, "interval_seconds"),
                      ({"cmd": "true", "on_failure": "explode"}, "explode"), ({"cmd": "true", "interval_seconds": 0.5}, "interval"), ("true", "health")):
        assert_error(api.post("/v1/boxes", {"name": "hbad", "health": bad}), 400, "invalid_argument", word)
    assert boxes(home) == before


def test_attach_to_a_main_process_created_over_rest(api, server):
    """"open_stdin" at create: the WebSocket's binary frames reach the main process."""
    pytest.importorskip("websockets", reason="skipped: python3-websockets is not installed (scripts/setup installs it)")
    assert_error(api.post("/v1/boxes", {"name": "nocmd", "open_stdin": True}), 400, "invalid_argument", "command")
    assert_error(api.post("/v1/boxes", {"name": "nocmd", "tty": "yes", "command": ["cat"]}), 400,
                 "invalid_argument", "tty")
    r = api.post("/v1/boxes", {"name": "restin", "memory_mib": 128, "auto_start": True, "open_stdin": True,
                               "command": ["sh", "-c", "while read l; do echo \"rest $l\"; done"]})
    assert r.status == 201, r
    main_state(api, "restin", "running")

    async def talk():
        async with ws_attach(server, "restin") as ws:
            await ws.send(b"hi\n")
            await ws_read_until(ws, b"rest hi\n")
    asyncio.run(asyncio.wait_for(talk(), WAIT_S))
    assert api.delete("/v1/boxes/restin?force=true").status in (200, 204)


def test_attach_stdin_nobody_reads_holds_no_thread(api, server):
    """A client types far more than a main process that never reads its stdin takes: the
    exit frame still comes when it ends, and the session's threads go."""
    pytest.importorskip("websockets", reason="skipped: python3-websockets is not installed (scripts/setup installs it)")
    r = api.post("/v1/boxes", {"name": "deaf", "memory_mib": 128, "auto_start": True, "open_stdin": True,
                               "command": ["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 2"]})
    assert r.status == 201, r
    main_state(api, "deaf", "running")
    task_dir = f"/proc/{server.pid}/task"
    base = len(os.listdir(task_dir))

    async def flood():
        async with ws_attach(server, "deaf") as ws:
            for _ in range(64):  # 4 MiB: more than the pipe, the attachment's queue and the sockets hold
                await ws.send(b"x" * 65536)
            assert api.post("/v1/boxes/deaf/run", {"command": "touch", "args": ["/tmp/stop"]}).status == 200
            texts = [json.loads(m) async for m in ws if isinstance(m, str)]
            assert texts == [{"type": "exit", "exit_code": 2, "status": "completed"}], texts
    asyncio.run(asyncio.wait_for(flood(), WAIT_S))
    wait_for("the session's threads to end", lambda: len(os.listdir(task_dir)) <= base)
    api.delete("/v1/boxes/deaf?force=true")
