"""Boxes through the SDK, on both transports: create with resources, get/list, stop and
start keeping the disk, remove, ephemeral boxes, the peers' style, network policy and
published ports (loopback only), stats and logs."""
import http.server
import json
import os
import socket
import threading
import time
import urllib.request

import pytest

import cocoon


def _name(tag):
    return f"sdk-{tag}-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"


def test_lifecycle_of_a_kept_box(client):
    name = _name("kept")
    box = cocoon.Box.create(client=client, name=name, cpus=2, memory="1G", ephemeral=False,
                            env={"FROM_BOX": "yes"}, workdir="/tmp")
    try:
        info = box.info()
        assert (info.name, info.cpus, info.memory_mib, info.ephemeral, info.status) == (name, 2, 1024, False,
                                                                                        "running")
        assert box.exec(["nproc"]).stdout == "2\n"
        assert box.exec(["sh", "-c", "echo $FROM_BOX; pwd"]).stdout == "yes\n/tmp\n"
        assert name in [b.name for b in client.boxes()]
        with pytest.raises(cocoon.AlreadyExists):
            cocoon.Box.create(client=client, name=name, start=False, ephemeral=True)
        box.files.write("/root/kept.txt", "still here")
        box.stop()
        assert box.status != "running"
        again = cocoon.Box.get(name, client=client)
        again.start()
        assert again.files.read_text("/root/kept.txt") == "still here"
        with pytest.raises(cocoon.InvalidState):
            again.remove(force=False)
        again.close()
    finally:
        box.remove(force=True)
    with pytest.raises(cocoon.NotFound):
        cocoon.Box.get(name, client=client)


def test_ephemeral_box_goes_away_and_peer_style_is_kept(client):
    with cocoon.Box.create(client=client, ephemeral=True) as box:
        box_id = box.id
        assert box.info().ephemeral
    with pytest.raises(cocoon.NotFound):
        cocoon.Box.get(box_id, client=client)

    box = cocoon.Box(image="default", cpus=2, memory="512m", client=client)  # only described
    with pytest.raises(cocoon.InvalidState):
        box.exec(["true"])
    box.start()
    assert box.run("echo hi from $(nproc) cpus").stdout == "hi from 2 cpus\n"
    box_id = box.id
    box.stop()
    kept = cocoon.Box.get(box_id, client=client)  # kept by default, as the CLI's boxes
    assert kept.status == "stopped" and not kept.info().ephemeral
    kept.remove()
    with pytest.raises(cocoon.NotFound):
        cocoon.Box.get(box_id, client=client)


def test_errors_for_unknown_things(client):
    with pytest.raises(cocoon.NotFound):
        cocoon.Box.get("no-such-box", client=client)
    with pytest.raises(cocoon.InvalidArgument):
        cocoon.Box.create(client=client, cpus=1000, start=False, ephemeral=True)
    with pytest.raises(cocoon.InvalidArgument):
        cocoon.Box.create(client=client, memory="lots", start=False, ephemeral=True)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from host port {self.server.server_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def _host_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
         "except Exception as e:\n"
         "    print('failed:', type(e).__name__)\n")


def test_network_policy_and_published_ports(client):
    allowed, other = _host_server(), _host_server()
    hp = _free_port()
    try:
        net = cocoon.Network(allow=[f"host:{allowed.server_address[1]}"], ports=[f"127.0.0.1:{hp}:8000"])
        with cocoon.Box.create(client=client, network=net, ephemeral=True) as box:
            url = f"http://host.cocoon.internal:{allowed.server_address[1]}/"
            r = box.exec(["python3", "-c", FETCH, url])
            assert r.stdout == f"hello from host port {allowed.server_address[1]}\n", r
            r = box.exec(["python3", "-c", FETCH, f"http://host.cocoon.internal:{other.server_address[1]}/"])
            assert r.stdout.startswith("failed:"), r
            assert str(other.server_address[1]) in box.network_log()
            for _ in range(50):  # the monitor rewrites its counters about once a second
                if box.network_stats().denied_total >= 1:
                    break
                time.sleep(0.2)
            assert box.network_stats().denied_total >= 1

            srv = box.spawn(["python3", "-m", "http.server", "-d", "/etc", "8000"])
            try:
                body = None
                for _ in range(100):
                    try:
                        body = urllib.request.urlopen(f"http://127.0.0.1:{hp}/hostname", timeout=2).read()
                        break
                    except OSError:
                        time.sleep(0.2)
                assert body and body.strip(), "the published port never answered"
            finally:
                srv.kill()
        with cocoon.Box.create(client=client, network="none", ephemeral=True) as box:
            assert "eth0" not in box.exec(["cat", "/proc/net/dev"]).stdout
            assert not box.network_stats().present
    finally:
        allowed.shutdown()
        other.shutdown()


def test_stats_and_logs(box):
    s = box.stats()
    assert 400 << 20 < s.memory_total <= 512 << 20 and 0 < s.memory_used < s.memory_total
    assert s.disk_total > s.disk_used > 0 and s.processes > 0 and s.uptime_seconds > 0
    assert isinstance(box.logs(), str)
    assert box.network_stats().present


def test_a_removed_or_closed_box_says_so(client):
    with cocoon.Box.create(client=client, ephemeral=True) as box:
        box.remove()
        with pytest.raises(cocoon.InvalidState):
            box.exec(["true"])
        with pytest.raises(cocoon.InvalidState):
            box.files.read("/etc/hostname")
    other = cocoon.Box.create(client=client, ephemeral=True)
    other.close()
    with pytest.raises(cocoon.InvalidState):
        other.stop()
    cocoon.Box.get(other.id, client=client).remove()


def test_follow_logs_until_the_box_stops(client):
    box = cocoon.Box.create(client=client, ephemeral=True)
    try:
        follow = box.logs(follow=True)
        safety = threading.Timer(120, box.stop)  # a marker that never comes ends the follow, not the suite
        safety.start()
        box.exec(["sh", "-c", "echo '<2>sdk-marker' > /dev/kmsg"])  # a level the quiet console prints
        seen = ""
        for chunk in follow:
            seen += chunk
            if "sdk-marker" in seen:
                break
        assert "sdk-marker" in seen
        follow.close()
        safety.cancel()
        rest = box.network_log(follow=True)
        threading.Timer(0.5, box.stop).start()
        assert isinstance("".join(rest), str)  # ends when the box stops
    finally:
        try:
            box.remove(force=True)
        except cocoon.CocoonError:
            pass


os.environ.setdefault("COCOON_SDK_T_KEY", "sk-sdk-REAL-5150")  # (before the remote server starts: it inherits it)


def test_secret_in_and_violation_reach_the_box(client, homes):
    """secret_in and secret_violation reach the box's network config on both transports:
    checked words are refused by cocoon, a name that is not a secret by the SDK."""
    base = dict(client=client, start=False, ephemeral=True, secrets={"COCOON_SDK_T_KEY": "api.example.com"})
    with pytest.raises(cocoon.InvalidArgument, match="cookies|headers, query, body"):
        cocoon.Box.create(secret_in={"COCOON_SDK_T_KEY": ["cookies"]}, **base)
    with pytest.raises(cocoon.InvalidArgument, match="block"):
        cocoon.Box.create(secret_violation="explode", **base)
    with pytest.raises(cocoon.InvalidArgument, match="not among the secrets"):
        cocoon.Box.create(secret_in={"OTHER": ["query"]}, **base)
    box = cocoon.Box.create(secret_in={"COCOON_SDK_T_KEY": ["query", "body"]}, secret_violation="block-and-stop-box",
                            **base)
    try:
        with open(os.path.join(homes[client.transport], "boxes", box.id, "config.json")) as f:
            net = json.load(f)["net"]
        assert net["secret_violation"] == "block-and-stop-box", net
        entry = [x for x in net["secrets"] if x["name"] == "COCOON_SDK_T_KEY"][0]
        assert sorted(entry.get("in", [])) == ["body", "headers", "query"], entry
    finally:
        box.remove(force=True)


def test_secrets_stay_out_of_the_box(client):
    """secrets={NAME: hosts}: the box's $NAME is a placeholder, the value (this process's
    environment, or the server's) never enters it."""
    box = cocoon.Box.create(client=client, ephemeral=True, network="open",
                            secrets={"COCOON_SDK_T_KEY": "api.example.com"},
                            header_rules=["api.example.com:X-Org=acme"], tls_bypass=["pypi.org"])
    try:
        out = box.exec(["sh", "-c", "echo $COCOON_SDK_T_KEY; grep -c cocoon /etc/ssl/certs/ca-certificates.crt"]).stdout
        key, marks = out.split()
        assert key.startswith("cocoon-secret-COCOON_SDK_T_KEY-") and len(key) == len("cocoon-secret-COCOON_SDK_T_KEY-") + 32
        assert int(marks) >= 1  # the box CA is in the bundle
        assert "REAL" not in box.exec(["sh", "-c", "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"]).stdout
    finally:
        box.remove(force=True)
