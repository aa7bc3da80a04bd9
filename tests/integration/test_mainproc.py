"""Boxes that serve: a main process started by `cocoon run -d` under the box's monitor,
its output in `cocoon logs` (bounded: main.log rotates), its exit code in `ls` and
`inspect`, restart policies with back-off, and a user's stop that nothing undoes."""
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

import small_images
from conftest import decode

WAIT_S = 120  # a boot under TCG on a loaded host takes seconds; this only bounds a hang


def info(vm, box):
    return json.loads(decode(vm.run("inspect", "--json", box, check=0).stdout))


def wait_for(what, check, timeout=WAIT_S):
    """Polls check() until it returns something true; fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout} s for {what}")
        time.sleep(0.3)


def stopped(vm, box):
    return wait_for(f"box {box} to stop", lambda: (lambda i: i if not i["running"] else None)(info(vm, box)))


def box_dir(vm, box):
    return info(vm, box)["dir"]


def ls_line(vm, box):
    for line in decode(vm.run("ls", "-a", check=0).stdout).splitlines():
        if line.startswith(box[:12]) or f" {box} " in line:
            return line
    return ""


def run_d(vm, *args, env=None):
    r = vm.run("run", "-d", *args, env=env, check=0)
    return decode(r.stdout).strip()


def test_web_service_serves_on_loopback_and_logs_requests(vm):
    port = 18080
    box = run_d(vm, "-p", f"{port}:8000", "--name", "web", "--", "python3", "-m", "http.server", "8000")
    try:
        assert re.fullmatch(r"[0-9a-f]{12}", box), box

        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.status == 200 and r.read()
            except OSError:
                return None
        body = wait_for("the web server to answer", fetch)
        assert b"Directory listing" in body
        # published on the host's loopback only
        listen = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert "127.0.0.1:%d" % port in listen and "0.0.0.0:%d" % port not in listen, listen
        # the request is in its log (python's http.server logs to stderr)
        r = wait_for("the request in the log",
                     lambda: (lambda r: r if '"GET / HTTP/1.1" 200' in decode(r.stderr) else None)(
                         vm.run("logs", "web", check=0)))
        assert decode(r.stdout) == ""
        stamped = decode(vm.run("logs", "--timestamps", "web", check=0).stderr)
        assert re.search(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z .*"GET / HTTP/1.1" 200', stamped, re.M), stamped
        i = info(vm, "web")
        assert i["running"] and i["main"]["state"] == "running" and i["main"]["pid"], i["main"]
        assert i["main"]["command"] == "python3 -m http.server 8000"
        # the console stays available
        assert "cocoon-agent" in decode(vm.run("logs", "--console", "web", check=0).stdout)
    finally:
        vm.run("rm", "-f", "web")


def test_image_own_command_serves_follows_and_restarts(vm, tmp_path):
    """Issue 19's acceptance: `run -d -p HOST:PORT IMAGE` with no command serves from the
    image's own Cmd, the host reaches it, `logs -f` shows each request as it comes, and
    a service that crashes is started again by its policy and serves again."""
    if not small_images.available():
        pytest.skip("skipped: /bin/busybox is not installed (busybox-static)")
    from layers import D, F, L
    web = [D("bin"), L("bin/httpd", "busybox"), L("bin/kill", "busybox"), D("www"),
           F("www/index.html", b"served by the image's own command\n"), F("www/followed.html", b"f\n")]
    tar = small_images.save_tarball(str(tmp_path / "web.tar"), "svc/web:1", layers=[web],
                                    config={"Cmd": ["httpd", "-f", "-vv", "-p", "80", "-h", "/www"]})
    vm.run("load", tar)
    port = 18081
    box = run_d(vm, "-p", f"{port}:80", "--restart", "on-failure", "--name", "imgweb", "svc/web:1")
    follow = None
    try:
        assert re.fullmatch(r"[0-9a-f]{12}", box), box

        def fetch(path="/"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status == 200 and r.read()
            except OSError:
                return None
        assert wait_for("the image's server to answer", fetch) == b"served by the image's own command\n"
        assert info(vm, "imgweb")["main"]["command"] == "httpd -f -vv -p 80 -h /www"
        # logs -f: a request made after it started shows up while it runs
        follow = vm.popen("logs", "-f", "imgweb")
        os.set_blocking(follow.stderr.fileno(), False)
        seen = b""

        def request_logged():
            nonlocal seen
            fetch("/followed.html")  # (busybox httpd logs the path without its query)
            try:
                seen += follow.stderr.read() or b""
            except (BlockingIOError, TypeError):
                pass
            return b"url:/followed.html" in seen
        wait_for("the request in `logs -f`", request_logged)
        assert follow.poll() is None, "logs -f ended while the service runs"
        # the service crashes (SIGKILL from inside the box): on-failure starts it again
        pid = info(vm, "imgweb")["main"]["pid"]
        vm.run("exec", "imgweb", "--", "kill", "-9", str(pid))
        restarted = wait_for("the restart", lambda: (lambda m: m if m["restarts"] >= 1 and m["state"] == "running"
                                                   else None)(info(vm, "imgweb")["main"]))
        assert restarted["pid"] != pid, restarted
        assert wait_for("the restarted server to answer", fetch)
        assert info(vm, "imgweb")["running"]
    finally:
        if follow:
            follow.kill()
            follow.communicate()
        vm.run("rm", "-f", "imgweb")
        vm.run("rmi", "svc/web:1", check=0)


def test_exit_code_is_recorded_and_the_box_stops(vm):
    box = run_d(vm, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    try:
        i = stopped(vm, box)
        assert i["main"]["state"] == "exited" and i["main"]["exit_code"] == 3, i["main"]
        assert i["main"]["finished_at"] >= i["main"]["started_at"] > 0
        assert re.search(r"exited \(3\) \d+ seconds? ago", ls_line(vm, box)), ls_line(vm, box)
        r = vm.run("logs", box, check=0)
        assert decode(r.stdout) == "to-out\n" and decode(r.stderr) == "to-err\n", r
        assert "exit code 3" in decode(vm.run("inspect", box, check=0).stdout)
    finally:
        vm.run("rm", "-f", box)


def test_main_process_that_exits_at_once_or_cannot_start(vm):
    quick = run_d(vm, "--", "true")
    # the CLI waits after the box is ready, so the box has stopped by the time it
    # connects: that start still succeeded (it used to say "stopped again")
    missing = run_d(vm, "--", "no-such-command", env={"COCOON_TEST_DELAY_START_READY": "5000"})
    assert re.fullmatch(r"[0-9a-f]{12}", missing), missing
    try:
        assert stopped(vm, quick)["main"]["exit_code"] == 0
        i = stopped(vm, missing)
        assert i["main"]["exit_code"] == 127, i["main"]
        assert "no-such-command" in i["main"]["error"], i["main"]
        assert "no-such-command" in decode(vm.run("logs", missing, check=0).stderr)
        assert "exited (127)" in ls_line(vm, missing)
    finally:
        vm.run("rm", "-f", quick, missing)


def test_crash_loop_backs_off_visibly_then_gives_up(vm):
    box = run_d(vm, "--restart", "on-failure:3", "--", "sh", "-c", "echo run; exit 5")
    try:
        seen = wait_for("ls to show the back-off",
                        lambda: re.search(r"restarting \(\d, next in \d+ s\)", ls_line(vm, box)))
        assert seen
        i = stopped(vm, box)
        assert i["main"]["restarts"] == 3 and i["main"]["exit_code"] == 5, i["main"]
        assert i["main"]["restart"] == "on-failure:3"
        assert decode(vm.run("logs", box, check=0).stdout) == "run\n" * 4
        with open(os.path.join(i["dir"], "vmm.log")) as f:
            delays = re.findall(r"main process: restarting in (\d+) ms", f.read())
        assert delays == ["1000", "2000", "4000"], delays  # doubling from 1 s
        assert decode(vm.run("logs", "--tail", "2", box, check=0).stdout) == "run\n" * 2
        # --since: from the third run's line on (its own time included), a duration, the future
        third = decode(vm.run("logs", "--timestamps", box, check=0).stdout).splitlines()[2].split(" ")[0]
        assert decode(vm.run("logs", "--since", third, box, check=0).stdout) == "run\n" * 2
        assert decode(vm.run("logs", "--since", "1h", "--tail", "1", box, check=0).stdout) == "run\n"
        assert decode(vm.run("logs", "--since", "2999-01-01", box, check=0).stdout) == ""
        r = vm.run("logs", "--since", "yesterday", box)
        assert r.returncode != 0 and "since" in decode(r.stderr) and decode(r.stdout) == "", r
    finally:
        vm.run("rm", "-f", box)


def test_user_stop_is_not_undone_by_unless_stopped(vm):
    box = run_d(vm, "--restart", "unless-stopped", "--", "sleep", "1000")
    try:
        wait_for("the main process to run", lambda: info(vm, box)["main"]["state"] == "running")
        vm.run("stop", box, check=0)
        i = info(vm, box)
        assert not i["running"], i
        assert i["main"]["state"] in ("exited", "stopped") and not i["main"]["next_restart_ms"], i["main"]
        time.sleep(2)  # a restart would have had its first back-off by now
        assert not info(vm, box)["running"]
        assert "restarting" not in ls_line(vm, box)
        # a later start runs it again
        vm.run("start", box, check=0)
        wait_for("the main process to run again", lambda: info(vm, box)["main"]["state"] == "running")
    finally:
        vm.run("rm", "-f", box)


def test_output_flood_keeps_the_log_bounded(vm):
    bound = 65536
    box = run_d(vm, "--", "sh", "-c", "yes 'flood line of output' | head -n 200000; echo done-flooding",
                env={"COCOON_MAIN_LOG_MAX": str(bound)})
    try:
        i = stopped(vm, box)
        assert i["main"]["exit_code"] == 0
        d = i["dir"]
        sizes = [os.path.getsize(os.path.join(d, n)) for n in ("main.log", "main.log.1")]
        # rotated at the bound: the pair never holds much more than twice it
        assert sum(sizes) <= 2 * bound + 20000, sizes
        out = decode(vm.run("logs", box, check=0).stdout)
        assert out.endswith("flood line of output\ndone-flooding\n"), out[-200:]
    finally:
        vm.run("rm", "-f", box)


def test_bad_restart_policies_are_refused(vm):
    r = vm.run("run", "-d", "--restart", "sometimes", "--", "true")
    assert r.returncode == 125 and "unknown restart policy \"sometimes\"" in decode(r.stderr), r
    r = vm.run("run", "--restart", "always", "--", "true")
    assert r.returncode == 125 and "--restart applies with -d only" in decode(r.stderr), r
    r = vm.run("run", "-d", "--restart", "on-failure:0", "--", "true")
    assert r.returncode == 125 and "on-failure:N" in decode(r.stderr), r
    r = vm.run("run", "-d", "--", "echo", *(["y" * 4000] * 20))  # checked before the box starts, not at its boot
    assert r.returncode == 125 and "larger than one message allows" in decode(r.stderr), r
    r = vm.run("run", "-d", "--rm", "--", "true")
    assert r.returncode == 125 and "--rm does not apply to a detached main process" in decode(r.stderr), r
    assert decode(vm.run("ls", "-a", "-q", check=0).stdout) == ""  # nothing half-made is kept


def test_exec_detached_outlives_the_cli_and_keeps_its_output(vm):
    bound = 65536
    box = run_d(vm, env={"COCOON_EXEC_LOG_MAX": str(bound)})  # the default image: a box with no main process
    try:
        r = vm.run("exec", "-d", box, "--", "sh", "-c", "echo a; echo b >&2; sleep 2; echo c; exit 4", check=0)
        ident = decode(r.stdout).strip()
        assert re.fullmatch(r"\d+", ident), r
        # the CLI is gone, the command still runs under the monitor
        assert ident in decode(vm.run("kill", "--list", box, check=0).stdout)
        wait_for("the detached exec to end",
                 lambda: ident not in decode(vm.run("kill", "--list", box, check=0).stdout))
        r = vm.run("logs", "--exec", ident, box, check=0)
        assert decode(r.stdout) == "a\nc\n" and decode(r.stderr) == "b\n", r
        with open(os.path.join(box_dir(vm, box), "execs", f"{ident}.json")) as f:
            assert json.load(f)["exit_code"] == 4
        # a flood stays within its bound
        flood = decode(vm.run("exec", "-d", box, "--", "sh", "-c", "yes 'flood line' | head -n 100000; echo end",
                              check=0).stdout).strip()
        wait_for("the flood to end", lambda: flood not in decode(vm.run("kill", "--list", box, check=0).stdout))
        d = os.path.join(box_dir(vm, box), "execs")
        size = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.startswith(flood + ".log"))
        assert size <= 2 * bound + 20000, size
        assert decode(vm.run("logs", "--exec", flood, "--tail", "1", box, check=0).stdout) == "end\n"
        # bad cases
        r = vm.run("exec", "-d", box, "--", "no-such-command")
        assert r.returncode == 125 and "no-such-command" in decode(r.stderr), r
        r = vm.run("exec", "-d", "-t", box, "--", "true")
        assert r.returncode == 125 and "-t does not apply" in decode(r.stderr), r
        r = vm.run("logs", "--exec", "99999", box)
        assert r.returncode == 125 and "no detached exec 99999" in decode(r.stderr), r
    finally:
        vm.run("rm", "-f", box)


def test_up_brings_up_a_service_from_the_config_file(vm, tmp_path):
    f = tmp_path / "cocoon.yaml"
    f.write_text("boxes:\n"
                 "  svc:\n"
                 "    workdir: /tmp\n"
                 "    env: {GREETING: hello}\n"
                 "    command: echo \"$GREETING from $(pwd)\"; exec python3 -m http.server 8000\n"
                 "    ports: [\"127.0.0.1:18083:8000\"]\n"
                 "    restart: on-failure\n"
                 "  crashy:\n"
                 "    command: [sh, -c, \"echo boom; exit 7\"]\n")
    try:
        r = vm.run("up", "-f", str(f), check=0)
        assert "svc: created and started" in decode(r.stdout), r
        wait_for("the service's output",
                 lambda: decode(vm.run("logs", "svc", check=0).stdout).startswith("hello from /tmp\n"))

        def fetch():  # the box's own ports: (compose's place) are published
            try:
                with urllib.request.urlopen("http://127.0.0.1:18083/", timeout=5) as r:
                    return r.status == 200 and r.read()
            except OSError:
                return None
        assert b"Directory listing" in wait_for("the service to answer on its published port", fetch)
        i = info(vm, "svc")
        assert i["running"] and i["main"]["restart"] == "on-failure", i["main"]
        i = stopped(vm, "crashy")
        assert i["main"]["exit_code"] == 7 and i["main"]["restart"] == "no", i["main"]
        # a changed command is a changed spec
        f.write_text(f.read_text().replace("exit 7", "exit 8"))
        r = vm.run("up", "-f", str(f))
        assert r.returncode == 1 and "crashy: changed (command changed)" in decode(r.stdout), r
    finally:
        vm.run("down", "-f", str(f))
        vm.run("rm", "-f", "svc", "crashy")
