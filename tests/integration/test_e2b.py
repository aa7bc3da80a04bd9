"""cocoon's E2B-compatible front driven by E2B's published SDKs, unmodified.

tests/js/e2b_acceptance.mjs runs `e2b` and `@e2b/code-interpreter` (pinned in
tests/js/package.json, installed by scripts/npm-deps into a cache outside the clone)
against a cocoon-serve listening on loopback TCP with a token, pointed at it only by
E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY, over real boxes. The script prints one JSON
line per check; each check is reported here as its own test. A check the server answers
"not there" for (the code interpreter before it lands) is skipped with that reason.
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, vm_missing_reason
from test_serve_boxlite import SERVE, node_modules, tcp_serve

SCRIPT = os.path.join(REPO, "tests", "js", "e2b_acceptance.mjs")
TOKEN = "e2b-acceptance-" + "93b1c0d27a4e58f6"
SCRIPT_TIMEOUT = float(os.environ.get("COCOON_E2B_TIMEOUT", "1800"))

# What the script checks, in its order (a check it never reports is a failure).
CHECKS = [
    "unknown_template", "wrong_key_refused", "create", "access_token_checked", "envelope_bound", "run_stdout_stderr", "run_env_cwd",
    "run_exit_code_error", "run_streaming_callbacks", "background_wait", "background_list_kill", "stdin", "stream_input",
    "connect_to_process", "pty", "files_write_read", "files_binary", "files_write_many_relative",
    "files_list_exists_info", "files_makedir_rename_remove", "files_missing", "watch_dir", "get_info", "list", "connect",
    "ci_create", "list_paging", "ci_state_across_calls", "ci_exception", "ci_matplotlib_png", "ci_contexts", "kill",
    "timeout_expires",
]


class Run:
    def __init__(self, results, stderr):
        self.results, self.stderr = results, stderr
        self.server_log, self.problems, self.boxes_at_end = "", [], []

    def context(self):
        return f"\nclient stderr (tail): {self.stderr[-2000:]}\ncocoon-serve log (tail):\n{self.server_log[-3000:]}"


def run_script(url, modules):
    env = dict(os.environ, E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=TOKEN, E2B_NODE_MODULES=modules)
    for k in ("E2B_DOMAIN", "E2B_DEBUG", "E2B_ACCESS_TOKEN"):
        env.pop(k, None)
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
    return Run(results, stderr)


@pytest.fixture(scope="module")
def e2b_run(tmp_path_factory):
    """Runs the script once against a cocoon-serve over a fresh COCOON_HOME; then records
    the boxes left (the script kills one sandbox and lets the other expire, so none may
    be), stops the server and collects leftovers."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")
    assert os.access(SERVE, os.X_OK), f"{SERVE} is not built (make all)"
    modules = node_modules()
    tmp = tmp_path_factory.mktemp("e2b")
    # the script kills one sandbox and lets the other expire: boxes left are checked
    # by test_e2b_leaves_nothing_behind (boxes_at_end), before the cleanup removes them
    with tcp_serve(tmp, TOKEN, report_boxes_left=False) as served:
        run = run_script(served.url, modules)
        run.boxes_at_end = served.c.run("ls", "-a", "-q", timeout=60).stdout.decode().split()
    run.server_log, run.problems = served.server_log, served.problems
    return run


@pytest.mark.parametrize("check", CHECKS)
def test_e2b_sdk(e2b_run, check):
    rec = e2b_run.results.get(check)
    assert rec is not None, f"the client script never reported {check!r}" + e2b_run.context()
    if rec.get("skip"):
        pytest.skip(f"skipped: {rec['skip']}")
    assert rec["ok"], f"{check}: {rec['detail']}" + e2b_run.context()


def test_e2b_leaves_nothing_behind(e2b_run):
    """Every sandbox the script made is gone when it ends (one killed, one removed by its
    timeout, which is what timeout_expires waits for), cocoon-serve stops cleanly on
    SIGTERM, no sanitizer reports, no VM of the test's home still runs."""
    assert not e2b_run.boxes_at_end, f"boxes left after the script: {e2b_run.boxes_at_end}" + e2b_run.context()
    assert not e2b_run.problems, "\n".join(e2b_run.problems) + e2b_run.context()


def test_expired_sandbox_answers_not_found_only_once_its_box_is_gone(tmp_path):
    """The sandbox timeout removes the box; a client told 404 for it (as the SDK's wait
    for the end is) must not find the box any more. The reaper is slowed down by 3 s
    (COCOON_TEST_DELAY_E2B_REAP) so that the window where it used to answer 404 while
    the box was still there is wide; the server then stops with no box left."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")

    def call(url, method, path, body=None):
        req = urllib.request.Request(url + path, method=method, headers={"X-API-KEY": TOKEN, "Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    with tcp_serve(tmp_path, TOKEN, extra_env={"COCOON_TEST_DELAY_E2B_REAP": "3000"}) as served:
        status, made = call(served.url, "POST", "/v2/sandboxes", {"templateID": "base", "timeout": 1})
        assert status == 201, (status, made)
        sid = made["sandboxID"]
        deadline = time.monotonic() + 120
        while call(served.url, "GET", f"/sandboxes/{sid}")[0] == 200:
            assert time.monotonic() < deadline, "the sandbox outlived its 1 s timeout by 2 minutes"
            time.sleep(0.2)
        assert call(served.url, "GET", f"/sandboxes/{sid}")[0] == 404
        left = served.c.run("ls", "-a", "-q", timeout=60).stdout.decode().split()
        assert left == [], f"the sandbox answered 404 while its box was still there: {left}"
