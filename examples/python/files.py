#!/usr/bin/env python3
"""Files: a project tree in, a command over it, results out (docker cp semantics)."""
import os
import tempfile

import cocoon

with tempfile.TemporaryDirectory() as tmp:
    proj = os.path.join(tmp, "proj")
    os.makedirs(os.path.join(proj, "src"))
    with open(os.path.join(proj, "src", "app.py"), "w") as f:
        f.write("import os\nos.makedirs('out', exist_ok=True)\nopen('out/result.txt', 'w').write('computed 42\\n')\n")

    with cocoon.Box.create(memory="512M", ephemeral=True) as box:
        box.files.mkdir("/work", parents=True)
        box.files.upload(proj, "/work")                      # -> /work/proj
        box.exec(["python3", "src/app.py"], cwd="/work/proj", check=True)
        for entry in box.files.list("/work/proj"):
            print(f"{entry.type:9} {entry.mode:o} {entry.name}")
        box.files.download("/work/proj/out", tmp)            # -> tmp/out
        print(open(os.path.join(tmp, "out", "result.txt")).read(), end="")
