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
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

import openapi_check
import registry_fixture as rf
import small_images
from conftest import REPO
from layers import D, F, tar_bytes
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
    """A body the server refuses; when it refuses it as a bad argument (400) or an
    unsupported field (501), the document must refuse it too."""
    r = api.request(method, path, json=json)
    assert (r.status, r.error_code()) == (status, code), r
    if status == 400 or code == "unsupported":
        with pytest.raises(OpenAPIMismatch):
            check_request(method, path, json)
    return r


def tar_entries(data):
    """{name: bytes for a file, None for a directory} of a tar archive."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            out[m.name] = t.extractfile(m).read() if m.isfile() else None
    return out


def box_config(cocoon, box_id):
    with open(os.path.join(cocoon.boxes_dir(), box_id, "config.json")) as f:
        return json.load(f)


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
           "ephemeral": False, "disk_size_bytes": 1, "image_id": "local:default", "accel": "auto", "name": None,
           "pid": 7, "labels": {}}
    ok = {"Content-Type": "application/json"}
    check_response("GET", "/v1/boxes/b1", 200, ok, json.dumps(box))
    check_response("GET", "/v1/pfx/boxes/b1", 200, ok, json.dumps(box))
    bad = [
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, surprise=1)),
        ("GET", "/v1/boxes/b1", 200, ok, {k: v for k, v in box.items() if k != "status"}),
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, cpus="1")),
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, labels={"a": 1})),
        ("GET", "/v1/boxes/b1", 200, ok, dict(box, auto_stop=0)),
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
        trusted = server.tcp_client(token=server.token, check=check_response)
        call(trusted, "GET", "/v1/me", expect=200)
        for field in ("rootfs_path", "rootfs"):  # a host directory as a root: the unix socket's user only
            r = call(trusted, "POST", "/v1/boxes", json={field: "/tmp"}, expect=403)
            assert r.error_code() == "permission_denied", r
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
            "{image}", PROBE_IMAGE).replace("{snapshot}", "snap-probe").replace("{id}", "12345678").replace(
            "{context_id}", "python")
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
        assert config["auth_required"] is False and config["capabilities"]["snapshots_enabled"] is True
        call(api, "HEAD", "/v1/config", expect=200)
        assert call(api, "GET", "/v1/me", expect=200).json["path_prefix"] is None
        call(api, "GET", "/v1/health", expect=200)
        call(api, "HEAD", "/v1/health", expect=200)

        # create, with every field BoxLite's client may send
        spec = {"name": "b1", "cpus": 2, "memory_mib": 256, "env": {"A": "1"}, "labels": {"team": "x"},
                "working_dir": "/tmp", "user": "root", "detach": False, "security": "maximum", "auto_stop": 0,
                "auto_delete": False, "entrypoint": [], "cmd": [], "volumes": [],
                "network": {"outbound": {"mode": "enabled", "allow_net": ["example.com", "10.1.2.0/24"]},
                            "inbound": {"mode": "enabled"}},
                "ports": [{"host_port": 18080, "guest_port": 80, "protocol": "udp", "host_ip": "127.0.0.1"},
                          "18081:81"]}
        r = call(api, "POST", "/v1/boxes", json=spec, expect=201)
        b1 = r.json
        assert r.headers["Location"] == f"/v1/boxes/{b1['box_id']}"
        assert (b1["name"], b1["status"], b1["cpus"], b1["memory_mib"], b1["pid"]) == ("b1", "configured", 2, 256, None)
        assert b1["env"] == {"A": "1"} and b1["labels"] == {"team": "x"} and b1["working_dir"] == "/tmp"
        assert b1["ephemeral"] is False
        net = box_config(cocoon, b1["box_id"])["net"]
        assert net["rules"] == ["allow example.com", "allow 10.1.2.0/24", "deny *", "deny 0.0.0.0/0"], net
        assert net["ports"] == ["127.0.0.1:18080:80/udp", "18081:81"], net
        assert b1["main"] is None
        m1 = call(api, "POST", "/v1/boxes", expect=201,
                  json={"name": "m1", "command": ["sleep", "1"], "entrypoint": [], "restart": "on-failure:2"}).json
        assert (m1["main"]["state"], m1["main"]["command"], m1["main"]["exit_code"]) == ("created", "sleep 1", None)
        call(api, "DELETE", f"/v1/boxes/{m1['box_id']}", expect=204)
        b2 = call(api, "POST", "/v1/boxes", json={}, expect=201).json
        assert b2["name"] is None and b2["labels"] == {} and "env" not in b2
        key = {"Idempotency-Key": "create-b3-once"}
        b3 = call(api, "POST", "/v1/boxes", json={"name": "b3"}, headers=key, expect=201).json
        again = call(api, "POST", "/v1/boxes", json={"name": "b3"}, headers=key, expect=201).json
        assert again["box_id"] == b3["box_id"]
        for value in (True, 30):  # BoxLite's auto_delete: a boolean or seconds; either makes an ephemeral box
            eph = call(api, "POST", "/v1/boxes", json={"auto_delete": value}, expect=201).json
            assert eph["ephemeral"] is True, eph
            call(api, "DELETE", f"/v1/boxes/{eph['box_id']}", expect=204)
        r = api.request("POST", "/v1/boxes", json={"name": "b4"}, headers=key)
        assert (r.status, r.error_code()) == (422, "invalid_argument"), r
        r = api.request("POST", "/v1/boxes", json={"name": "b1"})
        assert (r.status, r.error_code()) == (409, "already_exists"), r

        # refused bodies: the server and the document agree
        refused(api, "POST", "/v1/boxes", {"name": "x", "surprise": 1})
        refused(api, "POST", "/v1/boxes", {"cpus": 0})
        refused(api, "POST", "/v1/boxes", {"cpus": "2"})
        refused(api, "POST", "/v1/boxes", {"memory_mib": 32})
        refused(api, "POST", "/v1/boxes", {"env": {"A=B": "1"}})
        refused(api, "POST", "/v1/boxes", {"image": "default", "rootfs": "/tmp"})
        refused(api, "POST", "/v1/boxes", {"image": "default", "rootfs_path": "/tmp"})
        refused(api, "POST", "/v1/boxes", {"rootfs": "/tmp", "rootfs_path": "/tmp"})
        refused(api, "POST", "/v1/boxes", {"security": "lax"})
        refused(api, "POST", "/v1/boxes", {"network": {"inbound": {"mode": "sideways"}}})
        refused(api, "POST", "/v1/boxes", {"network": {"inbound": {"mode": "disabled", "ports": ["18082:82"]}}})
        refused(api, "POST", "/v1/boxes", {"network": {"outbound": {"ports": []}}})
        refused(api, "POST", "/v1/boxes", {"ports": [{"guest_port": 0}]})
        refused(api, "POST", "/v1/boxes", {"ports": [{"guest_port": 80, "host_port": 8080, "bogus": 1}]})
        refused(api, "POST", "/v1/boxes", {"network": {"allow_net": ["a.example"] * 63}})  # 65 rules
        refused(api, "POST", "/v1/boxes", {"volumes": [{"guest_path": "/data"}]}, 501, "unsupported")
        refused(api, "POST", "/v1/boxes", {"cmd": ["sleep", "1"], "restart": "sometimes"})
        refused(api, "POST", "/v1/boxes", {"entrypoint": ["sh"], "restart": "on-failure:0"})
        refused(api, "POST", "/v1/boxes", {"command": "sleep 1"})
        refused(api, "POST", "/v1/boxes", {"auto_stop": True}, 501, "unsupported")
        refused(api, "POST", "/v1/boxes", {"auto_stop": 300}, 501, "unsupported")
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
        for size, token in (("page_size", "page_token"), ("pageSize", "pageToken")):
            page = call(api, "GET", f"/v1/boxes?{size}=2", expect=200).json
            assert len(page["boxes"]) == 2 and page["next_page_token"]
            rest = call(api, "GET", f"/v1/boxes?{size}=2&{token}={page['next_page_token']}", expect=200).json
            assert len(rest["boxes"]) == 1 and rest["next_page_token"] is None
            assert {b["box_id"] for b in page["boxes"] + rest["boxes"]} == ids
        assert len(call(api, "GET", "/v1/boxes?status=configured", expect=200).json["boxes"]) == 3
        assert call(api, "GET", "/v1/boxes?status=running", expect=200).json["boxes"] == []
        for query in ("page_size=0", "page_size=abc", "status=sideways", "page_token=zz", "pageSize=1001"):
            assert call(api, "GET", f"/v1/boxes?{query}", expect=400).error_code() == "invalid_argument"

        # a box that never ran
        assert call(api, "GET", "/v1/boxes/b1/executions", expect=200).json == {"executions": []}
        call(api, "GET", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "HEAD", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "DELETE", f"/v1/boxes/b1/executions/{PROBE_EXEC}", expect=404)
        call(api, "GET", f"/v1/boxes/b1/executions/{PROBE_EXEC}/output", expect=404)
        r = call(api, "GET", f"/v1/boxes/b1/executions/{PROBE_EXEC}/attach", expect=426,
                 headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8",
                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert r.headers["Sec-WebSocket-Version"] == "13"
        refused(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/signal", {})
        refused(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/resize", {"cols": 80})
        call(api, "POST", f"/v1/boxes/b1/executions/{PROBE_EXEC}/signal", json={"signal": 15}, expect=404)
        call(api, "POST", f"/v1/boxes/{PROBE_BOX}/exec", json={"command": "true"}, expect=404)
        metrics = call(api, "GET", "/v1/boxes/b1/metrics", expect=200).json
        assert metrics["commands_executed_total"] == 0 and "cpu_percent" not in metrics
        assert call(api, "GET", "/v1/boxes/b1/network/stats", expect=200).json["present"] is False
        call(api, "GET", "/v1/boxes/b1/logs", expect=200)
        call(api, "GET", "/v1/boxes/b1/logs?follow=perhaps", expect=400)
        refused(api, "POST", "/v1/boxes/b1/stop", {"timeout_seconds": -1})
        refused(api, "POST", "/v1/boxes/b1/stop", {"timeout_seconds": "1"})
        assert call(api, "POST", "/v1/boxes/b1/stop", json={"timeout_seconds": 1.5}, expect=200).json["status"] == \
            "configured"
        runtime = call(api, "GET", "/v1/metrics", expect=200).json
        # refused creates (a bad field, a name in use) are not failures of the engine
        assert (runtime["num_boxes"], runtime["boxes_created_total"], runtime["boxes_failed_total"]) == (3, 6, 0)

        # images
        images = call(api, "GET", "/v1/images", expect=200).json["images"]
        assert [i["reference"] for i in images] == ["default"]
        detail = call(api, "GET", "/v1/images/default", expect=200).json
        assert detail["builtin"] is True and detail["config"] is None and detail["cached_at"]
        call(api, "HEAD", "/v1/images/default", expect=204)
        call(api, "GET", f"/v1/images/{PROBE_IMAGE}", expect=404)
        assert call(api, "DELETE", "/v1/images/default", expect=409).error_code() == "invalid_state"
        refused(api, "POST", "/v1/images/pull", {"reference": "alpine", "platform": "arm64"})
        refused(api, "POST", "/v1/images/pull", {})
        r = api.request("POST", "/v1/images/load", body=b"not an archive",
                        headers={"Content-Type": "application/x-tar"})
        # a file that is no archive is the caller's mistake (400), not the server's (500)
        assert r.status == 400 and r.error_code() == "invalid_argument", r

        # remove
        call(api, "DELETE", "/v1/boxes/b1?force=perhaps", expect=400)
        for box in (b1, b2, b3):
            call(api, "DELETE", f"/v1/boxes/{box['box_id']}", expect=204)
        call(api, "DELETE", "/v1/boxes/b1", expect=404)
        call(api, "GET", "/v1/boxes/b1", expect=404)
    assert not cocoon.box_dirs()


def test_secrets_in_a_create_match_the_document(cocoon):
    """A create names secrets and their hosts (never a value: the server's environment
    has it), header rules and TLS hosts; config.json keeps names, hosts and the
    placeholder only; a value in the body, or no value in the environment, is refused."""
    env = dict(cocoon.env, COCOON_T_KEY="sk-rest-REAL-77")
    with ServeServer(cocoon, env=env) as server:
        api = server.client(check=check_response)
        b = call(api, "POST", "/v1/boxes", expect=201,
                 json={"secrets": [{"name": "COCOON_T_KEY", "hosts": ["api.example.com", "*.example.org"]}],
                       "header_rules": ["api.example.com:X-Org=acme"], "tls_intercept": ["x.example.com"],
                       "tls_bypass": ["pypi.org"]}).json
        cfg = box_config(cocoon, b["box_id"])
        net = cfg["net"]
        assert [(x["name"], x["hosts"]) for x in net["secrets"]] == [("COCOON_T_KEY",
                                                                      ["api.example.com", "*.example.org"])], net
        assert net["secrets"][0]["placeholder"].startswith("cocoon-secret-COCOON_T_KEY-"), net
        assert (net["header_rules"], net["tls_intercept"], net["tls_bypass"]) == (
            ["api.example.com:X-Org=acme"], ["x.example.com"], ["pypi.org"]), net
        assert "sk-rest-REAL-77" not in json.dumps(cfg)
        refused(api, "POST", "/v1/boxes", {"secrets": [{"name": "COCOON_T_KEY", "value": "sk-inline"}]})
        refused(api, "POST", "/v1/boxes", {"secrets": [{"name": "1BAD", "hosts": ["a.example.com"]}]})
        r = api.request("POST", "/v1/boxes", json={"secrets": [{"name": "COCOON_T_ABSENT", "hosts": ["a.example.com"]}]})
        assert (r.status, r.error_code()) == (400, "invalid_argument"), r
        call(api, "DELETE", f"/v1/boxes/{b['box_id']}", expect=204)


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
            missing = {"reference": f"{fake.host}/api/none:v0", "insecure": True}
            r = call(api, "POST", "/v1/images/pull", json=missing, headers={"Accept": "application/x-ndjson"},
                     expect=200)
            events = check_response("POST", "/v1/images/pull", 200, dict(r.headers.items()), r.body)
            assert [(e["type"], e["error"]["code"]) for e in events] == [("error", "image_pull_failed")], events
            r = call(api, "POST", "/v1/images/pull", json=missing, expect=422)
            assert r.json["error"]["code"] == "image_pull_failed" and r.json["error"]["type"] == "ImageError", r
            r = call(api, "POST", "/v1/images/pull", json={"reference": "Not A Reference"}, expect=400)
            assert r.error_code() == "invalid_argument", r
            with open(tarball, "rb") as f:
                loaded = call(api, "POST", "/v1/images/load", body=f.read(),
                              headers={"Content-Type": "application/x-tar"}, expect=200).json["images"]
            assert [i["tag"] for i in loaded] == ["v3"]
            listed = call(api, "GET", "/v1/images", expect=200).json["images"]
            assert {i["tag"] for i in listed} >= {"v1", "v2", "v3"}
            detail = call(api, "GET", f"/v1/images/{pulled['id']}", expect=200).json
            assert detail["reference"] == pulled["reference"] and isinstance(detail["config"], dict)
            assert call(api, "GET", f"/v1/images/{pulled['reference']}", expect=200).json["id"] == pulled["id"]
            assert detail["cached_at"] == detail["created_at"]
            call(api, "HEAD", f"/v1/images/{pulled['reference']}", expect=204)
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
            call(api, "HEAD", f"/v1/boxes/api/executions/{eid}", expect=204)
            running = call(api, "GET", "/v1/boxes/api", expect=200).json
            assert running["status"] == "running" and isinstance(running["pid"], int)
            call(api, "POST", "/v1/boxes/api/start", expect=200)

            # detached execs: start, status, output, kill; the box without a main process shows its console
            d = call(api, "POST", "/v1/boxes/api/detached", expect=201,
                     json={"command": "sh", "args": ["-c", "echo d-out; sleep 600"], "env": {"X": "1"}}).json
            assert d["state"] == "running" and d["id"] == d["pid"], d
            call(api, "GET", f"/v1/boxes/api/detached/{d['id']}", expect=200)
            for _ in range(300):
                if call(api, "GET", f"/v1/boxes/api/detached/{d['id']}/logs", expect=200).body == b"d-out\n":
                    break
                time.sleep(0.1)
            call(api, "DELETE", f"/v1/boxes/api/detached/{d['id']}?signal=9", expect=204)
            for _ in range(300):
                d = call(api, "GET", f"/v1/boxes/api/detached/{d['id']}", expect=200).json
                if d["state"] == "exited":
                    break
                time.sleep(0.1)
            assert d["signal"] == 9, d
            assert call(api, "GET", f"/v1/boxes/api/detached/{d['id']}/logs?format=ndjson",
                        expect=200).body.startswith(b'{"time":')
            call(api, "GET", f"/v1/boxes/api/detached/{d['id']}/logs?tail=1&timestamps=true", expect=200)
            call(api, "GET", "/v1/boxes/api/logs", expect=200)
            call(api, "GET", "/v1/boxes/api/logs?tail=1", expect=409)
            call(api, "GET", "/v1/boxes/api/detached/0", expect=404)
            call(api, "DELETE", f"/v1/boxes/api/detached/{d['id']}", expect=409)

            # a main process: its status in the Box, its output as NDJSON and text
            m = call(api, "POST", "/v1/boxes", expect=201,
                     json={"name": "svc", "vmm": vm.backend, "auto_start": True, "restart": "unless-stopped",
                           "command": ["sh", "-c", "echo started; echo warn >&2; sleep 600"]}).json
            made.append(m["box_id"])
            assert m["main"]["restart"] == "unless-stopped", m
            for _ in range(300):
                m = call(api, "GET", "/v1/boxes/svc", expect=200).json
                if m["main"]["state"] == "running" and b"warn" in call(api, "GET", "/v1/boxes/svc/logs").body:
                    break
                time.sleep(0.1)
            assert m["main"]["pid"] > 0, m
            recs = call(api, "GET", "/v1/boxes/svc/logs?format=ndjson&since=1h", expect=200).body.splitlines()
            assert sorted(json.loads(x)["stream"] for x in recs) == ["stderr", "stdout"], recs
            assert call(api, "GET", "/v1/boxes/svc/logs?stream=stdout&tail=all", expect=200).body == b"started\n"
            call(api, "GET", "/v1/boxes/svc/logs?console=true", expect=200)
            call(api, "GET", "/v1/boxes/svc/logs?since=soon", expect=400)
            stopped = call(api, "POST", "/v1/boxes/svc/stop", expect=200).json  # unless-stopped: it stays stopped
            assert stopped["status"] == "stopped" and stopped["main"]["state"] in ("stopped", "exited"), stopped

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
            # a program that cannot start: 200, with the shell's exit code and the reason
            r = call(api, "POST", "/v1/boxes/api/run", json={"command": "nosuchcmd"}, expect=200).json
            assert (r["exit_code"], r["stdout"]) == (127, "") and "nosuchcmd" in r["error_message"], r
            assert r["stderr"].startswith("cocoon: ") and "No such file" in r["stderr"], r
            r = call(api, "POST", "/v1/boxes/api/run", json={"command": "/etc/passwd"}, expect=200).json
            assert r["exit_code"] == 126 and r["error_message"], r
            assert call(api, "POST", "/v1/boxes/api/run", json={"command": "true"}, expect=200).json[
                "error_message"] is None
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

            # a program that cannot start is reported by its execution: 127, the reason on stderr
            eid = exec_id(api, "api", {"command": "nosuchcmd"})
            out, err, end = output_of(api, "api", eid)
            assert (out, end["status"], end["exit_code"]) == (b"", "completed", 127), end
            assert err.startswith(b"cocoon: ") and b"nosuchcmd" in err and end["error_message"], (err, end)
            info = call(api, "GET", f"/v1/boxes/api/executions/{eid}", expect=200).json
            assert (info["exit_code"], info["error_message"]) == (127, end["error_message"]), info

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
            assert m["boot_timing"]["guest_boot_ms"] > 0, m
            runtime = call(api, "GET", "/v1/metrics", expect=200).json
            assert runtime["num_running_boxes"] == 1 and runtime["total_commands_executed"] >= 10
            assert call(api, "GET", "/v1/boxes/api/logs", expect=200).body
            call(api, "GET", "/v1/boxes/api/network/stats", expect=200)
            call(api, "GET", "/v1/boxes/api/network/logs", expect=200)

            # stop and remove
            assert call(api, "DELETE", "/v1/boxes/api", expect=409).error_code() == "invalid_state"
            stopped = call(api, "POST", "/v1/boxes/api/stop", json={"timeout_seconds": 9.5}, expect=200).json
            assert (stopped["status"], stopped["pid"]) == ("stopped", None)
            assert call(api, "GET", "/v1/boxes?status=stopped", expect=200).json["boxes"][0]["name"] == "api"
            call(api, "DELETE", "/v1/boxes/api", expect=204)
            made.remove(box["box_id"])

            # an ephemeral box booted at create goes when it stops
            eph = call(api, "POST", "/v1/boxes", expect=201,
                       json={"vmm": vm.backend, "auto_delete": True, "auto_start": True,
                             "network": {"mode": "disabled"}}).json
            made.append(eph["box_id"])
            assert (eph["status"], eph["ephemeral"]) == ("running", True)
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

            async def session(path, stdin=b""):
                frames = []
                async with websockets.unix_connect(server.socket_path, f"ws://localhost{path}") as ws:
                    if stdin:
                        await ws.send(stdin)
                    async for message in ws:
                        frames.append(message)
                return frames

            frames = asyncio.run(asyncio.wait_for(session(path, b"line\n"), 120))
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

            # a program that cannot start: the reason on stderr and in an error frame, then exit 127
            eid = exec_id(api, box, {"command": "nosuchcmd"})
            frames = asyncio.run(asyncio.wait_for(session(f"/v1/boxes/{box}/executions/{eid}/attach"), 120))
            stderr = b"".join(f[1:] for f in frames if isinstance(f, bytes) and f[:1] == b"\x02")
            texts = [json.loads(f) for f in frames if isinstance(f, str)]
            assert stderr.startswith(b"cocoon: ") and b"nosuchcmd" in stderr, frames
            assert [t["type"] for t in texts] == ["error", "exit"] and texts[-1]["exit_code"] == 127, texts
            doc.validate({"$ref": "#/components/schemas/AttachErrorMessage"}, texts[0], "attach error frame")
            doc.validate({"$ref": "#/components/schemas/AttachExitMessage"}, texts[1], "attach exit frame")
        finally:
            api.request("DELETE", f"/v1/boxes/{box}?force=true")


def test_files_against_document(vm):
    """PUT and GET .../files on a real box: a one-file archive becomes the file at path
    (parents made), other archives go into path (made with its parents), overwrite=false
    refuses an existing entry, bad input is refused and changes nothing, GET gives back
    what went in under path's last component, a missing path is a 404."""
    with ServeServer(vm, args=["--max-upload", "1M"]) as server:
        api = server.client(check=check_response)
        box = call(api, "POST", "/v1/boxes", json={"vmm": vm.backend, "network": {"mode": "disabled"}},
                   expect=201).json["box_id"]
        files = f"/v1/boxes/{box}/files"
        tar = {"Content-Type": "application/x-tar"}

        def put(query, body, expect):
            return call(api, "PUT", f"{files}?{query}", body=body, headers=tar, expect=expect)

        def get(query, expect=200):
            r = call(api, "GET", f"{files}?{query}", expect=expect)
            return tar_entries(r.body) if expect == 200 else r

        try:
            # a one-file archive becomes the file at path, whatever its name there; the
            # box is not running yet: the upload boots it
            blob = bytes(range(256)) * 800
            put("path=/root/in/one.bin", tar_bytes([F("any-name", blob)]), 204)
            assert get("path=/root/in/one.bin") == {"one.bin": blob}
            # into an existing directory, the file keeps its name
            put("path=/root/in", tar_bytes([F("two.txt", b"2\n")]), 204)
            put("path=/root/in/", tar_bytes([F("three.txt", b"3\n")]), 204)
            assert get("path=/root/in") == {"in": None, "in/one.bin": blob, "in/two.txt": b"2\n",
                                            "in/three.txt": b"3\n"}
            # a tree goes into path, made with its parents
            tree = tar_bytes([D("."), D("sub"), F("sub/b.txt", b"b\n"), F("a.txt", b"a\n")])
            put("path=/root/deep/tree", tree, 204)
            assert get("path=/root/deep/tree") == {"tree": None, "tree/a.txt": b"a\n", "tree/sub": None,
                                                   "tree/sub/b.txt": b"b\n"}
            # overwrite: by default existing files are replaced; with overwrite=false, 409
            put("path=/root/deep/tree", tar_bytes([F("a.txt", b"new\n")]), 204)
            for query, body in (("path=/root/deep/tree&overwrite=false", tar_bytes([F("a.txt", b"newer\n")])),
                                ("path=/root/in/one.bin&overwrite=false", tar_bytes([F("x", b"newer\n")])),
                                ("path=/root/deep/tree&overwrite=0", tree)):
                assert put(query, body, 409).error_code() == "already_exists"
            put("path=/root/deep/tree&overwrite=false", tar_bytes([F("c.txt", b"c\n")]), 204)  # a new name is fine
            assert get("path=/root/deep/tree/a.txt") == {"a.txt": b"new\n"}
            assert get("path=/root/in/one.bin") == {"one.bin": blob}

            # refused input changes nothing
            for query, body in (("path=/root/bad", b"not a tar archive" * 100), ("path=/root/bad", b""),
                                ("path=root/bad", tar_bytes([F("x", b"")])), ("", tar_bytes([F("x", b"")])),
                                ("path=/root/bad&overwrite=perhaps", tar_bytes([F("x", b"")])),
                                ("path=/root/in/one.bin/sub", tree)):
                assert put(query, body, 400).error_code() == "invalid_argument"
            r = put("path=/root/esc", tar_bytes([F("ok.txt", b"ok"), F("../escape.txt", b"x")]), 400)
            assert r.error_code() == "invalid_argument"
            assert put("path=/root/big", b"\0" * (2 << 20), 413).error_code() == "invalid_argument"
            for path in ("/root/bad", "/root/escape.txt", "/root/big"):
                assert get(f"path={path}", expect=404).error_code() == "not_found"
            assert get("path=/root/in/one.bin") == {"one.bin": blob}

            # GET: a missing path is a 404 before any byte; HEAD says the same without a body
            assert get("path=/root/nope", expect=404).error_code() == "not_found"
            call(api, "HEAD", f"{files}?path=/root/nope", expect=404)
            call(api, "HEAD", f"{files}?path=/root/in", expect=200)
            for query in ("path=/root/in&follow_symlinks=perhaps", "path=/", "path=relative"):
                assert get(query, expect=400).error_code() == "invalid_argument"
            # a symlink is sent only when followed, under its own name
            call(api, "POST", f"/v1/boxes/{box}/run", json={"command": "ln", "args": ["-s", "/root/in/two.txt",
                                                                                     "/root/link"]}, expect=200)
            assert get("path=/root/link", expect=400).error_code() == "invalid_argument"
            assert get("path=/root/link&follow_symlinks=true") == {"link": b"2\n"}

            assert call(api, "PUT", f"/v1/boxes/{PROBE_BOX}/files?path=/x", body=tar_bytes([F("x", b"")]),
                        headers=tar, expect=404).error_code() == "not_found"
            call(api, "GET", f"/v1/boxes/{PROBE_BOX}/files?path=/x", expect=404)
        finally:
            api.request("DELETE", f"/v1/boxes/{box}?force=true")


# ---- a refused request changes nothing (every check that answers stops its caller) ----


def test_snapshots_against_document(cocoon):
    """The snapshot routes on boxes that never boot: create (named and default-named),
    list, get, restore, remove; a snapshot is found only under its own box, one in use
    is not removed (409), a bad name is a 400 and makes nothing."""
    with ServeServer(cocoon) as server:
        api = server.client(check=check_response)
        a = call(api, "POST", "/v1/boxes", json={"name": "sa"}, expect=201).json["box_id"]
        b = call(api, "POST", "/v1/boxes", json={"name": "sb"}, expect=201).json["box_id"]
        snaps = f"/v1/boxes/{a}/snapshots"
        assert call(api, "GET", snaps, expect=200).json == {"snapshots": []}
        s1 = call(api, "POST", snaps, json={"name": "first"}, expect=201).json
        assert s1["name"] == "first" and s1["box_id"] == a and s1["parent"] is None and s1["depth"] == 1
        s2 = call(api, "POST", snaps, json={}, expect=201).json
        assert s2["name"] == "sa-1" and s2["parent"] == s1["id"] and s2["depth"] == 2
        call(api, "POST", snaps, json={"name": "first"}, expect=409)
        call(api, "POST", snaps, json={"name": "../x"}, expect=400)
        call(api, "POST", snaps, json={"nmae": "x"}, expect=400)
        listed = call(api, "GET", snaps, expect=200).json["snapshots"]
        assert [s["name"] for s in listed] == ["first", "sa-1"]
        assert call(api, "GET", f"/v1/boxes/{b}/snapshots", expect=200).json == {"snapshots": []}
        assert call(api, "GET", f"{snaps}/first", expect=200).json["id"] == s1["id"]
        call(api, "GET", f"/v1/boxes/{b}/snapshots/first", expect=404)  # not sb's
        call(api, "GET", f"{snaps}/nosuch", expect=404)
        call(api, "DELETE", f"{snaps}/first", expect=409)  # sa-1 and the box stand on it
        assert call(api, "POST", f"{snaps}/first/restore", expect=200).json["id"] == s1["id"]
        call(api, "DELETE", f"{snaps}/sa-1", expect=204)  # nothing stands on it after the restore
        call(api, "DELETE", f"{snaps}/first", expect=409)  # the box does
        done = call(api, "POST", f"/v1/boxes/{a}/compact", expect=200).json
        assert done["layers_before"] == 2 and done["layers_after"] == 1 and done["released"] == [s1["id"]], done
        assert call(api, "POST", f"/v1/boxes/{a}/compact", expect=200).json["released"] == []
        call(api, "POST", f"/v1/boxes/{PROBE_BOX}/compact", expect=404)
        call(api, "DELETE", f"{snaps}/first", expect=204)  # the compacted box no longer stands on it
        s1 = call(api, "POST", snaps, json={"name": "first"}, expect=201).json
        call(api, "DELETE", f"/v1/boxes/{a}", expect=204)
        call(api, "DELETE", f"/v1/boxes/{b}/snapshots/first", expect=404)
    r = cocoon.run("snapshot", "rm", "first")
    assert r.returncode == 0, decode(r.stderr)


def test_refused_create_makes_no_box(cocoon):
    bodies = [{"network": {"mode": "sideways"}}, {"network": {"outbound": {"mode": "sideways"}}}, {"network": 5},
              {"labels": {"a": 1}}, {"labels": {str(i): "x" for i in range(65)}}, {"auto_delete": 1.5},
              {"auto_stop": -1}, {"ports": "8080:80"}, {"ports": [{"host_port": 8080}]}]
    with ServeServer(cocoon) as server:
        api = server.client(check=check_response)
        unchecked = server.client()  # what such a box shows need not match the document
        made = []
        try:
            for body in bodies:
                refused(api, "POST", "/v1/boxes", body)
                if cocoon.box_dirs():
                    made.append(json.dumps(body)[:80])
                for box_id in cocoon.box_dirs():
                    unchecked.request("DELETE", f"/v1/boxes/{box_id}?force=true")
        finally:
            for box_id in cocoon.box_dirs():
                unchecked.request("DELETE", f"/v1/boxes/{box_id}?force=true")
    assert not made, f"refused with 400, yet a box was made: {made}"


def test_refused_exec_run_and_stop_change_nothing(vm):
    with ServeServer(vm) as server:
        api = server.client(check=check_response)
        box = call(api, "POST", "/v1/boxes", json={"vmm": vm.backend, "network": {"mode": "disabled"},
                                                   "auto_start": True}, expect=201).json["box_id"]
        done = []
        try:
            refused(api, "POST", f"/v1/boxes/{box}/run",
                    {"command": "touch", "args": ["/root/ran-run"], "stdin": "a", "stdin_base64": "YQ=="})
            refused(api, "POST", f"/v1/boxes/{box}/exec",
                    {"command": "touch", "args": ["/root/ran-exec"], "stdin_base64": "!!"})
            for e in call(api, "GET", f"/v1/boxes/{box}/executions", expect=200).json["executions"]:
                wait_ended(api, box, e["execution_id"])
                done.append("an execution was registered")
            ls = call(api, "POST", f"/v1/boxes/{box}/run", json={"command": "ls", "args": ["/root"]},
                      expect=200).json["stdout"]
            done += [f"{name} ran" for name in ("ran-run", "ran-exec") if name in ls]
            refused(api, "POST", f"/v1/boxes/{box}/stop", {"timeout_seconds": -1})
            if call(api, "GET", f"/v1/boxes/{box}", expect=200).json["status"] != "running":
                done.append("the box stopped")
        finally:
            api.request("DELETE", f"/v1/boxes/{box}?force=true")
    assert not done, f"refused with 400, yet: {done}"
