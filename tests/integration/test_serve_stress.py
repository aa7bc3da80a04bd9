"""`cocoon serve` under load and misuse, on real boxes: one server, 50 concurrent clients
and 20 small boxes with 100 concurrent output streams (NDJSON and run to completion),
each checked byte for byte; clients that go away mid-stream (their executions are
killed in the guest, the server's descriptors and threads come back to where they
were); a reader slower than its command (the server's memory stays bounded and the
output arrives whole once the reader catches up). No assertion is about speed: the
waits are bounds against hangs."""
import base64
import json
import os
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serve_client import free_port
from test_serve import (BOOT_S, Server, assert_error, exec_info, module_home, module_server, read_ndjson, sh,
                        start_exec, wait_for)

BOXES = 20
CLIENTS = 50
STREAMS = 100
LINES = 3000  # per stream: about 30 KB of stdout and 10 KB of stderr, distinct per stream


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    # The slow-reader test reads the server's RSS: a sanitizer build keeps freed memory
    # in quarantine (256 MiB by default), which would hide what the server holds.
    yield from module_home(tmp_path_factory, "serve-stress", asan_options=":quarantine_size_mb=8")


@pytest.fixture(scope="module")
def server(home):
    yield from module_server(home)


@pytest.fixture(scope="module")
def api(server):
    return server.client


@pytest.fixture(scope="module")
def boxes(api):
    """BOXES boxes of 128 MiB, all running. Booted a few at a time: 20 TCG guests
    booting at once on two cores could pass their own boot timeout."""
    names = [f"s{i:02d}" for i in range(BOXES)]
    for n in names:
        r = api.post("/v1/boxes", {"name": n, "memory_mib": 128})
        assert r.status == 201, r

    def start(n):
        r = api.post(f"/v1/boxes/{n}/start", timeout=BOOT_S)
        assert r.status == 200 and r.json["status"] == "running", (n, r)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(start, names))
    return names


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def expected_output(k):
    out = "".join(f"O{k}-{i}\n" for i in range(1, LINES + 1)).encode()
    err = "".join(f"E{k}-{i}\n" for i in range(1, LINES // 3 + 1)).encode()
    return out, err


def stream_command(k):
    return {"command": "sh", "args": ["-c", f"seq -f 'O{k}-%g' 1 {LINES}; seq -f 'E{k}-%g' 1 {LINES // 3} >&2"]}


def test_fifty_clients_twenty_boxes_hundred_streams(server, api, boxes):
    """Every stream's output arrives whole and in order, none mixed with another's;
    light requests in between are answered too."""
    jobs = queue.Queue()
    for k in range(STREAMS):
        jobs.put(("stream", k))
    for k in range(STREAMS):
        jobs.put(("light", k))
    failures, done = [], []
    lock = threading.Lock()

    def stream(k):
        box = boxes[k % BOXES]
        want_out, want_err = expected_output(k)
        if k % 2:  # run to completion
            r = api.post(f"/v1/boxes/{box}/run", stream_command(k), timeout=BOOT_S)
            assert r.status == 200, r
            got = r.json
            assert got["exit_code"] == 0 and got["encoding"] == "utf-8", {x: got[x] for x in got if "std" not in x}
            return got["stdout"].encode(), got["stderr"].encode(), want_out, want_err
        eid = start_exec(api, box, stream_command(k))
        conn, resp = api.stream(f"/v1/boxes/{box}/executions/{eid}/output", timeout=BOOT_S)
        try:
            out, err, end = read_ndjson(resp)
        finally:
            conn.close()
        assert end["exit_code"] == 0 and end["status"] == "completed", end
        return out, err, want_out, want_err

    def light(k):
        path = ("/v1/boxes", f"/v1/boxes/{boxes[k % BOXES]}", "/v1/metrics", f"/v1/boxes/{boxes[k % BOXES]}/executions",
                "/v1/config")[k % 5]
        r = api.get(path)
        assert r.status == 200, (path, r)

    def client():
        while True:
            try:
                kind, k = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                if kind == "light":
                    light(k)
                else:
                    out, err, want_out, want_err = stream(k)
                    if (out, err) != (want_out, want_err):
                        raise AssertionError(f"stream {k}: {len(out)}/{len(want_out)} stdout bytes, "
                                             f"{len(err)}/{len(want_err)} stderr bytes, first difference at "
                                             f"{next((i for i, (a, b) in enumerate(zip(out, want_out)) if a != b), None)}")
                with lock:
                    done.append((kind, k))
            except Exception as e:  # noqa: BLE001 - every failure is reported at the end
                with lock:
                    failures.append(f"{kind} {k}: {e!r}"[:1500])

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    assert not any(t.is_alive() for t in threads), "clients still running after 30 minutes"
    assert not failures, f"{len(failures)} failed:\n" + "\n".join(failures[:20])
    assert len(done) == 2 * STREAMS
    wait_for(lambda: api.get("/v1/metrics").json["running_executions"] == 0, 120, "every execution to end")


def settle(fn, baseline, what):
    """Waits until fn() is back to baseline or below (threads and descriptors of finished
    requests go away on their own time): the last value."""
    values = []

    def back():
        values.append(fn())
        return values[-1] <= baseline
    deadline = time.monotonic() + 60
    while not back():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {values[-1]} after 60 s, {baseline} before (last values {values[-10:]})")
        time.sleep(0.5)
    return values[-1]


def quiet_baseline(pid, api):
    """The server's descriptors and threads when no request or execution is under way."""
    wait_for(lambda: api.get("/v1/metrics").json["running_executions"] == 0, 120, "executions to end")
    time.sleep(2)
    return open_fds(pid), len(os.listdir(f"/proc/{pid}/task"))


def test_clients_that_go_away_leak_nothing(server, api, boxes):
    pid = server.pid
    fds0, threads0 = quiet_baseline(pid, api)
    streams = []
    # NDJSON readers that read a little of a command that never ends, then hang up.
    for k in range(5):
        box = boxes[k]
        eid = start_exec(api, box, {"command": "sh", "args": ["-c", f"yes LEAKTEST-{k}"]})
        conn, resp = api.stream(f"/v1/boxes/{box}/executions/{eid}/output")
        assert resp.readline().startswith(b'{"type":"stdout"')
        streams.append((box, eid, conn))
    # Run-to-completion clients that hang up while their command runs.
    runs = []
    for k in range(5, 10):
        box = boxes[k]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(server.socket)
        body = json.dumps({"command": "sh", "args": ["-c", f"echo RUNLEAK-{k}; exec sleep 3{k:03d}"]}).encode()
        s.sendall(f"POST /v1/boxes/{box}/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        runs.append((box, f"sleep 3{k:03d}", s))
    for box, marker, _ in runs:
        wait_for(lambda: marker in sh(api, box, "ps -eo args")["stdout"], 120, f"{marker} to run in {box}")
    for _, _, conn in streams:
        conn.sock.shutdown(socket.SHUT_RDWR)  # the response's file object shares this socket
        conn.close()
    for _, _, s in runs:
        s.close()
    # The executions are killed, in the server's books and in the guests.
    for box, eid, _ in streams:
        info = wait_for(lambda: (lambda i: i if i["status"] != "running" else None)(exec_info(api, box, eid)),
                        120, f"{eid} to end")
        assert info["status"] == "killed", info
    for k, (box, _, _) in enumerate(streams):
        wait_for(lambda: f"LEAKTEST-{k}" not in sh(api, box, "ps -eo args")["stdout"], 120, f"yes in {box} to end")
    for box, marker, _ in runs:
        wait_for(lambda: marker not in sh(api, box, "ps -eo args")["stdout"], 120, f"{marker} in {box} to end")
    # And the server is back to its descriptors and threads.
    settle(lambda: open_fds(pid), fds0, "open descriptors of the server")
    settle(lambda: len(os.listdir(f"/proc/{pid}/task")), threads0, "threads of the server")
    assert api.get("/v1/metrics").json["running_executions"] == 0
    gone = [line for line in server.log_lines() if "/output 200" in line and line.endswith(")")]
    assert len(gone) >= len(streams), gone


def test_a_slow_reader_does_not_make_the_server_buffer(server, api, boxes):
    """200 MB of output to a reader that stops reading: the server holds at most its
    per-execution buffer (1 MiB) and what it is sending, the command waits, and once
    the reader goes on every byte arrives."""
    pid = server.pid
    total = 200_000_000
    rss0 = proc_status(pid, "VmRSS")
    eid = start_exec(api, boxes[0], {"command": "head", "args": ["-c", str(total), "/dev/zero"]})
    conn, resp = api.stream(f"/v1/boxes/{boxes[0]}/executions/{eid}/output", timeout=600)
    try:
        first = json.loads(resp.readline())
        got = len(base64.b64decode(first["data"]))
        # The reader pauses; the command would have finished its 200 MB long before the
        # end of the pause if the server took it all.
        peak = rss0
        for _ in range(30):
            time.sleep(0.5)
            peak = max(peak, proc_status(pid, "VmRSS"))
        assert exec_info(api, boxes[0], eid)["status"] == "running", "the command was not held back"
        out, err, end = read_ndjson(resp)
        peak = max(peak, proc_status(pid, "VmRSS"))
    finally:
        conn.close()
    got += len(out)
    assert got == total and err == b"" and end["exit_code"] == 0 and end["status"] == "completed", (got, end)
    growth_mib = (peak - rss0) / 1024
    print(f"server RSS {rss0 / 1024:.1f} MiB before, {peak / 1024:.1f} MiB at most ({growth_mib:.1f} MiB more)")
    assert growth_mib < 100, f"the server's RSS grew by {growth_mib:.0f} MiB for one slow reader"


def test_a_silent_connection_is_closed(home):
    """A client that sends half a request line and nothing more is cut after the idle
    timeout (30 s), before any token check could hold it."""
    port = free_port()
    srv = Server(home, "--listen", f"127.0.0.1:{port}", socket_path="none").start()
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\n")
            s.settimeout(45)  # a bound, well above any idle timeout the server should have
            try:
                closed = s.recv(4096) is not None
            except socket.timeout:
                closed = False
        assert closed, "the server kept a silent connection open for 45 s"
    finally:
        assert srv.stop() == 0


def test_the_server_still_answers_everything(api, boxes):
    """After the load: every box runs a command, and a bad request still gets its 4xx."""
    for b in boxes:
        assert sh(api, b, "echo alive")["stdout"] == "alive\n"
    assert_error(api.post(f"/v1/boxes/{boxes[0]}/run", "{bad"), 400, "invalid_argument")
