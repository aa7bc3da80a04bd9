#!/usr/bin/env python3
"""The code interpreter: state kept between runs, output as it comes, results, errors,
a timeout that keeps the context, and a context of its own."""
import cocoon

with cocoon.Box.create(memory="512M", ephemeral=True) as box:
    box.run_code("x = 20")
    ex = box.run_code("import os\nos.chdir('/tmp')\nprint('in', os.getcwd())\nx + 22",
                      on_stdout=lambda text: print("streamed:", text, end=""))
    print("text:", ex.text, "| stdout:", ex.logs.stdout, "| count:", ex.execution_count)

    err = box.run_code("def f():\n    return 1 / 0\nf()").error
    print(f"error: {err.name}: {err.value}")
    print(err.traceback.rstrip().splitlines()[-2].strip())

    ex = box.run_code("while True: pass", timeout=2)
    print("timeout:", ex.error.name, "| x is still", box.run_code("x").text)

    print(box.run_code('cd /etc && echo "$(ls | wc -l) entries in $PWD"', language="bash").stdout, end="")

    ctx = box.create_code_context("python", cwd="/root")
    box.run_code("y = 'only here'", context=ctx)
    print("contexts:", sorted(c.id if c.id in ("python", "bash") else "<new>" for c in box.list_code_contexts()))
    print("in ctx:", box.run_code("y", context=ctx).text, "| in default:", box.run_code("y").error.name)
    box.remove_code_context(ctx)
