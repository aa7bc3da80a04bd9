"""Health checks and `cocoon wait`: a check run by the box's monitor in the guest every
interval (--health-*), its state in `ls`/`inspect`, a failing and a hanging check, and
`wait` for the main process's exit code, for healthy, and on a box the user stops."""
import json
import re
import subprocess
import time

import pytest

from conftest import COCOON, decode
from test_mainproc import WAIT_S, info, ls_line, wait_for  # noqa: F401 (the same looks at a box)


def run_d(vm, *args):
    r = vm.run("run", "-d", *args, check=None)
    assert r.returncode == 0, decode(r.stderr)
    return decode(r.stdout).strip()


def health(vm, box):
    return info(vm, box)["health"]


def test_service_becomes_healthy_and_wait_returns(vm):
    # healthy once the service made its file, a few seconds after the start
    box = run_d(vm, "--health-cmd", "test -e /tmp/up", "--health-interval", "1s", "--health-retries", "100", "--",
                "sh", "-c", "sleep 3; touch /tmp/up; exec sleep 600")
    try:
        assert re.fullmatch(r"[0-9a-f]{12}", box), box
        r = vm.run("wait", "--condition", "healthy", "--timeout", "2m", box, check=None)
        assert r.returncode == 0, decode(r.stderr)
        h = health(vm, box)
        assert h["status"] == "healthy"
        assert h["failing_streak"] == 0
        assert h["test"] == "/bin/sh -c test -e /tmp/up"
        assert h["interval_ms"] == 1000 and h["retries"] == 100
        assert h["log"] and h["log"][-1]["exit_code"] == 0
        assert "running (healthy)" in ls_line(vm, box)
        text = decode(vm.run("inspect", box).stdout)
        assert "health now:  healthy" in text, text
    finally:
        vm.run("rm", "-f", box, check=None)


def test_failing_check_makes_the_box_unhealthy(vm):
    box = run_d(vm, "--health-cmd", "echo not ready; exit 3", "--health-interval", "1s", "--health-retries", "2",
                "--", "sleep", "600")
    try:
        h = wait_for("unhealthy", lambda: (lambda h: h if h["status"] == "unhealthy" else None)(health(vm, box)))
        assert h["failing_streak"] >= 2
        last = h["log"][-1]
        assert last["exit_code"] == 3 and last["output"] == "not ready\n"
        assert 1 <= len(h["log"]) <= 5
        assert "running (unhealthy)" in ls_line(vm, box)
        # unhealthy only reports: the box and its main process go on
        assert info(vm, box)["running"] and info(vm, box)["main"]["state"] == "running"
        # many results later, five are kept
        wait_for("five results", lambda: len(health(vm, box)["log"]) == 5)
        time.sleep(2)
        assert len(health(vm, box)["log"]) == 5
        # wait for healthy gives up at its timeout (124), not before
        r = vm.run("wait", "--condition", "healthy", "--timeout", "2s", box, check=None)
        assert r.returncode == 124, decode(r.stderr)
    finally:
        vm.run("rm", "-f", box, check=None)


def test_check_that_hangs_is_killed_and_counts_as_failed(vm):
    box = run_d(vm, "--health-cmd", "sleep 1000", "--health-interval", "1s", "--health-timeout", "1s",
                "--health-retries", "1", "--", "sleep", "600")
    try:
        h = wait_for("unhealthy", lambda: (lambda h: h if h["status"] == "unhealthy" else None)(health(vm, box)))
        last = h["log"][-1]
        assert last["exit_code"] == -1
        assert "timed out after 1s" in last["output"], last
        # the killed check ends, so later checks run (and fail) again
        first = h["log"][-1]["start_ms"]
        wait_for("a later check", lambda: health(vm, box)["log"][-1]["start_ms"] > first)
    finally:
        vm.run("rm", "-f", box, check=None)


def test_output_flood_is_cut_to_4k_and_made_printable(vm):
    box = run_d(vm, "--health-cmd", "head -c 100000 /dev/urandom; printf '\\001'; exit 1", "--health-interval",
                "1s", "--", "sleep", "600")
    try:
        wait_for("a result", lambda: health(vm, box)["log"])
        with open(f"{info(vm, box)['dir']}/health.state.json", "rb") as f:
            raw = json.loads(f.read())
        out = raw["log"][0]["output"]
        assert len(out.encode()) <= 4096
        assert all(c in "\n\t" or ord(c) >= 0x20 for c in out)
    finally:
        vm.run("rm", "-f", box, check=None)


def test_wait_prints_the_main_process_exit_code(vm):
    box = run_d(vm, "--", "sh", "-c", "sleep 2; exit 7")
    try:
        r = vm.run("wait", box, check=None)
        assert r.returncode == 0, decode(r.stderr)
        assert decode(r.stdout).strip() == "7"
        # once ended, wait answers at once with the same code
        r = vm.run("wait", box, check=None)
        assert decode(r.stdout).strip() == "7"
    finally:
        vm.run("rm", "-f", box, check=None)


def test_wait_on_a_box_the_user_stops(vm):
    box = run_d(vm, "--health-cmd", "exit 1", "--health-interval", "1s", "--", "sleep", "600")
    try:
        waiter = subprocess.Popen([COCOON, "wait", box], env=vm.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        healthy = subprocess.Popen([COCOON, "wait", "--condition", "healthy", box], env=vm.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        assert waiter.poll() is None and healthy.poll() is None
        vm.run("stop", box)
        out, err = waiter.communicate(timeout=WAIT_S)
        assert waiter.returncode == 0, err
        # the guest's power-off ends it with SIGTERM (143); 137 when its end went unseen
        assert out.decode().strip() == str(info(vm, box)["main"]["exit_code"] or 137)
        assert out.decode().strip() in ("143", "137")
        out, err = healthy.communicate(timeout=WAIT_S)
        assert healthy.returncode == 125
        assert b"stopped" in err and b"healthy" in err, err
        # a stopped box shows no health
        assert "(unhealthy)" not in ls_line(vm, box) and "(starting)" not in ls_line(vm, box)
    finally:
        vm.run("rm", "-f", box, check=None)


def test_health_options_are_checked(vm):
    for args, want in [
        (["--health-interval", "500ms", "--health-cmd", "true"], "at least 1s"),
        (["--health-timeout", "0s", "--health-cmd", "true"], "at least 1s"),
        (["--health-interval", "soon", "--health-cmd", "true"], "expected a duration"),
        (["--health-retries", "0", "--health-cmd", "true"], "--health-retries"),
        (["--health-on-failure", "panic", "--health-cmd", "true"], "use none, restart or stop"),
        (["--health-interval", "5s"], "need --health-cmd"),
        (["--no-healthcheck", "--health-cmd", "true"], "contradict"),
    ]:
        r = vm.run("create", *args, check=None)
        assert r.returncode == 125, (args, decode(r.stdout))
        assert want in decode(r.stderr), (args, decode(r.stderr))
    r = vm.run("exec", "--health-cmd", "true", "nobox", "--", "true", check=None)
    assert r.returncode == 125 and "new box" in decode(r.stderr)
    # nothing was left behind by the refusals
    assert decode(vm.run("ls", "-a", "-q").stdout).strip() == ""


def test_create_keeps_the_check_for_start(vm):
    box = decode(vm.run("create", "--health-cmd", "true", "--health-interval", "1s").stdout).strip()
    try:
        h = health(vm, box)
        assert h["test"] == "/bin/sh -c true" and h["status"] is None
        vm.run("start", box)
        r = vm.run("wait", "--condition", "healthy", "--timeout", "2m", box, check=None)
        assert r.returncode == 0, decode(r.stderr)
        # a box without a main process: wait returns 0 once it stops
        vm.run("stop", box)
        assert decode(vm.run("wait", box).stdout).strip() == "0"
    finally:
        vm.run("rm", "-f", box, check=None)


def write_config(tmp_path, text):
    path = tmp_path / "cocoon.yaml"
    path.write_text(text)
    return str(path)


def test_run_config_uses_the_box_command(vm, tmp_path):
    # `run --config FILE NAME` without `-- CMD` runs the box's own command (it ran the
    # image's default, /bin/sh, before)
    path = write_config(tmp_path, "boxes:\n  svc:\n    command: echo from-the-file; exit 5\n")
    r = vm.run("run", "--config", path, "--rm", "svc", check=None)
    assert decode(r.stdout) == "from-the-file\n", decode(r.stderr)
    assert r.returncode == 5
    # a command on the line still wins
    r = vm.run("run", "--config", path, "--rm", "svc", "--", "echo", "given", check=None)
    assert decode(r.stdout) == "given\n" and r.returncode == 0


def test_config_healthcheck_with_up_and_run(vm, tmp_path):
    path = write_config(tmp_path, """boxes:
  web:
    command: sleep 600
    restart: on-failure:2
    healthcheck:
      test: test -d /proc
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 0s
""")
    r = vm.run("up", "-f", path, check=None)
    assert r.returncode == 0, decode(r.stderr)
    try:
        r = vm.run("wait", "--condition", "healthy", "--timeout", "2m", "web", check=None)
        assert r.returncode == 0, decode(r.stderr)
        h = health(vm, "web")
        assert h["test"] == "/bin/sh -c test -d /proc"
        assert h["interval_ms"] == 1000 and h["timeout_ms"] == 2000 and h["retries"] == 2
    finally:
        vm.run("down", "-f", path, check=None)
    # run --config -d takes the check from the file too
    box = run_d(vm, "--config", path, "web")
    try:
        assert health(vm, box)["interval_ms"] == 1000
        assert info(vm, box)["main"]["command"] == "/bin/sh -c sleep 600"
        assert info(vm, box)["main"]["restart"] == "on-failure:2"
    finally:
        vm.run("rm", "-f", box, check=None)


def test_config_healthcheck_refusals(vm, tmp_path):
    for body, want in [
        ("healthcheck: {interval: 1s}", "give the check's command"),
        ("healthcheck: {test: 'true', interval: 10ms}", "at least 1s"),
        ("healthcheck: {test: 'true', interval: soon}", "expected a duration"),
        ("healthcheck: {test: 'true', retries: 0}", "retries"),
        ("healthcheck: {test: 'true', on_failure: panic}", "none, restart or stop"),
        ("healthcheck: {test: 'true', every: 1s}", "every"),
    ]:
        path = write_config(tmp_path, f"boxes:\n  b:\n    {body}\n")
        r = vm.run("config", "-f", path, check=None)
        assert r.returncode != 0 and want in decode(r.stderr), (body, decode(r.stderr))


def test_rest_health_and_wait(vm):
    from openapi_check import check_request, check_response
    from serve_client import ServeServer

    box = run_d(vm, "--name", "svc", "--health-cmd", "test -e /tmp/up", "--health-interval", "1s", "--", "sh",
                "-c", "sleep 2; touch /tmp/up; sleep 4; exit 9")
    try:
        with ServeServer(vm) as server:
            api = server.client(check=check_response)
            body = {"condition": "healthy", "timeout_seconds": 120}
            r = api.request("POST", "/v1/boxes/svc/wait", json=body)
            assert r.status == 200, r
            check_request("POST", "/v1/boxes/svc/wait", body)
            assert r.json == {"condition": "healthy", "exit_code": None}
            h = api.request("GET", "/v1/boxes/svc").json["health"]
            assert h["status"] == "healthy" and h["last"]["exit_code"] == 0 and h["interval_ms"] == 1000
            # a short timeout on a condition that does not hold yet: 408
            r = api.request("POST", "/v1/boxes/svc/wait", json={"condition": "exited", "timeout_seconds": 0.5})
            assert r.status in (408, 200), r
            if r.status == 408:
                assert r.json["error"]["code"] == "timeout"
                r = api.request("POST", "/v1/boxes/svc/wait", json={})
            assert r.status == 200 and r.json == {"condition": "exited", "exit_code": 9}, r
            # stopped: no health state, and waiting for healthy is refused
            assert api.request("GET", "/v1/boxes/svc").json["health"]["status"] is None
            r = api.request("POST", "/v1/boxes/svc/wait", json={"condition": "healthy"})
            assert r.status == 409 and "stopped" in r.json["error"]["message"], r
            r = api.request("POST", "/v1/boxes/svc/wait", json={"condition": "soon"})
            assert r.status == 400, r
    finally:
        vm.run("rm", "-f", box, check=None)


def test_image_healthcheck_applies_unless_replaced(vm, tmp_path):
    import small_images
    if not small_images.available():
        pytest.skip("skipped: no /bin/busybox on this host to build the test image")
    checks = {
        "hc/shell:1": {"Test": ["CMD-SHELL", "test -e /etc/image"], "Interval": 500_000_000, "Retries": 2},
        "hc/argv:1": {"Test": ["CMD", "cat", "/etc/image"], "Interval": 2_000_000_000, "Timeout": 0},
        "hc/none:1": {"Test": ["NONE"]},
    }
    for name, hc in checks.items():
        tar = small_images.save_tarball(str(tmp_path / "img.tar"), name, config={"Healthcheck": hc})
        vm.run("load", tar)
    box = run_d(vm, "hc/shell:1", "sleep", "600")
    try:
        h = health(vm, box)
        # 0.5 s is below our bound: brought up to 1 s
        assert (h["test"], h["interval_ms"], h["timeout_ms"], h["retries"]) == (
            "/bin/sh -c test -e /etc/image", 1000, 30000, 2)
        r = vm.run("wait", "--condition", "healthy", "--timeout", "2m", box, check=None)
        assert r.returncode == 0, decode(r.stderr)
    finally:
        vm.run("rm", "-f", box, check=None)
    made = []
    try:
        made.append(decode(vm.run("create", "hc/argv:1").stdout).strip())
        h = health(vm, made[-1])
        assert (h["test"], h["interval_ms"], h["timeout_ms"]) == ("cat /etc/image", 2000, 30000)
        made.append(decode(vm.run("create", "--no-healthcheck", "hc/argv:1").stdout).strip())
        assert health(vm, made[-1]) is None
        made.append(decode(vm.run("create", "--health-cmd", "true", "hc/argv:1").stdout).strip())
        assert health(vm, made[-1])["test"] == "/bin/sh -c true"
        made.append(decode(vm.run("create", "hc/none:1").stdout).strip())
        assert health(vm, made[-1]) is None
    finally:
        for b in made:
            vm.run("rm", "-f", b, check=None)


def test_on_failure_stop_and_restart(vm):
    box = run_d(vm, "--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1",
                "--health-on-failure", "stop", "--", "sleep", "600")
    try:
        r = vm.run("wait", "--timeout", "2m", box, check=None)
        assert r.returncode == 0, decode(r.stderr)
        assert not info(vm, box)["running"]
        assert info(vm, box)["health"]["on_failure"] == "stop"
    finally:
        vm.run("rm", "-f", box, check=None)
    # restart: the main process is killed and its policy starts it again
    box = run_d(vm, "--restart", "always", "--health-cmd", "test -e /tmp/ok", "--health-interval", "1s",
                "--health-retries", "1", "--health-on-failure", "restart", "--", "sleep", "600")
    try:
        wait_for("a restart", lambda: info(vm, box)["main"]["restarts"] >= 1)
        assert info(vm, box)["running"]
    finally:
        vm.run("rm", "-f", box, check=None)
