"""The config file (cocoon.yaml, docs/config.md) end to end: `cocoon config` checks and
prints it (the normalized JSON the SDKs read), refusals carry FILE:LINE:COL; `cocoon up`
is idempotent (twice: nothing changes), reports a changed box and recreates it only
with --recreate, starts a stopped one, stops at the first failure and leaves the boxes
before it up; `cocoon down` removes only what `up` made from that file; `cocoon run
--config` and `cocoon script` run with the file's env, workdir and user and return the
command's exit code; the peers' `sandboxes:` spelling works and `secrets:` is refused
with a message that says so. Boxes use the host's default backend (`up` has no --vmm)."""
import json
import os
import textwrap

import pytest

from conftest import decode, vm_missing_reason


def write(tmp_path, text, name="cocoon.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def boxes_ok(cocoon):
    reason = vm_missing_reason("qemu")
    if reason:
        pytest.skip(f"skipped: {reason}")
    yield cocoon
    # whatever a test left: its boxes go, so no monitor outlives it
    r = cocoon.run("ls", "-a", "--json")
    for b in json.loads(decode(r.stdout) or "[]"):
        cocoon.run("rm", "-f", b.get("id") or b.get("name"))


WEB = """\
    boxes:
      web:
        memory: 256M
        env: {GREETING: hello, DEBUG: "1"}
        workdir: /tmp
        scripts:
          hi: echo "$GREETING from $(pwd)"
          fail: exit 3
          args: [sh, -c, 'echo "[$0] [$1]"']
      api:
        memory: API_MEMORY
        network: {mode: none}
    """


def web_yaml(api_memory="256"):
    return WEB.replace("API_MEMORY", api_memory)


def test_config_prints_the_normalized_json(cocoon, tmp_path):
    path = write(tmp_path, web_yaml())
    r = cocoon.run("config", "-f", path, "--json", check=0)
    cfg = json.loads(decode(r.stdout))
    assert cfg["file"] == path
    web, api = cfg["boxes"]
    assert (web["name"], web["memory_mib"], web["env"], web["workdir"]) == ("web", 256, {"GREETING": "hello",
                                                                                         "DEBUG": "1"}, "/tmp")
    assert web["scripts"]["fail"] == ["/bin/sh", "-c", "exit 3"]
    assert api["network"] == {"mode": "none", "rules": [], "ports": []}
    assert web["digest"].startswith("sha256:") and web["digest"] != api["digest"]
    # without --json: what each box is, for people
    r = cocoon.run("config", "-f", path, check=0)
    assert "web\n  image      default\n" in decode(r.stdout), decode(r.stdout)
    # ./cocoon.yaml is the default file
    r = cocoon.run("config", "--json", check=1)  # the test's cwd has none
    assert "cocoon.yaml: No such file or directory" in decode(r.stderr)


def test_config_refusals_name_the_place(cocoon, tmp_path):
    bad = write(tmp_path, "boxes:\n  web:\n    memroy: 1G\n", "bad.yaml")
    r = cocoon.run("config", "-f", bad, check=1)
    assert decode(r.stderr) == f'cocoon: {bad}:3:5: unknown key "memroy" in a box (did you mean "memory"?)\n'
    anchors = write(tmp_path, "boxes:\n  web: &a {}\n  api: *a\n", "anchors.yaml")
    r = cocoon.run("up", "-f", anchors, check=125)
    assert f"{anchors}:2:8: anchor &a: anchors and aliases are not accepted" in decode(r.stderr)
    r = cocoon.run("config", "-f", bad, env={"COCOON_TEST_DLOPEN_FAIL": "libyaml-0.so.2"}, check=1)
    assert "libyaml-0.so.2 is needed for reading a config file" in decode(r.stderr)
    assert "install the package libyaml-0-2" in decode(r.stderr)


def test_peers_form_and_secrets(cocoon, tmp_path):
    peers = write(tmp_path, """\
        sandboxes:
          code-runner:
            image: default
            network:
              allow: ["api.openai.com", "pypi.org"]
              block: ["169.254.169.254/32"]
        """, "peers.yaml")
    r = cocoon.run("config", "-f", peers, "--json", check=0)
    box = json.loads(decode(r.stdout))["boxes"][0]
    assert box["network"]["rules"] == ["allow api.openai.com", "allow pypi.org", "deny 169.254.169.254/32"]
    secrets = write(tmp_path, """\
        sandboxes:
          code-runner:
            image: python:3.12-slim
            network:
              allow: [api.openai.com]
            secrets: [OPENAI_API_KEY]
        """, "secrets.yaml")
    r = cocoon.run("config", "-f", secrets, "--json", check=0)
    assert json.loads(decode(r.stdout))["boxes"][0]["secrets"] == [{"name": "OPENAI_API_KEY", "hosts": None}]
    volumes = write(tmp_path, """\
        sandboxes:
          code-runner:
            image: python:3.12-slim
            volumes: ["./a:/a"]
        """, "volumes.yaml")
    r = cocoon.run("up", "-f", volumes, check=125)
    assert decode(r.stderr) == (f"cocoon: {volumes}:4:5: volumes are not supported yet (cocoon does not have them; "
                                "remove the key)\n")
    assert cocoon.box_dirs() == []  # nothing was made


def test_up_twice_changed_recreate_down(boxes_ok, tmp_path):
    c = boxes_ok
    path = write(tmp_path, web_yaml())
    r = c.run("up", "-f", path, check=0)
    assert decode(r.stdout) == "web: created and started\napi: created and started\n"
    r = c.run("up", "-f", path, check=0)
    assert decode(r.stdout) == "web: up to date\napi: up to date\n"
    # execs in a box from the file get its env and workdir
    r = c.run("exec", "web", "--", "sh", "-c", 'echo "$DEBUG $(pwd)"', check=0)
    assert decode(r.stdout) == "1 /tmp\n"
    # a changed spec is reported, and the box left as it is
    write(tmp_path, web_yaml("320"))
    r = c.run("up", "-f", path, check=1)
    assert decode(r.stdout) == ("web: up to date\n"
                                "api: changed (memory 256 -> 320 MiB); run `cocoon up --recreate api`\n")
    r = c.run("exec", "api", "--", "sh", "-c", "grep MemTotal /proc/meminfo", check=0)
    before = decode(r.stdout)
    r = c.run("up", "-f", path, "--recreate", "api", check=0)
    assert decode(r.stdout) == "api: recreated (memory 256 -> 320 MiB)\n"
    r = c.run("exec", "api", "--", "sh", "-c", "grep MemTotal /proc/meminfo", check=0)
    assert decode(r.stdout) != before
    # a stopped box is started
    c.run("stop", "web", check=0)
    r = c.run("up", "-f", path, check=0)
    assert decode(r.stdout) == "web: started\napi: up to date\n"
    # down --keep stops, down removes (in reverse order)
    r = c.run("down", "-f", path, "--keep", check=0)
    assert decode(r.stdout) == "api: stopped\nweb: stopped\n"
    r = c.run("down", "-f", path, check=0)
    assert decode(r.stdout) == "api: removed\nweb: removed\n"
    assert json.loads(decode(c.run("ls", "-a", "--json", check=0).stdout)) == []
    r = c.run("down", "-f", path, check=0)
    assert decode(r.stdout) == "api: not there\nweb: not there\n"


def test_up_and_down_leave_other_boxes_alone(boxes_ok, tmp_path):
    c = boxes_ok
    path = write(tmp_path, web_yaml())
    c.run("create", "--name", "api", check=0)
    r = c.run("up", "-f", path, "api", check=125)
    assert ("api: a box of that name exists and was not made by `cocoon up`; up refused (remove it with "
            "`cocoon rm -f api`, or rename the box in the file)") in decode(r.stderr), decode(r.stderr)
    r = c.run("down", "-f", path, "api", check=125)
    assert "down refused" in decode(r.stderr)
    assert "api" in decode(c.run("ls", "-a", check=0).stdout)  # still there
    # the same file under another path is another file
    other = write(tmp_path, web_yaml(), "other.yaml")
    c.run("rm", "-f", "api", check=0)
    c.run("up", "-f", path, "api", check=0)
    r = c.run("down", "-f", other, "api", check=125)
    assert f"made by `cocoon up` from {path}; down refused" in decode(r.stderr), decode(r.stderr)
    r = c.run("up", "-f", path, "nosuch", check=125)
    assert f'{path} has no box "nosuch"' in decode(r.stderr)
    c.run("down", "-f", path, check=0)


def test_up_stops_at_the_first_failure(boxes_ok, tmp_path):
    c = boxes_ok
    path = write(tmp_path, """\
        boxes:
          first:
            memory: 256M
          broken:
            rootfs: /nonexistent/cocoon-test-root
          never:
            memory: 256M
        """)
    r = c.run("up", "-f", path, check=125)
    out, err = decode(r.stdout), decode(r.stderr)
    assert out == "first: created and started\n", out
    assert "up stopped at broken; the boxes before it are left as they are" in err, err
    listed = decode(c.run("ls", check=0).stdout)
    assert "first" in listed and "never" not in listed and "broken" not in listed
    c.run("down", "-f", path, check=0)


def test_script_output_and_exit_code(boxes_ok, tmp_path):
    c = boxes_ok
    path = write(tmp_path, web_yaml())
    c.run("up", "-f", path, "web", check=0)
    r = c.run("script", "web", "hi", check=0)
    assert decode(r.stdout) == "hello from /tmp\n"
    r = c.run("script", "web", "fail")
    assert r.returncode == 3
    r = c.run("script", "web", "args", "one", check=0)  # a list script: ARGS follow its words
    assert decode(r.stdout) == "[one] []\n"
    r = c.run("script", "web", "hi", "extra", check=0)  # a text script: ARGS are its "$@"
    assert decode(r.stdout) == "hello from /tmp extra\n"
    r = c.run("script", "web", "nosuch", check=125)
    assert 'box web has no script "nosuch" (its scripts: hi, fail, args)' in decode(r.stderr)
    c.run("create", "--name", "plain", check=0)
    r = c.run("script", "plain", "hi", check=125)
    assert "box plain was not made from a config file" in decode(r.stderr)
    c.run("stop", "web", check=0)
    r = c.run("script", "web", "hi", check=125)
    assert "box web is not running" in decode(r.stderr)
    c.run("down", "-f", path, check=0)


def test_run_config(boxes_ok, tmp_path):
    c = boxes_ok
    path = write(tmp_path, web_yaml())
    r = c.run("run", "--config", path, "--rm", "web", "--", "sh", "-c", 'echo "$GREETING $(pwd)"; exit 4')
    assert r.returncode == 4, decode(r.stderr)
    assert decode(r.stdout) == "hello /tmp\n"
    assert c.box_dirs() == []  # --rm
    r = c.run("run", "--config", path, "--cpus", "2", "web", check=125)
    assert "--cpus cannot be used with --config: the file describes the box" in decode(r.stderr)
    r = c.run("run", "--config", path, "nosuch", check=125)
    assert f'{path} has no box "nosuch"' in decode(r.stderr)
    # a kept box remembers its spec: its scripts run; `down` leaves it alone (not `up`'s)
    r = c.run("run", "--config", path, "--name", "kept", "web", "--", "true", check=0)
    c.run("start", "kept", check=0)
    r = c.run("script", "kept", "hi", check=0)
    assert decode(r.stdout) == "hello from /tmp\n"
    c.run("rm", "-f", "kept", check=0)
