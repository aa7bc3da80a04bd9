"""The code interpreter (`cocoon code`, cocoon_code_run): stateful Python, JavaScript and
bash contexts in a running box, their events as they are produced, errors, timeouts
that keep the context, context management, rich results in the code-interpreter image,
and a hostile context answer refused cleanly."""
import json
import os
import time

import pytest

from conftest import SHARE_DIR, decode, sh

CODE_IMAGE = os.path.join(SHARE_DIR, "images", "code-interpreter.ext4")


def code(vm, box, src, *opts, check=0, **kw):
    return vm.run("code", *opts, box, src, check=check, **kw)


def events(vm, box, src, *opts, check=0):
    r = code(vm, box, src, "--json", *opts, check=check)
    return [json.loads(line) for line in decode(r.stdout).splitlines()]


def out(r):
    return decode(r.stdout)


def test_python_state_imports_cwd(vm, boxes):
    box = boxes("ci")
    code(vm, box, "x = 1")
    assert out(code(vm, box, "x + 1")) == "2\n"
    code(vm, box, "import os, json\nos.makedirs('/tmp/w', exist_ok=True)\nos.chdir('/tmp/w')")
    assert out(code(vm, box, "json.dumps([os.getcwd()])")) == "'[\"/tmp/w\"]'\n"
    evs = events(vm, box, "print('a')\n40 + 2")
    assert evs[0] == {"type": "stdout", "text": "a\n"}
    assert evs[1] == {"type": "result", "is_main_result": True, "text": "42"}
    assert evs[-1]["type"] == "number_of_executions" and evs[-1]["execution_count"] == 5
    # output of child processes and stderr stream too; env is for one run only
    evs = events(vm, box, "import subprocess, sys\nprint('e', file=sys.stderr)\n"
                 "subprocess.run(['sh', '-c', 'echo child $K'])", "--env", "K=v1")
    texts = [(e["type"], e.get("text")) for e in evs]
    assert ("stderr", "e\n") in texts and ("stdout", "child v1\n") in texts
    assert out(code(vm, box, "os.environ.get('K', 'unset')")) == "'unset'\n"


def test_stdout_streams_before_the_run_ends(vm, boxes):
    box = boxes("ci")
    code(vm, box, "import time")
    p = vm.popen("code", box, "print('first', flush=True)\ntime.sleep(5)\nprint('second')")
    start = time.monotonic()
    line = p.stdout.readline()
    first_at = time.monotonic() - start
    rest = p.stdout.read()
    p.wait(timeout=60)
    end_at = time.monotonic() - start
    assert line == b"first\n" and rest == b"second\n"
    assert end_at - first_at > 3  # "first" came while the code still slept


def test_error_then_context_still_usable(vm, boxes):
    box = boxes("ci")
    code(vm, box, "y = 5")
    r = code(vm, box, "def f():\n    return 1 / 0\nf()", check=1)
    err = decode(r.stderr)
    assert "ZeroDivisionError: division by zero" in err and 'line 2, in f' in err and "ctx.py" not in err
    ev = [e for e in events(vm, box, "undefined_name", check=1) if e["type"] == "error"][0]
    assert ev["name"] == "NameError" and "undefined_name" in ev["value"] and "Traceback" in ev["traceback"]
    assert out(code(vm, box, "y")) == "5\n"


def test_timeout_interrupts_and_keeps_the_context(vm, boxes):
    box = boxes("ci")
    code(vm, box, "z = 7")
    r = code(vm, box, "while True:\n    pass", "--timeout", "2", check=1)
    assert "KeyboardInterrupt" in decode(r.stderr)
    assert r.elapsed < 30
    assert out(code(vm, box, "z")) == "7\n"
    # code that swallows every interrupt ends its context, which says so and comes back empty
    r = code(vm, box, "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n"
             "        pass", "--timeout", "1", check=1, timeout=90)
    assert "ignored 5 interrupts" in decode(r.stderr)
    assert "NameError" in decode(code(vm, box, "z", check=1).stderr)
    assert out(code(vm, box, "z = 8\nz")) == "8\n"


def test_contexts_independent_restart_remove(vm, boxes):
    box = boxes("ci")
    code(vm, box, "v = 'default'")
    made = json.loads(out(vm.run("code", "context", "create", box, check=0)))
    assert made["language"] == "python" and made["cwd"] == "/"
    ctx = made["id"]
    code(vm, box, "v = 'second'", "--context", ctx)
    assert out(code(vm, box, "v")) == "'default'\n"
    assert out(code(vm, box, "v", "--context", ctx)) == "'second'\n"
    listed = json.loads(out(vm.run("code", "context", "ls", "--json", box, check=0)))
    assert {c["id"] for c in listed} == {"python", ctx}
    vm.run("code", "context", "restart", box, ctx, check=0)
    r = code(vm, box, "v", "--context", ctx, check=1)
    assert "NameError" in decode(r.stderr)
    vm.run("code", "context", "rm", box, ctx, check=0)
    r = code(vm, box, "1", "--context", ctx, check=125)
    assert "no code context" in decode(r.stderr)
    r = vm.run("code", "context", "rm", box, ctx, check=125)
    assert "no code context" in decode(r.stderr)
    r = code(vm, box, "1", "--context", "../etc", check=125)
    assert "character other than" in decode(r.stderr)
    # a context survives the CLI's connection: a new client finds its state
    assert out(code(vm, box, "v")) == "'default'\n"


def test_bash_context(vm, boxes):
    box = boxes("ci")
    code(vm, box, "cd /tmp && export GREETING=hello && N=3", "-l", "bash")
    assert out(code(vm, box, "pwd; echo $GREETING $N", "-l", "bash")) == "/tmp\nhello 3\n"
    # a command reading stdin gets EOF, not the context's own command stream
    assert out(code(vm, box, "read line; echo \"got [$line] $?\"", "-l", "bash")) == "got [] 1\n"
    r = code(vm, box, "false", "-l", "bash", check=1)
    assert "exit status 1" in decode(r.stderr)
    r = code(vm, box, "sleep 100", "-l", "bash", "--timeout", "1", check=1)
    assert out(code(vm, box, "echo $N", "-l", "bash")) == "3\n"


def test_javascript_missing_node_names_the_image(vm, boxes):
    box = boxes("ci")
    r = code(vm, box, "1 + 1", "-l", "javascript", check=125)
    assert "node is not installed" in decode(r.stderr) and "code-interpreter" in decode(r.stderr)


HOSTILE = r'''
import os, socket, sys, json
d = "/run/cocoon/code/ctx/evil"
os.makedirs(d, exist_ok=True)
json.dump({"id": "evil", "language": "python", "cwd": "/"}, open(d + "/meta.json", "w"))
try: os.unlink(d + "/sock")
except FileNotFoundError: pass
s = socket.socket(socket.AF_UNIX); s.bind(d + "/sock"); s.listen(4)
open(d + "/pid", "w").write(str(os.getpid()))
answers = {
    b"unknown": b'{"type":"launch","text":"x"}\n',
    b"utf8": b'{"type":"stdout","text":"\xff\xfe"}\n',
    b"after": b'{"type":"number_of_executions","execution_count":1}\n{"type":"stdout","text":"late"}\n',
    b"cut": b'{"type":"stdout","text":"no end',
}
while True:
    c, _ = s.accept()
    req = b""
    while b"\n" not in req:
        part = c.recv(65536)
        if not part: break
        req += part
    kind = json.loads(req.split(b"\n")[0])["code"].encode()
    if kind == b"huge":
        c.sendall(b'{"type":"stdout","text":"' + b"a" * (17 << 20))
    else:
        c.sendall(answers[kind])
    c.close()
'''


def test_hostile_context_answers_refused(vm, boxes):
    box = boxes("ci")
    code(vm, box, "1")  # puts the runners in place
    vm.run("cp", "-", f"{box}:/tmp", input=_tar("evil.py", HOSTILE.encode()), check=0)
    vm.run("exec", "-d", box, "--", "python3", "/tmp/evil.py", check=0)
    sh(vm, box, "for i in $(seq 100); do [ -S /run/cocoon/code/ctx/evil/sock ] && exit 0; sleep 0.1; done; exit 1",
       check=0)
    for kind, why in (("unknown", "unknown event type"), ("utf8", "not JSON"),
                      ("after", "after number_of_executions"), ("cut", "without its end"),
                      ("huge", "longer than 16777216 bytes")):
        r = code(vm, box, kind, "--context", "evil", check=125, timeout=120)
        err = decode(r.stderr)
        assert "broke the protocol" in err and why in err, (kind, err)
    assert out(code(vm, box, "6 * 7")) == "42\n"  # the box and its other contexts are fine


def _tar(name, data):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


needs_code_image = pytest.mark.skipif(not os.path.exists(CODE_IMAGE),
                                      reason="skipped: the code-interpreter image is not built (make code-image)")


@needs_code_image
def test_code_image_rich_results_and_javascript(vm, boxes, tmp_path):
    box = boxes("ci", "code-interpreter")
    evs = events(vm, box, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    main = [e for e in evs if e["type"] == "result"][0]
    assert "<table" in main["html"] and "a" in main["text"]
    save = tmp_path / "pngs"
    save.mkdir()
    r = code(vm, box, "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([1, 2, 3])\n"
             "plt.figure(); plt.bar([1, 2], [3, 4])\nNone", "--save-dir", str(save))
    pngs = sorted(os.listdir(save))
    assert pngs == ["result-1.png", "result-2.png"], decode(r.stderr)
    for p in pngs:
        assert (save / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = code(vm, box, "import matplotlib.pyplot as plt\nplt.plot([1])\n1")
    assert "1 PNG result not shown" in decode(r.stderr)
    # javascript: state, console output, last value, errors, await
    code(vm, box, "var n = 20; globalThis.m = 1", "-l", "javascript")
    evs = events(vm, box, "console.log('hi'); n + 22", "-l", "javascript")
    assert evs[0] == {"type": "stdout", "text": "hi\n"}
    assert evs[1]["text"] == "42"
    r = code(vm, box, "null.x", "-l", "javascript", check=1)
    assert "TypeError" in decode(r.stderr)
    assert out(code(vm, box, "await new Promise(r => setTimeout(() => r(n), 10))", "-l", "javascript")) == "20\n"
    r = code(vm, box, "while (true) {}", "-l", "javascript", "--timeout", "1", check=1)
    assert "timed out" in decode(r.stderr)
    assert out(code(vm, box, "n", "-l", "javascript")) == "20\n"


def test_rest_code_and_contexts(vm, boxes):
    from openapi_check import check_request, check_response
    from serve_client import ServeServer
    box = boxes("ci")
    with ServeServer(vm) as server:
        api = server.client(check=check_response)
        base = f"/v1/boxes/{box}/code"
        r = api.request("POST", base, json={"code": "import time\nq = 41\nprint('p', flush=True)\ntime.sleep(3)\nq + 1"})
        assert r.status == 200 and r.content_type == "application/x-ndjson", r
        evs = [json.loads(line) for line in r.body.decode().splitlines()]
        assert evs[0] == {"type": "stdout", "text": "p\n"}
        assert evs[1] == {"type": "result", "is_main_result": True, "text": "42"}
        assert evs[2]["type"] == "number_of_executions"
        # the stream comes as it is produced: the first line before the run ends
        conn, resp = api.open("POST", base, json={"code": "print('now', flush=True)\ntime.sleep(4)\n'done'"})
        try:
            t0 = time.monotonic()
            first = resp.readline()
            first_at = time.monotonic() - t0
            rest = resp.read()
            end_at = time.monotonic() - t0
        finally:
            conn.close()
        assert json.loads(first) == {"type": "stdout", "text": "now\n"} and b"'done'" in rest
        assert end_at - first_at > 2
        check_request("POST", base, {"code": "1", "timeout_seconds": 2, "env": {"A": "b"}})
        r = api.request("POST", base, json={"code": "1", "nope": 1})
        assert r.status == 400 and r.error_code() == "invalid_argument"
        r = api.request("POST", base, json={"code": "1", "language": "javascript"})
        assert r.status == 501 and "code-interpreter" in r.json["error"]["message"], r
        r = api.request("POST", base, json={"code": "1", "context": "nosuch"})
        assert r.status == 404, r
        r = api.request("POST", base + "/contexts", json={"language": "bash", "cwd": "/tmp"})
        assert r.status == 201 and r.json["language"] == "bash" and r.json["cwd"] == "/tmp", r
        ctx = r.json["id"]
        r = api.request("POST", base, json={"code": "pwd", "context": ctx})
        assert [json.loads(x) for x in r.body.decode().splitlines()][0] == {"type": "stdout", "text": "/tmp\n"}
        r = api.request("GET", base + "/contexts")
        assert r.status == 200 and {c["id"] for c in r.json} == {"python", ctx}
        assert api.request("POST", f"{base}/contexts/{ctx}/restart").status == 204
        assert api.request("DELETE", f"{base}/contexts/{ctx}").status == 204
        assert api.request("DELETE", f"{base}/contexts/{ctx}").status == 404
        assert api.request("DELETE", f"{base}/contexts/python").status == 204
