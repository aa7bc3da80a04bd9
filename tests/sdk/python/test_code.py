"""box.run_code over cocoon's code interpreter, once per transport: state kept across
runs, errors with their traceback, streaming callbacks (and one that raises), a
timeout that keeps the context, contexts (create, list, restart, remove), the old
simple uses, AsyncBox and Sandbox; matplotlib/pandas when the code-interpreter image
is built."""
import asyncio
import os

import pytest

import cocoon
from conftest import SHARE_DIR


def test_state_kept_and_result(box):
    assert box.run_code("x = 20").results == []
    ex = box.run_code("import os\nos.chdir('/tmp')\nprint('in', os.getcwd())\nx + 22")
    assert ex.text == "42"
    assert ex.logs.stdout == ["in /tmp\n"] and ex.stdout == "in /tmp\n"
    assert ex.error is None and ex.ok
    main = [r for r in ex.results if r.is_main_result]
    assert len(main) == 1 and main[0].formats() == ["text"] and str(main[0]) == "42"
    later = box.run_code("os.getcwd()")
    assert later.text == "'/tmp'"
    assert later.execution_count > ex.execution_count


def test_error_with_traceback(box):
    ex = box.run_code("def f():\n    return 1 / 0\nf()")
    assert ex.error is not None and not ex.ok
    assert ex.error.name == "ZeroDivisionError"
    assert ex.error.value == "division by zero"
    assert "line 2, in f" in ex.error.traceback
    assert ex.text is None
    with pytest.raises(cocoon.CodeFailed) as info:
        ex.check()
    assert info.value.execution is ex
    assert box.run_code("1 + 1").check().text == "2"  # the context is still there


def test_streaming_callbacks(box):
    seen = []
    code = "import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.2)\n" \
           "sys.stderr.write('warn\\n')\n'done'"
    ex = box.run_code(code, on_stdout=lambda t: seen.append(("out", t)), on_stderr=lambda t: seen.append(("err", t)),
                      on_result=lambda r: seen.append(("result", r.text)),
                      on_error=lambda e: seen.append(("error", e.name)))
    assert "".join(t for k, t in seen if k == "out") == "tick 0\ntick 1\ntick 2\n"
    assert ("err", "warn\n") in seen and seen[-1] == ("result", "'done'")
    assert ex.text == "'done'"
    errors = []
    box.run_code("raise ValueError('bad')", on_error=errors.append)
    assert [(e.name, e.value) for e in errors] == [("ValueError", "bad")]


def test_callback_that_raises_interrupts(box):
    class Stop(Exception):
        pass

    def on_stdout(text):
        raise Stop(text)

    with pytest.raises(Stop):
        box.run_code("import time\nprint('first', flush=True)\ntime.sleep(30)\nprint('never')", on_stdout=on_stdout,
                     timeout=60)
    assert box.run_code("'alive'").text == "'alive'"  # the run was interrupted, the process lives


def test_timeout_keeps_context(box):
    box.run_code("kept = 'yes'")
    ex = box.run_code("while True: pass", timeout=2)
    assert ex.error is not None and ex.error.name == "KeyboardInterrupt"
    assert box.run_code("kept").text == "'yes'"


def test_env_for_one_run(box):
    assert box.run_code("import os\nos.environ.get('GREETING')", env={"GREETING": "hi"}).text == "'hi'"


def test_contexts(box):
    ctx = box.create_code_context("python", cwd="/etc")
    assert ctx.language == "python" and ctx.cwd == "/etc" and ctx.id not in ("python", "bash")
    assert ctx.id in [c.id for c in box.list_code_contexts()]
    box.run_code("y = 5", context=ctx)
    assert box.run_code("y * 2", context=ctx.id).text == "10"
    assert box.run_code("import os; os.getcwd()", context=ctx).text == "'/etc'"
    assert box.run_code("'y' in dir()").text == "False"  # the default context does not see it
    box.restart_code_context(ctx)
    assert box.run_code("y", context=ctx).error.name == "NameError"
    box.remove_code_context(ctx.id)
    assert ctx.id not in [c.id for c in box.list_code_contexts()]
    with pytest.raises(cocoon.NotFound):
        box.run_code("1", context=ctx)
    with pytest.raises(cocoon.NotFound):
        box.remove_code_context("no-such-context")


def test_bash_and_old_uses(box):
    assert box.run_code("print(1)").stdout == "1\n"
    assert box.run_code("import sys\nprint(sys.version_info[0] * 14)").stdout == "42\n"
    assert box.run_code("echo $((2 + 3))", language="shell").stdout == "5\n"
    box.run_code("cd /etc && N=7", language="bash")
    assert box.run_code('echo "$N in $PWD"', language="sh").stdout == "7 in /etc\n"
    with pytest.raises(cocoon.InvalidArgument):
        box.run_code("x", language="cobol")


def test_javascript_needs_node(box):
    with pytest.raises(cocoon.Unsupported, match="code-interpreter"):
        box.run_code("1 + 1", language="javascript")


def test_async_and_sandbox(client):
    async def main():
        async with cocoon.AsyncBox.create(client=client, memory="512M", ephemeral=True) as box:
            await box.run_code("n = 6")
            ex = await box.run_code("n * 7")
            assert ex.text == "42"
            ctx = await box.create_code_context("bash")
            assert [c.id for c in await box.list_code_contexts() if c.id == ctx.id] == [ctx.id]
            assert (await box.run_code("echo $((6 * 7))", context=ctx)).stdout == "42\n"
            await box.restart_code_context(ctx)
            await box.remove_code_context(ctx)
        async with cocoon.Sandbox.create(client=client, memory="512M") as sb:
            r = await sb.run("print(sum(range(10)))")
            assert r.stdout == "45\n" and isinstance(r, cocoon.CodeExecution)
    asyncio.run(main())


def test_code_interpreter_image(client):
    if not os.path.exists(os.path.join(SHARE_DIR, "images", "code-interpreter.ext4")):
        pytest.skip("the code-interpreter image is not built (make code-image)")
    with cocoon.Box.create("code-interpreter", client=client, memory="1G", ephemeral=True) as box:
        ex = box.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
        assert ex.results[0].html and "<table" in ex.results[0].html
        ex = box.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
        assert any(r.png for r in ex.results)
        assert box.run_code("[1, 2].length", language="javascript").text == "2"
