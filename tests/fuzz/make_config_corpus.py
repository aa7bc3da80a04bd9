#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_config: the reference cocoon.yaml, the peers' spelling,
and bad files (unknown and duplicate keys, anchors, aliases, tags, wrong types, bad
sizes, rules and ports, ${NAME} misuse, deep nesting, several documents, NULs, broken
YAML). Run: python3 tests/fuzz/make_config_corpus.py"""
import hashlib
import os
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_config")

EXAMPLE = """boxes:
  web:
    image: python:3.12-slim
    cpus: 2
    memory: 512M
    disk: 4G
    env: {DEBUG: "1"}
    workdir: /app
    user: app
    ephemeral: false
    network:
      mode: public
      allow: ["api.openai.com", "*.pypi.org", "10.0.0.0/8:5432/tcp"]
      deny: ["169.254.169.254/32"]
      ports: ["8080:80"]
    scripts:
      test: pytest -q
      build: [make, -j2]
"""

SEEDS = [
    EXAMPLE,
    "sandboxes:\n  code-runner:\n    image: python:3.12-slim\n    network:\n"
    "      allow: [\"api.openai.com\", \"pypi.org\"]\n      block: [\"169.254.169.254/32\"]\n",
    "sandboxes:\n  code-runner:\n    image: python:3.12-slim\n    secrets: [OPENAI_API_KEY]\n",
    "boxes:\n  a:\n  b: {}\n  c: {rootfs: ../tree, env: [\"A=1\", \"B=2\"]}\n",
    "boxes:\n  web:\n    memroy: 1G\n",
    "boxes:\n  web:\n    cpus: 1\n    cpus: 2\n",
    "boxes:\n  web: &a {cpus: 2}\n  api: *a\n",
    "boxes:\n  web: {cpus: !!int 2}\n",
    "%TAG !e! tag:example.com,2000:\n---\nboxes: {web: {}}\n",
    "boxes: {web: {}}\n---\nboxes: {api: {}}\n",
    "boxes:\n  ? [a]\n  : 1\n",
    "boxes:\n  web:\n    cpus: \"2\"\n    memory: 100000K\n    disk: 65T\n    ephemeral: yes\n",
    "boxes:\n  web:\n    image: ${UNSET_COCOON_FUZZ}\n    user: ${USER:-x}\n    workdir: \"$${HOME}\"\n",
    "boxes:\n  web:\n    env: {A: \"${1}\", B: \"${X\", C: \"${X:-a\"}\n",
    "boxes:\n  web:\n    network: {mode: none, allow: [a.com], ports: [\"99999:1\"], deny: [\"!\"]}\n",
    "boxes:\n  web:\n    scripts: {\"a b\": x, t: [], u: \"\", v: {a: 1}}\n",
    "boxes: {w: {env: " + "[" * 40 + "]" * 40 + "}}\n",
    "boxes: {w: {user: \"a\\0b\"}}\n",
    "boxes:\n  web: [\n",
    "boxes:\x00\n",
    "- a\n- b\n",
    "",
    "boxes:\n" + "".join(f"  b{i}:\n" for i in range(300)),
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for s in SEEDS:
        b = s.encode()
        with open(os.path.join(OUT, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
