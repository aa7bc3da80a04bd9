#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_mcp: one JSON-RPC message per file. Good messages of
every method, then bad ones: wrong or missing jsonrpc, batches (empty, nested), ids
that are null, reals, huge integers, long strings, objects; methods that are not strings
or are empty or huge; params that are arrays or strings; tool arguments of the wrong
types, out of range, unknown keys, NULs; deep nesting, invalid UTF-8, truncated text.
Run: python3 tests/fuzz/make_mcp_corpus.py"""
import hashlib
import json
import os
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_mcp")


def msg(method, params=None, id=1, **extra):
    m = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        m["params"] = params
    m.update(extra)
    return json.dumps(m).encode()


def call(name, args):
    return msg("tools/call", {"name": name, "arguments": args})


SEEDS = [
    msg("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}),
    msg("initialize", {"protocolVersion": "1999-01-01"}),
    msg("initialize", {}),
    msg("initialize"),
    msg("ping"),
    msg("tools/list"),
    msg("resources/templates/list"),
    json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
    json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 5, "result": {}}).encode(),
    call("exec", {"box": "b", "argv": ["ls", "-l"], "env": {"A": "1"}, "timeout_s": 5, "max_output_bytes": 10}),
    call("box_create", {"image": "default", "cpus": 2, "memory_mib": 256, "keep": True, "env": {"K": "V"}}),
    call("file_write", {"box": "b", "path": "/x", "content": "aGk=", "base64": True, "mode": 420}),
    call("exec_signal", {"id": 1, "signal": "KILL"}),
    # bad
    b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
    b'{"id":1,"method":"ping"}',
    b'{"jsonrpc":2.0,"id":1,"method":"ping"}',
    b'[]', b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', b'[[[]]]',
    b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":-9223372036854775808,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
    ('{"jsonrpc":"2.0","id":"' + "i" * 300 + '","method":"ping"}').encode(),
    b'{"jsonrpc":"2.0","id":1,"method":42}',
    b'{"jsonrpc":"2.0","id":1,"method":""}',
    ('{"jsonrpc":"2.0","id":1,"method":"' + "m" * 200 + '"}').encode(),
    b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}',
    b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","id":2}',
    b'{"jsonrpc":"2.0","id":1,"method":"pi\\u0000ng"}',
    call("exec", {"box": 5, "argv": "ls"}),
    call("exec", {"box": "b", "argv": [], "timeout_s": 10 ** 30}),
    call("exec", {"box": "b", "argv": [1, None], "env": {"A": 1}}),
    call("box_create", {"cpus": -1, "memory_mib": 1e300, "bogus": True}),
    call("box_create", {"name": "a\u0000b"}),
    call("exec_signal", {"id": 1, "signal": "SEGV"}),
    call("snapshot_create", {"box": "b", "name": "s" * 64}),
    call("snapshot_restore", {"box": "b", "snapshot": ""}),
    call("snapshot_remove", {"snapshot": ["a"]}),
    call("snapshot_list", {"box": None}),
    call("box_export", {"source": "b", "host_path": "relative/../x"}),
    call("box_import", {"host_path": "/x", "name": "n\u0000", "keep": "yes"}),
    call("nope", {}),
    msg("tools/call", {"name": "exec", "arguments": "x"}),
    b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b'{"a":' * 500 + b'1' + b'}' * 501,
    b'{"jsonrpc":"2.0","id":"\xff\xfe","method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"meth',
    b'',
    b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}',
    b'not json at all \x00\x01\x02',
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for s in SEEDS:
        with open(os.path.join(OUT, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
