"""`cocoon serve` driven by BoxLite's published REST client, unmodified.

tests/js/boxlite_acceptance.mjs runs @boxlite-ai/boxlite (pinned in tests/js/package.json,
installed by scripts/npm-deps into a cache outside the clone) against a cocoon-serve
listening on loopback TCP with a bearer token, over real boxes. The script prints one
JSON line per check; each check is reported here as its own test. The same script is
also run against tests/integration/boxlite_double.py, a stand-in server that answers the
way BoxLite's own reference server does: when a check fails there, the script or the
client changed, not cocoon.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from boxlite_double import BoxliteDouble
from conftest import BIN_DIR, REPO, Cocoon, kill_leftovers, vm_missing_reason

SERVE = os.path.join(BIN_DIR, "cocoon-serve")
SCRIPT = os.path.join(REPO, "tests", "js", "boxlite_acceptance.mjs")
NPM_DEPS = os.path.join(REPO, "scripts", "npm-deps")
TOKEN = "acceptance-token-" + "5f0c2a9e71d4b3c8"
SCRIPT_TIMEOUT = float(os.environ.get("COCOON_BOXLITE_TIMEOUT", "1800"))

# What the script checks, in its order (a check it never reports is a failure).
CHECKS = [
    "wrong_token_refused", "create", "duplicate_name_refused", "get_info", "list", "start",
    "exec_streams_and_exit_code", "exec_env_and_working_dir", "exec_stdin", "exec_large_output",
    "exec_missing_command", "exec_quiet_command", "exec_signal", "exec_kill", "copy_in_file", "copy_in_dir",
    "copy_in_overwrites", "copy_out_file", "copy_out_dir", "copy_out_missing_path", "box_metrics",
    "runtime_metrics", "stop", "remove", "missing_box", "simplebox",
]


def node_modules():
    """The client's node_modules (installed once into the cache), or a skip with the reason."""
    if shutil.which("node") is None:
        pytest.skip("skipped: node is not installed (scripts/setup)")
    p = subprocess.run([NPM_DEPS], capture_output=True, text=True, timeout=900)
    if p.returncode == 3:
        pytest.skip("skipped: " + (p.stderr.strip() or "the npm registry cannot be reached"))
    assert p.returncode == 0, f"scripts/npm-deps failed ({p.returncode}): {p.stderr[-3000:]}"
    return p.stdout.strip().splitlines()[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """The script's reports ({check: {"ok", "detail", "ms"}}) and what surrounds them."""

    def __init__(self, results, stdout, stderr, server_log=""):
        self.results, self.stdout, self.stderr, self.server_log = results, stdout, stderr, server_log
        self.problems = []  # what the teardown found (leftover VMs, sanitizer reports, exit status)

    def context(self):
        out = f"\nclient stderr (tail): {self.stderr[-2000:]}"
        if self.server_log:
            out += f"\ncocoon-serve log (tail):\n{self.server_log[-3000:]}"
        return out


def run_script(url, modules, tmp):
    env = dict(os.environ, BOXLITE_URL=url, BOXLITE_TOKEN=TOKEN, BOXLITE_NODE_MODULES=modules,
               BOXLITE_TMP=str(tmp))
    try:
        p = subprocess.run(["node", SCRIPT], capture_output=True, text=True, env=env, timeout=SCRIPT_TIMEOUT)
        stdout, stderr = p.stdout, p.stderr + (f"\n(node exited {p.returncode})" if p.returncode else "")
    except subprocess.TimeoutExpired as e:
        stdout = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = f"(node killed after {SCRIPT_TIMEOUT:.0f} s)"
    results = {}
    for line in stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "check" in rec:
            results[rec["check"]] = rec
    return results, stdout, stderr


def wait_until_serving(url, proc, log_path, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                pytest.fail(f"cocoon-serve exited {proc.returncode} before serving: {f.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/config", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"cocoon-serve did not answer GET /v1/config within {deadline_s} s")


class ServedRun:
    """What tcp_serve leaves for the test: the server's URL and home while it runs; its
    log and the problems found at its stop once it ended."""

    def __init__(self, c, home, url):
        self.c, self.home, self.url = c, home, url
        self.server_log, self.problems = "", []


@contextlib.contextmanager
def tcp_serve(tmp, token, report_boxes_left=True, extra_env=None):
    """A cocoon-serve on a loopback TCP port with token over a fresh COCOON_HOME in tmp.
    At the end it is stopped with SIGTERM (a non-zero exit, a hang or an earlier death is
    a problem), any box left is removed (a problem when report_boxes_left), processes of
    boxes left running are killed (a problem) and sanitizer reports collected."""
    home = str(tmp / "home")
    os.makedirs(home, mode=0o700)
    c = Cocoon(home, tmp)
    token_file = tmp / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    served = ServedRun(c, home, f"http://127.0.0.1:{port}")
    log_path = str(tmp / "serve.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([SERVE, "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(c.env, **(extra_env or {})))
    try:
        wait_until_serving(served.url, proc, log_path)
        yield served
    finally:
        problems = served.problems
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
                if rc != 0:
                    problems.append(f"cocoon-serve exited {rc} on SIGTERM")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                problems.append("cocoon-serve still running 60 s after SIGTERM (killed)")
        else:
            problems.append(f"cocoon-serve died during the run (exit {proc.returncode})")
        ids = c.run("ls", "-a", "-q", timeout=60).stdout.decode().split()
        if ids:
            if report_boxes_left:
                problems.append(f"boxes left after the run (removed): {ids}")
            c.run("rm", "-f", *ids, timeout=180)
        left = kill_leftovers(home)
        if left:
            problems.append("box processes left running (killed): " +
                            "; ".join(f"{pid} {cmd[:200]}" for pid, (_, cmd) in left.items()))
        problems += ["sanitizer report:\n" + r for r in c.sanitizer_reports()]
        with open(log_path, errors="replace") as f:
            served.server_log = f.read()


@pytest.fixture(scope="module")
def serve_run(tmp_path_factory):
    """Runs the script once against a cocoon-serve over a fresh COCOON_HOME; after it,
    the server is stopped, any box left is removed, and leftovers are recorded."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")
    assert os.access(SERVE, os.X_OK), f"{SERVE} is not built (make all)"
    modules = node_modules()
    tmp = tmp_path_factory.mktemp("boxlite")
    with tcp_serve(tmp, TOKEN) as served:
        results, stdout, stderr = run_script(served.url, modules, tmp / "client")
        run = Run(results, stdout, stderr)
    run.server_log, run.problems = served.server_log, served.problems
    return run


@pytest.mark.parametrize("check", CHECKS)
def test_boxlite_client(serve_run, check):
    rec = serve_run.results.get(check)
    assert rec is not None, f"the client script never reported {check!r}" + serve_run.context()
    assert rec["ok"], f"{check}: {rec['detail']} (client and server logs: test_serve_leaves_nothing_behind)"


def test_serve_leaves_nothing_behind(serve_run):
    """The script removes its boxes; cocoon-serve stops cleanly on SIGTERM; no sanitizer
    reports; no VM of the test's home still runs. On failure (of this or of any check) it
    shows the client's stderr and the server's log."""
    failed = [n for n in CHECKS if not serve_run.results.get(n, {}).get("ok")]
    assert not serve_run.problems and not failed, "\n".join(
        serve_run.problems + [f"checks that failed: {failed}"] * bool(failed)) + serve_run.context()


def test_script_against_boxlite_double(tmp_path):
    """The acceptance script passes against a server that answers as BoxLite's reference
    server does (commands run as host processes in a private mount namespace)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"skipped: the double runs commands under `unshare -rm`, which fails here: {probe.stderr.strip()}")
    modules = node_modules()
    with BoxliteDouble(token=TOKEN) as d:
        results, stdout, stderr = run_script(d.url, modules, tmp_path)
    failed = [f"{n}: {results[n]['detail']}" if n in results else f"{n}: never reported" for n in CHECKS
              if not results.get(n, {}).get("ok")]
    assert not failed, "against the double:\n" + "\n".join(failed) + f"\nclient stderr: {stderr[-2000:]}"
    assert sorted(results) == sorted(CHECKS), f"the script reports {sorted(results)}, the test knows {CHECKS}"
