"""Shared by the benchmarks: replace one '## ' section of bench/RESULTS.md (or append
it), so each benchmark rewrites only its own figures."""
import os

HEADER = "# cocoon benchmark results\n\nEach section is written by the script it names; rerun it to refresh.\n"


def replace_section(path, title, body):
    """title is the full '## ...' heading line; body follows it."""
    text = open(path).read() if os.path.exists(path) else HEADER
    section = title.rstrip("\n") + "\n\n" + body.strip("\n") + "\n"
    if title in text:
        head, rest = text.split(title, 1)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
