"""The MCP server (`cocoon mcp` over stdio, /mcp of `cocoon serve` over Streamable HTTP).

tests/js/mcp_acceptance.cjs drives it with the official client (@modelcontextprotocol/sdk,
pinned in tests/js/package.json, installed by scripts/npm-deps; NODE_PATH points at it)
over each transport, on real boxes: initialize, list tools, call every tool, bad
arguments, cancellation of a long exec, host-path allowlist escapes. Each check it
prints is a test here. A client that disappears (its boxes are removed, the server stays
healthy) and the protocol faults (wrong jsonrpc, batches, huge ids, sessions, Origin,
bounds) are checked directly.
"""
import json
import shutil
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import COCOON, REPO, Cocoon, kill_leftovers, vm_missing_reason
from serve_client import ServeServer
from test_serve_boxlite import node_modules  # the pinned npm packages, or a skip saying why

SCRIPT = os.path.join(REPO, "tests", "js", "mcp_acceptance.cjs")
TOKEN = "mcp-test-token-" + "3b9e51c07a2d48f6"
SCRIPT_TIMEOUT = 1200
KEPT = "mcp-kept"

CHECKS = ["initialize", "list_tools", "bad_arguments", "box_create", "box_list_inspect", "exec", "exec_long",
          "run_code", "files", "copies", "snapshots", "export_import", "images", "stats_and_logs", "resources", "cancel", "stop_start_remove",
          "keep"]


def script_env(c, modules, **extra):
    env = dict(c.env, NODE_PATH=modules, MCP_COCOON=COCOON)
    env.update(extra)
    return env


def run_script(env, timeout=SCRIPT_TIMEOUT):
    try:
        p = subprocess.run(["node", SCRIPT], capture_output=True, text=True, env=env, timeout=timeout)
        out, err = p.stdout, p.stderr + (f"\n(node exited {p.returncode})" if p.returncode else "")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"(node killed after {timeout} s)"
    records = []
    for line in out.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records, out, err


def box_names(c):
    """[[id, name], ...] of every box (name "-" when unnamed)."""
    out = c.run("ls", "-a", timeout=60).stdout.decode()
    return [line.split()[:2] for line in out.splitlines()[1:] if line.strip()]


def box_ids(c):
    return c.run("ls", "-a", "-q", timeout=60).stdout.decode().split()


def mcp_dirs(tmp):
    allowed, outside = tmp / "allowed", tmp / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("not for the box\n")
    return str(allowed), str(outside)


@pytest.fixture(scope="module", params=["stdio", "http"])
def acceptance(request, tmp_path_factory):
    """The script's checks over one transport, on a fresh COCOON_HOME; afterwards the kept
    box must exist and nothing else (the session's boxes are removed at its end)."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")
    modules = node_modules()
    tmp = tmp_path_factory.mktemp("mcp-" + request.param)
    home = str(tmp / "home")
    os.makedirs(home, mode=0o700)
    c = Cocoon(home, tmp)
    allowed, outside = mcp_dirs(tmp)
    c.env["COCOON_MCP_HOST_PATHS"] = allowed + ":/nonexistent-dir"
    env = script_env(c, modules, MCP_TRANSPORT=request.param, MCP_ALLOWED=allowed, MCP_OUTSIDE=outside,
                     MCP_KEEP_NAME=KEPT)
    problems = []
    if request.param == "http":
        with ServeServer(c, listen=True, token=TOKEN) as server:
            env.update(MCP_URL=f"http://127.0.0.1:{server.port}/mcp", MCP_TOKEN=TOKEN)
            records, out, err = run_script(env)
            err += "\ncocoon-serve stderr:\n" + server.stderr()[-3000:]
            if server.stop() not in (0, None):
                problems.append("cocoon-serve did not exit cleanly on SIGTERM")
    else:
        records, out, err = run_script(env)
    left = box_names(c)
    if [KEPT] not in [row[1:] for row in left]:
        problems.append(f"the box created with keep: true is gone: {left}")
    others = [row for row in left if row[1:] != [KEPT]]
    if others:
        problems.append(f"boxes of the ended session left behind: {others}")
    if box_ids(c):
        c.run("rm", "-f", *box_ids(c), timeout=180)
    killed = kill_leftovers(home)
    if killed:
        problems.append(f"box processes left running (killed): {killed}")
    problems += ["sanitizer report:\n" + r for r in c.sanitizer_reports()]
    return {r["check"]: r for r in records if "check" in r}, err, problems


@pytest.mark.parametrize("check", CHECKS)
def test_client(acceptance, check):
    results, err, _ = acceptance
    assert "fatal" not in results, results["fatal"]["detail"] + "\n" + err[-3000:]
    assert check in results, f"the script never reported {check}\n{err[-3000:]}"
    r = results[check]
    if r.get("skipped"):
        pytest.skip(f"skipped: {r['skipped']}")
    assert r["ok"], r["detail"] + "\n" + err[-2000:]


def test_session_end_cleans_up(acceptance):
    assert not acceptance[2], "\n".join(acceptance[2])


# ---- a client that disappears ----

def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.3)
    return cond()


def test_stdio_client_disappears(vm):
    """The client exits without closing: `cocoon mcp` sees EOF, removes the session's box and exits."""
    env = script_env(vm, node_modules(), MCP_TRANSPORT="stdio", MCP_MODE="disappear")
    records, out, err = run_script(env, timeout=600)
    boxes = [r["box"] for r in records if "box" in r]
    assert boxes, out + err
    assert wait_for(lambda: not box_ids(vm), 60), f"the box of a vanished client is still there: {box_names(vm)}"


def test_http_client_disappears(vm):
    """A client gone without DELETE: its session expires (COCOON_MCP_SESSION_IDLE), its box
    is removed, and the server keeps serving other clients."""
    env = dict(vm.env, COCOON_MCP_SESSION_IDLE="2")
    with ServeServer(vm, env=env, listen=True, token=TOKEN) as server:
        senv = script_env(vm, node_modules(), MCP_TRANSPORT="http", MCP_MODE="disappear",
                          MCP_URL=f"http://127.0.0.1:{server.port}/mcp", MCP_TOKEN=TOKEN)
        records, out, err = run_script(senv, timeout=600)
        assert [r for r in records if "box" in r], out + err
        assert wait_for(lambda: not box_ids(vm), 60), f"the box is still there: {box_names(vm)}"
        assert "expired after 2 s idle" in server.stderr()
        status, _, body = post(server.port, initialize(), token=TOKEN)
        assert status == 200 and body["result"]["serverInfo"]["name"] == "cocoon"


# ---- protocol faults, without a box ----

def initialize(version="2025-11-25", id=1):
    return {"jsonrpc": "2.0", "id": id, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def stdio_exchange(c, lines, env=None):
    """Feeds lines (str or dict) to `cocoon mcp` and returns the answers (parsed) and stderr."""
    data = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines).encode()
    p = subprocess.run([COCOON, "mcp"], input=data, capture_output=True, env=env or c.env, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.decode().splitlines()], p.stderr.decode()


def by_id(answers):
    return {json.dumps(a.get("id")): a for a in answers}


def test_stdio_protocol_faults(cocoon):
    answers, stderr = stdio_exchange(cocoon, [
        {"jsonrpc": "2.0", "id": "early", "method": "tools/list"},
        initialize(),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        "{not json",
        '[{"jsonrpc":"2.0","id":9,"method":"ping"}]',
        {"jsonrpc": "1.0", "id": 2, "method": "ping"},
        '{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}',
        {"jsonrpc": "2.0", "id": "x" * 300, "method": "ping"},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": [1]},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "box_inspect", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 7, "method": 42},
        {"jsonrpc": "2.0", "id": 8, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}},
        {"jsonrpc": "2.0", "id": 10, "result": {}},
        "",
    ])
    ids = by_id(answers)
    assert ids['"early"']["error"]["code"] == -32600 and "initialize" in ids['"early"']["error"]["message"]
    assert ids["1"]["result"]["protocolVersion"] == "2025-11-25"
    nulls = [a["error"] for a in answers if a.get("id") is None]
    codes = sorted(e["code"] for e in nulls)
    # parse error, batch, huge integer (not representable: a parse error), long id, null id, real id
    assert codes == sorted([-32700, -32600, -32700, -32600, -32600, -32600]), nulls
    assert any("batches are not supported" in e["message"] for e in nulls)
    assert ids["2"]["error"]["code"] == -32600 and '"2.0"' in ids["2"]["error"]["message"]
    assert ids["3"]["error"]["code"] == -32601
    assert ids["4"]["error"]["code"] == -32602
    assert ids["5"]["error"]["code"] == -32602
    assert ids["6"]["result"]["isError"] is True
    assert 'missing required argument "box"' in ids["6"]["result"]["content"][0]["text"]
    assert ids["7"]["error"]["code"] == -32600
    assert ids["8"]["result"] == {}
    assert "10" not in ids and "9" not in ids  # a client's response and a batch's member get no answer
    assert len(answers) == 15, answers
    assert "ready" in stderr


def test_stdio_version_negotiation(cocoon):
    for asked, expected in [("2024-11-05", "2024-11-05"), ("2025-06-18", "2025-06-18"), ("1999-01-01", "2025-11-25")]:
        answers, _ = stdio_exchange(cocoon, [initialize(asked)])
        assert answers[0]["result"]["protocolVersion"] == expected
    answers, _ = stdio_exchange(cocoon, [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}])
    assert answers[0]["error"]["code"] == -32602


def test_stdio_message_bound(cocoon):
    """A line over 8 MiB is dropped with an error and the session goes on."""
    huge = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"pad": "x" * (9 << 20)}})
    answers, _ = stdio_exchange(cocoon, [initialize(), huge, {"jsonrpc": "2.0", "id": 3, "method": "ping"}])
    ids = by_id(answers)
    assert "larger than 8388608 bytes" in ids["null"]["error"]["message"]
    assert ids["3"]["result"] == {}


def test_stdio_copies_refused_without_allowlist(cocoon, tmp_path):
    env = dict(cocoon.env)
    env.pop("COCOON_MCP_HOST_PATHS", None)
    calls = [("copy_to_box", {"box": "x", "host_path": "/etc", "box_path": "/"}),
             ("box_export", {"source": "x", "host_path": str(tmp_path / "x.cocoon")}),
             ("box_import", {"host_path": "/etc/passwd"})]
    answers, _ = stdio_exchange(cocoon, [initialize()] + [
        {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args}}
        for i, (name, args) in enumerate(calls, 2)], env=env)
    for i, (name, _) in enumerate(calls, 2):
        r = by_id(answers)[str(i)]["result"]
        assert r["isError"] and "COCOON_MCP_HOST_PATHS" in r["content"][0]["text"], (name, r)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("x.cocoon")]


def post(port, message, token=None, session=None, headers=None, method="POST"):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if session:
        h["Mcp-Session-Id"] = session
    h.update(headers or {})
    data = json.dumps(message).encode() if isinstance(message, dict) else message
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            return r.status, dict(r.headers), json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body
        return e.code, dict(e.headers), parsed


def post_stream(port, message, token, session):
    """POST /mcp accepting an event stream: status, headers and the messages of its events."""
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "Authorization": f"Bearer {token}"}
    if session:
        h["Mcp-Session-Id"] = session
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=json.dumps(message).encode(), headers=h,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read().decode()
        events = []
        for block in text.split("\n\n"):
            lines = block.split("\n")
            if block.strip():
                assert lines[0] == "event: message" and lines[1].startswith("data: "), text
                events.append(json.loads(lines[1][6:]))
        return r.status, dict(r.headers), events


def test_http_protocol(cocoon):
    with ServeServer(cocoon, listen=True, token=TOKEN) as server:
        port = server.port
        assert post(port, initialize())[0] == 401  # no token
        status, headers, _ = post(port, None, token=TOKEN, method="GET")
        assert status == 405 and headers.get("Allow") == "POST, DELETE"
        assert post(port, initialize(), token=TOKEN, headers={"Origin": "http://evil.example"})[0] == 403
        assert post(port, initialize(), token=TOKEN, headers={"Origin": "http://127.0.0.1:3000"})[0] == 200
        assert post(port, initialize(), token=TOKEN, headers={"Content-Type": "text/plain"})[0] == 415
        assert post(port, initialize(), token=TOKEN, headers={"MCP-Protocol-Version": "1999-01-01"})[0] == 400
        status, _, body = post(port, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, token=TOKEN)
        assert status == 400 and "Mcp-Session-Id is required" in body["error"]["message"]
        assert post(port, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, token=TOKEN, session="0" * 32)[0] == 404

        status, headers, body = post(port, initialize(), token=TOKEN)
        assert status == 200 and body["result"]["protocolVersion"] == "2025-11-25"
        sid = headers["Mcp-Session-Id"]
        assert len(sid) == 32
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert post(port, note, token=TOKEN, session=sid)[0] == 202
        status, _, body = post(port, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, token=TOKEN, session=sid,
                               headers={"MCP-Protocol-Version": "2025-11-25"})
        assert status == 200 and len(body["result"]["tools"]) == 32
        status, _, body = post(port, b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', token=TOKEN, session=sid)
        assert status == 200 and body["error"]["code"] == -32600
        # a request asking for progress, from a client that takes streams: text/event-stream
        listing = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": {"progressToken": 1}}}
        status, headers, events = post_stream(port, listing, token=TOKEN, session=sid)
        assert status == 200 and headers["Content-Type"] == "text/event-stream"
        assert headers["Mcp-Session-Id"] == sid
        assert len(events) == 1 and events[0]["id"] == 5 and len(events[0]["result"]["tools"]) == 32
        assert post(port, None, token=TOKEN, session=sid, method="DELETE")[0] == 204
        assert post(port, {"jsonrpc": "2.0", "id": 4, "method": "ping"}, token=TOKEN, session=sid)[0] == 404


def test_http_session_bound(cocoon):
    with ServeServer(cocoon, listen=True, token=TOKEN) as server:
        sessions = []
        for i in range(64):
            status, headers, _ = post(server.port, initialize(id=i), token=TOKEN)
            assert status == 200, i
            sessions.append(headers["Mcp-Session-Id"])
        status, _, body = post(server.port, initialize(), token=TOKEN)
        assert status == 503 and "maximum of MCP sessions" in body["error"]["message"]
        assert post(server.port, None, token=TOKEN, session=sessions[0], method="DELETE")[0] == 204
        assert post(server.port, initialize(), token=TOKEN)[0] == 200


def test_stdio_image_pull_progress(cocoon, tmp_path):
    """image_pull with a progress token sends notifications/progress before its result (over HTTP
    as an event stream; the second pull finds the image stored and may have none)."""
    import registry_fixture as rf
    if not all(shutil.which(t) for t in ("docker-registry", "skopeo", "umoci")) or not os.path.exists(rf.BUSYBOX):
        pytest.skip("skipped: docker-registry, skopeo, umoci and busybox-static are needed (scripts/setup)")
    reg = rf.Registry(str(tmp_path))
    try:
        lay = str(tmp_path / "layout")
        rf.build_layout(lay, "v1", {"etc/hello": os.urandom(3 << 20)})  # a layer big enough for progress
        reg.push_layout(lay, "v1", "test/progress:v1")
        env = dict(cocoon.env, COCOON_INSECURE_REGISTRIES=reg.host)
        pull = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "image_pull", "arguments": {"image": f"{reg.host}/test/progress:v1"},
                           "_meta": {"progressToken": "pull-1"}}}
        answers, stderr = stdio_exchange(cocoon, [initialize(), pull], env=env)
        # the same over HTTP: the answer is an event stream, progress first
        with ServeServer(cocoon, env=env, listen=True, token=TOKEN) as server:
            _, headers, _ = post(server.port, initialize(), token=TOKEN)
            status, _, events = post_stream(server.port, pull, TOKEN, headers["Mcp-Session-Id"])
            assert status == 200 and events[-1]["id"] == 2 and not events[-1]["result"].get("isError"), events
            assert len(events) >= 1 and all(e.get("method") == "notifications/progress" for e in events[:-1])
    finally:
        reg.stop()
    progress = [a for a in answers if a.get("method") == "notifications/progress"]
    result = by_id(answers)["2"]
    assert "result" in result and not result["result"].get("isError"), (result, stderr)
    assert result["result"]["structuredContent"]["name"].endswith("test/progress:v1")
    assert progress and all(p["params"]["progressToken"] == "pull-1" for p in progress), answers
    assert answers.index(result) > answers.index(progress[-1])
