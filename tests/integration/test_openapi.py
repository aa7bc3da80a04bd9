"""docs/openapi.yaml against itself and against a real cocoon-serve.

- the document is valid OpenAPI 3.1 (swagger-parser, tests/js/validate_openapi.mjs);
- GET /v1/openapi.yaml serves exactly the file;
- its paths and methods are the server's routes (every documented operation is routed,
  every other method answers 405 with the documented Allow, unknown paths 404);
- every answer of a real server, booting real boxes, matches the document
  (tests/integration/openapi_check.py, strict: undocumented fields fail), and every
  request body the server takes is one the document takes.
"""
import asyncio
import base64
import json
import os
import shutil
import subprocess
import time

import pytest

import openapi_check
import registry_fixture as rf
import small_images
from conftest import REPO
from openapi_check import DOCUMENT, OpenAPIMismatch, check_request, check_response
from serve_client import ServeServer

VALIDATOR = os.path.join(REPO, "tests", "js", "validate_openapi.mjs")
NPM_DEPS = os.path.join(REPO, "scripts", "npm-deps")
PROBE_BOX = "nobox-probe"
PROBE_EXEC = "exec_000000000000000000000000"
PROBE_IMAGE = "nosuch-image-probe:1"


def node_modules():
    """The npm packages' directory, or pytest.skip with the reason."""
    if shutil.which("node") is None:
        pytest.skip("skipped: node is not installed (scripts/setup installs it)")
    p = subprocess.run([NPM_DEPS], capture_output=True, text=True, timeout=900)
    if p.returncode == 3:
        pytest.skip(f"skipped: {p.stderr.strip()}")
    assert p.returncode == 0, f"scripts/npm-deps failed: {p.stderr[-3000:]}"
    return p.stdout.strip()


def validate(document):
    return subprocess.run(["node", VALIDATOR, node_modules(), document], capture_output=True, text=True,
                          timeout=120)


def call(api, method, path, json=None, expect=None, **kw):
    """One request: the client checks the answer against the document; a JSON body the
    server took must be one the document takes."""
    r = api.request(method, path, json=json, **kw)
    if expect is not None:
        assert r.status == expect, f"expected {expect}: {r!r}"
    if json is not None and 200 <= r.status < 300:
        check_request(method, path, json)
    return r


def refused(api, method, path, json, status=400, code="invalid_argument"):
    """A body the server refuses; when it refuses it as a bad argument (400), the
    document must refuse it too."""
    r = api.request(method, path, json=json)
    assert (r.status, r.error_code()) == (status, code), r
    if status == 400:
        with pytest.raises(OpenAPIMismatch):
            check_request(method, path, json)
    return r


# ---- the document itself ----

def test_document_is_valid_openapi():
    p = validate(DOCUMENT)
    assert p.returncode == 0, f"docs/openapi.yaml is not valid OpenAPI:\n{p.stdout}{p.stderr}"
    assert "valid: cocoon API" in p.stdout


def test_validator_refuses_a_broken_document(tmp_path):
    """The validation can fail: a dangling $ref and a response without a description."""
    with open(DOCUMENT) as f:
        text = f.read()
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace('$ref: "#/components/schemas/Box"', '$ref: "#/components/schemas/NoSuchBox"', 1))
    p = validate(str(broken))
    assert p.returncode == 1 and "NoSuchBox" in p.stderr, p.stdout + p.stderr
    broken.write_text(text.replace("          description: Removed\n", "", 1))
    p = validate(str(broken))
    assert p.returncode == 1, p.stdout + p.stderr


def test_checker_catches_what_the_document_does_not_say():
    """openapi_check fails on an undocumented field, a missing one, a wrong type, an
    undocumented status, a wrong content type and a 405 without the documented Allow."""
    box = {"box_id": "0123456789ab", "status": "running", "created_at": "2026-01-02T03:04:05Z",
           "updated_at": "2026-01-02T03:04:05Z", "image": "default", "cpus": 1, "memory_mib": 512,
           "auto_delete": False, "auto_stop": False, "disk_size_bytes": 1, "image_id": "local:default",
           "accel": "auto", "name": None, "pid": 7, "labels": {}}
    ok = {"Content-Type": "application/json"}
    check_response("GET", "/v1/boxes/b1", 200, ok, json.dumps(box))
    check_response("GET", "/v1/pfx/boxes/b1", 200, ok, json.dumps(box))
    bad = [
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, surprise=1)),
        ("GET", "/v1/boxes/b1", 200, ok, {k: v for k, v in box.items() if k != "status"}),
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, cpus="1")),
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, created_at="yesterday")),
        ("GET", "/v1/boxes/b1", 418, ok, box),
        ("GET", "/v1/boxes/b1", 200, {"Content-Type": "text/plain"}, box),
        ("PATCH", "/v1/boxes", 405, dict(ok, Allow="GET"),
         {"error": {"message": "m", "type": "MethodNotAllowedError", "code": "method_not_allowed"}}),
        ("GET", "/v1/config/extra", 200, ok, {}),
        ("GET", "/v1/me", 401, ok, {"error": {"message": "m", "type": "UnauthorizedError", "code": "unauthenticated"}}),
    ]
    for method, path, status, headers, body in bad:
        with pytest.raises(OpenAPIMismatch):
            check_response(method, path, status, headers, json.dumps(body))
    with pytest.raises(OpenAPIMismatch):
        check_request("POST", "/v1/boxes", {"name": "b1", "surprise": True})
    check_request("POST", "/v1/boxes", {"name": "b1", "network": {"outbound": {"mode": "disabled"}}})


# ---- the served document, authentication, routes ----

def test_served_document_is_the_file(cocoon):
    with open(DOCUMENT, "rb") as f:
        want = f.read()
    with ServeServer(cocoon) as server:
        api = server.client(check=check_response)
        r = call(api, "GET", "/v1/openapi.yaml", expect=200)
        assert r.content_type == "application/yaml"
        assert r.body == want, "GET /v1/openapi.yaml is not docs/openapi.yaml (rebuild cocoon-serve)"
        call(api, "HEAD", "/v1/openapi.yaml", expect=200)


def test_token_on_tcp_as_documented(cocoon):
    """Open operations answer without the token; the others want it (Bearer or
    X-API-Key) on TCP and nothing on the unix socket."""
    with ServeServer(cocoon, listen=True) as server:
        anonymous = server.tcp_client(check=check_response)
        for path in ("/v1/config", "/v1/openapi.yaml", "/v1/health"):
            call(anonymous, "GET", path, expect=200)
        assert call(anonymous, "GET", "/v1/config").json["auth_required"] is True
        for method, path in (("GET", "/v1/me"), ("GET", "/v1/boxes"), ("GET", "/v1/metrics"),
                             ("POST", "/v1/boxes"), ("GET", f"/v1/boxes/{PROBE_BOX}")):
            r = call(anonymous, method, path, expect=401)
            assert r.error_code() == "unauthenticated" and r.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = server.tcp_client(token="x" * 64, check=check_response)
        call(wrong, "GET", "/v1/me", expect=401)
        call(server.tcp_client(token=server.token, check=check_response), "GET", "/v1/me", expect=200)
        call(anonymous, "GET", "/v1/me", headers={"X-API-Key": server.token}, expect=200)
        call(anonymous, "GET", "/v1/me", headers={"X-API-Key": server.token, "Origin": "https://page.example"},
             expect=200)  # a page cannot send the token: Origin is no reason to refuse here
        local = server.client(check=check_response)
        call(local, "GET", "/v1/me", expect=200)
        assert call(local, "GET", "/v1/boxes", expect=200).json == {"boxes": [], "next_page_token": None}


def test_web_pages_refused_as_documented(cocoon):
    """Without a token, a request with an Origin (a web page) is refused on the unix
    socket and on TCP, and on TCP one for a foreign Host name (DNS rebinding)."""
    with ServeServer(cocoon, listen=True, no_token=True) as server:
        local = server.client(check=check_response)
        tcp = server.tcp_client(check=check_response)
        call(local, "GET", "/v1/boxes", expect=200)
        call(tcp, "GET", "/v1/boxes", expect=200)
        call(tcp, "GET", "/v1/boxes", headers={"Host": "localhost"}, expect=200)
        for api in (local, tcp):
            for method, path in (("GET", "/v1/config"), ("POST", "/v1/boxes"), ("HEAD", "/v1/health"),
                                 ("GET", f"/v1/boxes/{PROBE_BOX}")):
                r = call(api, method, path, headers={"Origin": "https://page.example"}, expect=403)
                assert method == "HEAD" or r.error_code() == "permission_denied", r
        r = call(tcp, "GET", "/v1/boxes", headers={"Host": "rebound.example"}, expect=403)
        assert r.error_code() == "permission_denied"
    assert not cocoon.box_dirs()


def probe_paths(doc):
    """(concrete path, template) for every documented path, with a routing prefix on
    the paths that take one and on those that do not (which must then be 404)."""
    out = []
    for template, item in doc.doc["paths"].items():
        concrete = "/v1" + template.replace("{box_id}", PROBE_BOX).replace("{exec_id}", PROBE_EXEC).replace(
            "{image}", PROBE_IMAGE)
        out.append(concrete)
        out.append("/v1/some-prefix" + concrete[3:])
    return out + ["/v1/nope", "/v2/boxes", "/v1", f"/v1/boxes/{PROBE_BOX}/nope",
                  f"/v1/boxes/{PROBE_BOX}/executions/{PROBE_EXEC}/nope", "/v1/a/b/boxes"]


def test_routes_are_the_documents(cocoon):
    """Every method on every documented path (and a few undocumented ones), on a server
    with no box: the answer must be one the document gives (405 with the documented
    Allow for a method the path does not take, 404 for a path it does not have), and a
    documented operation must reach its handler (never 'no such endpoint')."""
    doc = openapi_check.document()
    probe_body = json.dumps({"probe_unknown_field": 1})
    with ServeServer(cocoon) as server:
        api = server.client(check=check_response)
        seen = 0
        for path in probe_paths(doc):
            found = doc.find_path(path)
            for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"):
                body = probe_body if method in ("POST", "PUT", "PATCH") else None
                r = api.request(method, path, body=body,
                                headers={"Content-Type": "application/json"} if body else None)
                documented = found is not None and method.lower() in found[1]
                if documented and method != "HEAD":
                    assert not (r.json or {}).get("error", {}).get("message", "").startswith("no such endpoint"), r
                    seen += 1
        assert seen >= 30
    assert not cocoon.box_dirs(), "a probe made a box"


# ---- answers of a server with boxes that do not boot ----

def test_boxes_without_booting_match_the_document(cocoon):
    with ServeServer(cocoon) as server:
        api = server.client(check=check_response)
        config = call(api, "GET", "/v1/config", expect=200).json
        assert config["auth_required"] is False and config["capabilities"]["snapshots_enabled"] is False
        call(api, "HEAD", "/v1/config", expect=200)
        assert call(api, "GET", "/v1/me", expect=200).json["path_prefix"] is None
        call(api, "GET", "/v1/health", expect=200)
        call(api, "HEAD", "/v1/health", expect=200)

        # create
        spec = {"name": "b1", "cpus": 2, "memory_mib": 256, "env": {"A": "1"}, "labels": {"team": "x"},
                "working_dir": "/tmp", "user": "root", "network": {"outbound": {"mode": "disabled"}},
                "detach": False}
        b1 = call(api, "POST", "/v1/boxes", json=spec, expect=201).json
        assert (b1["name"], b1["status"], b1["cpus"], b1["memory_mib"], b1["pid"]) == ("b1", "configured", 2, 256, None)
        assert b1["env"] == {"A": "1"} and b1["labels"] == {"team": "x"} and b1["working_dir"] == "/tmp"
        b2 = call(api, "POST", "/v1/boxes", json={}, expect=201).json
        assert b2["name"] is None and b2["labels"] == {} and "env" not in b2
        key = {"Idempotency-Key": "create-b3-once"}
        b3 = call(api, "POST", "/v1/boxes", json={"name": "b3"}, headers=key, expect=201).json
        again = call(api, "POST", "/v1/boxes", json={"name": "b3"}, headers=key, expect=201).json
        assert again["box_id"] == b3["box_id"]
        r = api.request("POST", "/v1/boxes", json={"name": "b4"}, headers=key)
        assert (r.status, r.error_code()) == (422, "invalid_argument"), r
        r = api.request("POST", "/v1/boxes", json={"name": "b1"})
        assert (r.status, r.error_code()) == (409, "already_exists"), r

        # refused bodies: the server and the document agree
        refused(api, "POST", "/v1/boxes", {"name": "x", "surprise": 1})
        refused(api, "POST", "/v1/boxes", {"cpus": 0})
        refused(api, "POST", "/v1/boxes", {"cpus": "2"})
        refused(api, "POST", "/v1/boxes", {"memory_mib": 32})
        refused(api, "POST", "/v1/boxes", {"network": {"mode": "sideways"}})
        refused(api, "POST", "/v1/boxes", {"env": {"A=B": "1"}})
        refused(api, "POST", "/v1/boxes", {"image": "default", "rootfs": "/tmp"})
        refused(api, "POST", "/v1/boxes", {"volumes": [{"guest_path": "/data"}]}, 422, "unsupported")
        refused(api, "POST", "/v1/boxes", {"cmd": ["sleep", "1"]}, 422, "unsupported")
        for raw in (b'{"name":', b"[1, 2]", b'{"name": "a", "name": "b"}', b"\x00"):
            r = api.request("POST", "/v1/boxes", body=raw, headers={"Content-Type": "application/json"})
            assert (r.status, r.error_code()) == (400, "invalid_argument"), r
        r = api.request("POST", "/v1/boxes", body=b" " * (1024 * 1024 + 1))
        assert (r.status, r.error_code()) == (413, "invalid_argument"), r

        # read, list, page
        for ref in ("b1", b1["box_id"], b1["box_id"][:8], f"some-prefix/boxes/{b1['box_id']}"):
            path = f"/v1/{ref}" if "/" in ref else f"/v1/boxes/{ref}"
            assert call(api, "GET", path, expect=200).json["box_id"] == b1["box_id"]
        call(api, "HEAD", "/v1/boxes/b1", expect=204)
        call(api, "HEAD", f"/v1/boxes/{PROBE_BOX}", expect=404)
        r = call(api, "GET", f"/v1/boxes/{PROBE_BOX}", expect=404)
        assert r.error_code() == "not_found"
        ids = {b1["box_id"], b2["box_id"], b3["box_id"]}
        listed = call(api, "GET", "/v1/boxes", expect=200).json
        assert {b["box_id"] for b in listed["boxes"]} == ids and listed["next_page_token"] is None
        page = call(api, "GET", "/v1/boxes?page_size=2", expect=200).json
        assert len(page["boxes"]) == 2 and page["next_page_token"]
        rest = call(api, "GET", f"/v1/boxes?page_size=2&page_token={page['next_page_token']}", expect=200).json
        assert len(rest["boxes"]) == 1 and rest["next_page_token"] is None
        assert {b["box_id"] for b in page["boxes"] + rest["boxes"]} == ids
        assert len(call(api, "GET", "/v1/boxes?status=configured", expect=200).json["boxes"]) == 3
        assert call(api, "GET", "/v1/boxes?status=running", expect=200).json["boxes"] == []
        for query in ("page_size=0", "page_size=abc", "status=sideways", "page_token=zz"):
            assert call(api, "GET", f"/v1/boxes?{query}", expect=400).error_code() == "invalid_argument"

        # a box that never ran
        assert call(api, "GET", "/v1/boxes/b1/executions", expect=200).json == {"executions": []}
        call(api, "GET", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "HEAD", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "DELETE", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "GET", f"/v1/boxes/b1/executions/{PROBE_EXEC}/output", expect=404)
        refused(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/signal", {})
        refused(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/resize", {"cols": 80})
        call(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/signal", json={"signal": 15}, expect=404)
        call(api, "POST", f"/v1/boxes/{PROBE_BOX}/exec", json={"command": "true"}, expect=404)
        metrics = call(api, "GET", "/v1/boxes/b1/metrics", expect=200).json
        assert metrics["commands_executed_total"] == 0 and "cpu_percent" not in metrics
        assert call(api, "GET", "/v1/boxes/b1/network/stats", expect=200).json["present"] is False
        call(api, "GET", "/v1/boxes/b1/logs", expect=200)
        call(api, "GET", "/v1/boxes/b1/logs?follow=perhaps", expect=400)
        refused(api, "POST", "/v1/boxes/b1/stop", {"timeout_seconds": 2.5})
        assert call(api, "POST", "/v1/boxes/b1/stop", json={"timeout_seconds": 1}, expect=200).json["status"] == \
            "configured"
        runtime = call(api, "GET", "/v1/metrics", expect=200).json
        assert runtime["num_boxes"] == 3 and runtime["boxes_created_total"] == 3

        # images
        images = call(api, "GET", "/v1/images", expect=200).json["images"]
        assert [i["reference"] for i in images] == ["default"]
        detail = call(api, "GET", "/v1/images/default", expect=200).json
        assert detail["builtin"] is True and detail["config"] is None
        call(api, "HEAD", "/v1/images/default", expect=200)
        call(api, "GET", f"/v1/images/{PROBE_IMAGE}", expect=404)
        assert call(api, "DELETE", "/v1/images/default", expect=409).error_code() == "invalid_state"
        refused(api, "POST", "/v1/images/pull", {"reference": "alpine", "platform": "arm64"})
        refused(api, "POST", "/v1/images/pull", {})
        r = api.request("POST", "/v1/images/load", body=b"not an archive",
                        headers={"Content-Type": "application/x-tar"})
        assert r.status in (400, 500) and r.error_code(), r

        # remove
        call(api, "DELETE", "/v1/boxes/b1?force=perhaps", expect=400)
        for box in (b1, b2, b3):
            call(api, "DELETE", f"/v1/boxes/{box['box_id']}", expect=204)
        call(api, "DELETE", "/v1/boxes/b1", expect=404)
        call(api, "GET", "/v1/boxes/b1", expect=404)
    assert not cocoon.box_dirs()


def test_images_against_document(cocoon, tmp_path):
    """Pull (whole and as NDJSON progress) from a loopback registry, load a `docker
    save` tarball, inspect, list and remove: every answer as the document says."""
    if not small_images.available():
        pytest.skip(f"skipped: {small_images.BUSYBOX} is missing (busybox-static)")
    fake = rf.FakeRegistry()
    try:
        ref = small_images.serve(fake, "api/pulled", "v1")
        ref2 = small_images.serve(fake, "api/streamed", "v2", big=3 << 20)
        tarball = small_images.save_tarball(str(tmp_path / "saved.tar"), "api/loaded:v3")
        with ServeServer(cocoon) as server:
            api = server.client(check=check_response)
            pulled = call(api, "POST", "/v1/images/pull", json={"reference": ref, "insecure": True}, expect=200).json
            assert pulled["id"].startswith("sha256:") and pulled["builtin"] is False and pulled["tag"] == "v1"
            r = call(api, "POST", "/v1/images/pull", json={"image": ref2, "insecure": True},
                     headers={"Accept": "application/x-ndjson"}, expect=200)
            events = check_response("POST", "/v1/images/pull", 200, dict(r.headers.items()), r.body)
            assert events[-1]["type"] == "done" and events[-1]["image"]["tag"] == "v2", events[-1]
            assert any(e["type"] == "progress" for e in events)
            r = call(api, "POST", "/v1/images/pull", json={"reference": f"{fake.host}/api/none:v0", "insecure": True},
                     headers={"Accept": "application/x-ndjson"}, expect=200)
            events = check_response("POST", "/v1/images/pull", 200, dict(r.headers.items()), r.body)
            assert [e["type"] for e in events] == ["error"], events
            with open(tarball, "rb") as f:
                loaded = call(api, "POST", "/v1/images/load", body=f.read(),
                              headers={"Content-Type": "application/x-tar"}, expect=200).json["images"]
            assert [i["tag"] for i in loaded] == ["v3"]
            listed = call(api, "GET", "/v1/images", expect=200).json["images"]
            assert {i["tag"] for i in listed} >= {"v1", "v2", "v3"}
            detail = call(api, "GET", f"/v1/images/{pulled['id']}", expect=200).json
            assert detail["reference"] == pulled["reference"] and isinstance(detail["config"], dict)
            assert call(api, "GET", f"/v1/images/{pulled['reference']}", expect=200).json["id"] == pulled["id"]
            call(api, "HEAD", f"/v1/images/{pulled['reference']}", expect=200)
            call(api, "DELETE", f"/v1/images/{pulled['reference']}", expect=204)
            call(api, "GET", f"/v1/images/{pulled['reference']}", expect=404)
    finally:
        fake.stop()


# ---- answers of a server whose boxes boot ----

def output_of(api, box, eid):
    """The NDJSON output of an execution: (stdout bytes, stderr bytes, exit line)."""
    lines = call(api, "GET", f"/v1/boxes/{box}/executions/{eid}/output", expect=200).data
    lines = check_response("GET", f"/v1/boxes/{box}/executions/{eid}/output", 200,
                           {"Content-Type": "application/x-ndjson"}, lines)
    out = b"".join(base64.b64decode(x["data"]) for x in lines if x["type"] == "stdout")
    err = b"".join(base64.b64decode(x["data"]) for x in lines if x["type"] == "stderr")
    assert lines[-1]["type"] == "exit", lines
    return out, err, lines[-1]


def wait_ended(api, box, eid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = call(api, "GET", f"/v1/boxes/{box}/executions/{eid}", expect=200).json
        if info["status"] != "running":
            return info
        time.sleep(0.2)
    pytest.fail(f"execution {eid} still running after {timeout} s")


def exec_id(api, box, spec):
    return call(api, "POST", f"/v1/boxes/{box}/exec", json=spec, expect=201).json["execution_id"]


def test_api_against_document(vm):
    with ServeServer(vm) as server:
        api = server.client(check=check_response)
        made = []
        try:
            box = call(api, "POST", "/v1/boxes", expect=201,
                       json={"name": "api", "vmm": vm.backend, "env": {"GREETING": "hi"}, "working_dir": "/tmp"}).json
            made.append(box["box_id"])
            assert box["status"] == "configured"

            # exec boots the box (BoxLite's lazy start); the output as NDJSON
            eid = exec_id(api, "api", {"command": "sh", "args": ["-c", "echo $GREETING; pwd; echo oops >&2; exit 4"]})
            out, err, end = output_of(api, "api", eid)
            assert (out, err, end["exit_code"], end["status"]) == (b"hi\n/tmp\n", b"oops\n", 4, "completed")
            info = call(api, "GET", f"/v1/boxes/api/executions/{eid}", expect=200).json
            assert (info["exit_code"], info["status"], info["error_message"]) == (4, "completed", None)
            call(api, "HEAD", f"/v1/boxes/api/executions/{eid}", expect=200)
            running = call(api, "GET", "/v1/boxes/api", expect=200).json
            assert running["status"] == "running" and isinstance(running["pid"], int)
            call(api, "POST", "/v1/boxes/api/start", expect=200)

            # run to completion
            r = call(api, "POST", "/v1/boxes/api/run", expect=200,
                     json={"command": "sh", "args": ["-c", "echo out; echo err >&2; exit 3"]}).json
            assert (r["exit_code"], r["stdout"], r["stderr"], r["encoding"]) == (3, "out\n", "err\n", "utf-8")
            r = call(api, "POST", "/v1/boxes/api/run", json={"command": "cat", "stdin": "fed\n"}, expect=200).json
            assert r["stdout"] == "fed\n"
            r = call(api, "POST", "/v1/boxes/api/run", expect=200,
                     json={"command": "cat", "stdin_base64": base64.b64encode(b"\xff\x00").decode()}).json
            assert r["encoding"] == "base64" and base64.b64decode(r["stdout"]) == b"\xff\x00"
            r = call(api, "POST", "/v1/boxes/api/run", expect=200,
                     json={"command": "sleep", "args": ["30"], "timeout_seconds": 0.5}).json
            assert r["timed_out"] is True and r["signal"] == 9
            r = call(api, "POST", "/v1/boxes/api/run", expect=200,
                     json={"command": "echo", "args": ["123456789"], "max_output_bytes": 4}).json
            assert (r["stdout"], r["stdout_truncated"], r["stdout_bytes"]) == ("1234", True, 10)
            r = call(api, "POST", "/v1/boxes/api/run", json={"command": "echo $0-$1", "args": ["a", "b"],
                                                              "shell": True}, expect=200).json
            assert r["stdout"] == "a-b\n"
            assert call(api, "POST", "/v1/boxes/api/run", json={"command": "nosuchcmd"},
                        expect=422).error_code() == "execution_failed"
            refused(api, "POST", "/v1/boxes/api/run", {"command": "true", "stdin": "a", "stdin_base64": "YQ=="})
            refused(api, "POST", "/v1/boxes/api/exec", {"args": ["x"]})
            refused(api, "POST", "/v1/boxes/api/exec", {"command": "true", "timeout_seconds": -1})

            # stdin over HTTP, then EOF
            eid = exec_id(api, "api", {"command": "cat"})
            call(api, "POST", f"/v1/boxes/api/executions/{eid}/stdin", body=b"hello ", expect=204)
            call(api, "POST", f"/v1/boxes/api/executions/{eid}/stdin?eof=true", body=b"world", expect=204)
            out, _, end = output_of(api, "api", eid)
            assert (out, end["exit_code"]) == (b"hello world", 0)
            assert call(api, "POST", f"/v1/boxes/api/executions/{eid}/stdin", body=b"late",
                        expect=409).error_code() == "invalid_state"

            # signal, kill, resize
            eid = exec_id(api, "api", {"command": "sleep", "args": ["60"], "detach": True})
            assert call(api, "GET", f"/v1/boxes/api/executions/{eid}", expect=200).json["exit_code"] is None
            assert call(api, "POST", f"/v1/boxes/api/executions/{eid}/resize", json={"cols": 100, "rows": 30},
                        expect=409).error_code() == "invalid_state"
            call(api, "POST", f"/v1/boxes/api/executions/{eid}/signal", json={"signal": 15}, expect=204)
            info = wait_ended(api, "api", eid)
            assert (info["status"], info["exit_code"], info["signal"]) == ("killed", 143, 15)
            call(api, "POST", f"/v1/boxes/api/executions/{eid}/signal", json={"signal": 15}, expect=409)
            eid = exec_id(api, "api", {"command": "sleep", "args": ["60"], "tty": True, "cols": 80, "rows": 24,
                                       "detach": True})
            call(api, "POST", f"/v1/boxes/api/executions/{eid}/resize", json={"cols": 100, "rows": 30}, expect=204)
            call(api, "DELETE", f"/v1/boxes/api/executions/{eid}", expect=204)
            info = wait_ended(api, "api", eid)
            assert (info["status"], info["exit_code"]) == ("killed", 137)
            call(api, "DELETE", f"/v1/boxes/api/executions/{eid}", expect=204)

            # a program that cannot start is reported by its execution
            eid = exec_id(api, "api", {"command": "nosuchcmd"})
            info = wait_ended(api, "api", eid)
            assert info["exit_code"] == -1 and info["error_message"], info

            # one consumer at a time
            eid = exec_id(api, "api", {"command": "sh", "args": ["-c", "sleep 2; echo late"]})
            conn, first = api.open("GET", f"/v1/boxes/api/executions/{eid}/output")
            try:
                assert first.status == 200
                second = call(api, "GET", f"/v1/boxes/api/executions/{eid}/output", expect=409)
                assert second.error_code() == "invalid_state"
                body = first.read()
            finally:
                conn.close()
            lines = check_response("GET", f"/v1/boxes/api/executions/{eid}/output", 200,
                                   dict(first.headers.items()), body)
            assert lines[-1]["exit_code"] == 0

            listed = call(api, "GET", "/v1/boxes/api/executions", expect=200).json["executions"]
            assert len(listed) >= 6 and all(e["box_id"] == box["box_id"] for e in listed)

            # metrics, logs, network
            m = call(api, "GET", "/v1/boxes/api/metrics", expect=200).json
            assert m["commands_executed_total"] >= 10 and m["memory_bytes"] > 0 and "cpu_percent" in m
            runtime = call(api, "GET", "/v1/metrics", expect=200).json
            assert runtime["num_running_boxes"] == 1 and runtime["total_commands_executed"] >= 10
            assert call(api, "GET", "/v1/boxes/api/logs", expect=200).body
            call(api, "GET", "/v1/boxes/api/network/stats", expect=200)
            call(api, "GET", "/v1/boxes/api/network/logs", expect=200)

            # stop and remove
            assert call(api, "DELETE", "/v1/boxes/api", expect=409).error_code() == "invalid_state"
            stopped = call(api, "POST", "/v1/boxes/api/stop", json={"timeout_seconds": 10}, expect=200).json
            assert (stopped["status"], stopped["pid"]) == ("stopped", None)
            assert call(api, "GET", "/v1/boxes?status=stopped", expect=200).json["boxes"][0]["name"] == "api"
            call(api, "DELETE", "/v1/boxes/api", expect=204)
            made.remove(box["box_id"])

            # an ephemeral box booted at create goes when it stops
            eph = call(api, "POST", "/v1/boxes", expect=201,
                       json={"vmm": vm.backend, "auto_delete": True, "auto_start": True,
                             "network": {"mode": "disabled"}}).json
            made.append(eph["box_id"])
            assert (eph["status"], eph["auto_delete"]) == ("running", True)
            assert call(api, "POST", f"/v1/boxes/{eph['box_id']}/stop", expect=200).json["status"] == "stopped"
            call(api, "GET", f"/v1/boxes/{eph['box_id']}", expect=404)
            made.remove(eph["box_id"])
        finally:
            for box_id in made:
                api.request("DELETE", f"/v1/boxes/{box_id}?force=true")


def test_attach_frames_match_document(vm):
    """GET .../attach: the binary frames' channel bytes and the exit text frame, checked
    against AttachExitMessage."""
    try:
        import websockets
    except ImportError:
        pytest.skip("skipped: python3-websockets is not installed (scripts/setup installs it)")
    doc = openapi_check.document()
    with ServeServer(vm) as server:
        api = server.client(check=check_response)
        box = call(api, "POST", "/v1/boxes", json={"vmm": vm.backend, "network": {"mode": "disabled"}},
                   expect=201).json["box_id"]
        try:
            eid = exec_id(api, box, {"command": "sh", "args": ["-c", "echo out; echo err >&2; read x; exit 7"]})
            path = f"/v1/boxes/{box}/executions/{eid}/attach"

            async def session():
                frames = []
                async with websockets.unix_connect(server.socket_path, f"ws://localhost{path}") as ws:
                    await ws.send(b"line\n")
                    async for message in ws:
                        frames.append(message)
                return frames

            frames = asyncio.run(asyncio.wait_for(session(), 120))
            binary = [f for f in frames if isinstance(f, bytes)]
            texts = [json.loads(f) for f in frames if isinstance(f, str)]
            assert b"".join(f[1:] for f in binary if f[:1] == b"\x01") == b"out\n"
            assert b"".join(f[1:] for f in binary if f[:1] == b"\x02") == b"err\n"
            assert all(f[:1] in (b"\x01", b"\x02") for f in binary)
            assert texts and texts[-1]["exit_code"] == 7, texts
            doc.validate({"$ref": "#/components/schemas/AttachExitMessage"}, texts[-1], "attach exit frame")
            for t in texts[:-1]:
                doc.validate({"$ref": "#/components/schemas/AttachErrorMessage"}, t, "attach text frame")
            r = call(api, "GET", path, expect=400)  # not an upgrade request
            assert r.error_code() == "invalid_argument"
        finally:
            api.request("DELETE", f"/v1/boxes/{box}?force=true")
