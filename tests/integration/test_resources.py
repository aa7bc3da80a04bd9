"""Resources of a box: --cpus/--memory/--disk visible in the guest (nproc, free, df);
an out-of-memory program and a fork bomb kill only themselves (guest cgroups) and the
next exec works; `cocoon stats` (text and --json); /etc/hosts, hostname and clock."""
import json
import time

import pytest

from conftest import decode, sh


def test_limits_visible_in_guest(vm, boxes):
    box = boxes("lim", "--cpus", "2", "--memory", "1G", "--disk", "4G")
    out = decode(sh(vm, box, "nproc; free -m | awk '/^Mem:/{print $2}'; df -B1M --output=size / | tail -1").stdout)
    cpus, mem_mib, disk_mib = (int(x) for x in out.split())
    assert cpus == 2
    assert 850 <= mem_mib <= 1024, mem_mib  # the kernel keeps some for itself
    assert 3700 <= disk_mib <= 4096, disk_mib


def test_oom_kills_only_the_program(vm, boxes):
    box = boxes("oom", "--memory", "512M")
    r = vm.run("exec", box, "--", "python3", "-c",
               "x = []\nwhile True: x.append(bytearray(10**7))", timeout=240)
    assert r.returncode == 137, (r.returncode, decode(r.stderr))  # SIGKILL from the OOM killer
    assert decode(sh(vm, box, "echo alive").stdout) == "alive\n"
    events = decode(sh(vm, box, "cat /sys/fs/cgroup/execs/memory.events").stdout)
    assert "oom_kill 1" in events, events
    # A big allocation refused outright is fine too: still only that program fails.
    r = vm.run("exec", box, "--", "python3", "-c", "x = bytearray(10**10)")
    assert r.returncode != 0
    assert decode(sh(vm, box, "echo still alive").stdout) == "still alive\n"


def test_fork_bomb_is_contained(vm, boxes):
    box = boxes("bomb", "--memory", "512M")
    r = vm.run("exec", "--timeout", "5", box, "--", "bash", "-c", ":(){ :|:& };:; sleep 60", timeout=120)
    assert r.returncode == 124, (r.returncode, decode(r.stderr))
    start = time.monotonic()
    r = sh(vm, box, "echo alive; cat /sys/fs/cgroup/execs/pids.max", timeout=60)
    lines = decode(r.stdout).split()
    assert lines[0] == "alive"
    assert 256 <= int(lines[1]) <= 4096
    assert time.monotonic() - start < 30


def test_agent_outside_command_cgroups(vm, boxes):
    box = boxes("cg")
    out = decode(sh(vm, box, "cat /proc/1/cgroup /proc/self/cgroup").stdout).split()
    assert out[0] == "0::/", out  # the agent stays in the root cgroup
    assert out[1].startswith("0::/execs/"), out


def test_command_cgroups_reused_only_when_clean(vm, boxes):
    """A command's cgroup serves a later command once the command ended with nothing left
    in it; one still holding a process, one left frozen, or one that can no longer take
    a process (controllers enabled below it) never does."""
    box = boxes("cgre")

    def cgroup():
        return decode(sh(vm, box, "cut -d: -f3 /proc/self/cgroup", timeout=60).stdout).strip()

    first = cgroup()
    assert first.startswith("/execs/") and cgroup() == first  # the ended command's cgroup, again
    # A process that outlives its command keeps that cgroup to itself.
    sh(vm, box, "setsid sleep 300 </dev/null >/dev/null 2>&1 &")
    daemon = decode(sh(vm, box, "cut -d: -f3 /proc/$(pgrep -x sleep)/cgroup").stdout).strip()
    assert daemon.startswith("/execs/")
    assert all(cgroup() != daemon for _ in range(3))
    # Frozen by its command, which the timeout then killed: no later command may start there.
    r = vm.run("exec", "--timeout", "2", box, "--", "sh", "-c",
               'echo 1 > "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cgroup.freeze"; sleep 30', timeout=60)
    assert r.returncode == 124, (r.returncode, decode(r.stderr))
    for _ in range(3):
        assert decode(sh(vm, box, "echo alive", timeout=30).stdout) == "alive\n"
    # Controllers enabled inside it (its command moved itself into a child first).
    sh(vm, box, 'c="/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)"; mkdir "$c/sub" && '
                'echo $$ > "$c/sub/cgroup.procs" && echo +memory > "$c/cgroup.subtree_control"')
    for _ in range(3):
        now = cgroup()
        assert now.startswith("/execs/") and now.count("/") == 2, now
    assert decode(sh(vm, box, "echo alive").stdout) == "alive\n"


def test_stats(vm, boxes):
    box = boxes("st", "--cpus", "2", "--memory", "1G", "--disk", "4G")
    r = vm.run("stats", box, check=0)
    text = decode(r.stdout)
    for word in ("cpu", "memory", "disk", "processes", "uptime", "load"):
        assert word in text, text
    r = vm.run("stats", "--json", box, check=0)
    s = json.loads(decode(r.stdout))
    assert s["cpu"]["cpus"] == 2
    assert 0 < s["cpu"]["usage_seconds"] < 3600
    assert 850 << 20 <= s["memory"]["total"] <= 1 << 30
    assert 0 < s["memory"]["used"] < s["memory"]["total"]
    assert s["memory"]["available"] <= s["memory"]["total"]
    assert 3700 << 20 <= s["disk"]["total"] <= 4 << 30
    assert 0 < s["disk"]["used"] < s["disk"]["total"]
    assert 1 <= s["processes"] < 1000
    assert 0 < s["uptime_seconds"] < 3600
    assert len(s["load"]) == 3
    vm.run("stop", box, check=0)
    r = vm.run("stats", box)
    assert r.returncode != 0 and "not running" in decode(r.stderr)
    r = vm.run("stats", "nosuchbox")
    assert r.returncode != 0


def test_hosts_hostname_clock(vm, boxes):
    box = boxes("cfg")
    before = time.time()
    r = sh(vm, box, "date +%s.%N; hostname; cat /etc/hosts")
    after = time.time()
    lines = decode(r.stdout).splitlines()
    guest = float(lines[0])
    assert before - 2 <= guest <= after + 2, (before, guest, after)
    hostname = lines[1]
    assert hostname and hostname != "(none)"
    hosts = lines[2:]
    assert any(l.split()[:1] == ["127.0.0.1"] and "localhost" in l.split() for l in hosts), hosts
    assert any(hostname in l.split()[1:] for l in hosts), hosts
    # User content is kept, and nothing is added twice across a restart.
    sh(vm, box, "echo '10.1.2.3 myhost' >> /etc/hosts")
    vm.run("restart", box, check=0)
    hosts2 = decode(sh(vm, box, "cat /etc/hosts").stdout).splitlines()
    assert "10.1.2.3 myhost" in hosts2
    assert sum("localhost" in l.split() and l.startswith("127.0.0.1") for l in hosts2) == 1, hosts2
    # Name lookups of localhost and of the hostname work without networking.
    r = sh(vm, box, f"getent hosts localhost && getent hosts {hostname}")
    assert "127.0" in decode(r.stdout)


def test_clock_follows_the_host_after_drift(vm, boxes):
    """A guest clock that fell behind (as after a host suspend) is corrected by the
    next exec: every EXEC carries the host's clock."""
    box = boxes("clk")
    sh(vm, box, "date -s @1000000000 >/dev/null")  # 2001: an hour-scale drift and more
    before = time.time()
    guest = float(decode(sh(vm, box, "date +%s.%N").stdout).strip())
    after = time.time()
    assert before - 2 <= guest <= after + 2, (before, guest, after)
    assert "clock was" in decode(vm.run("logs", box, check=0).stdout)


def test_console_flood_stays_bounded(vm, boxes, tmp_path):
    """A guest printing to its serial console without end cannot fill the host's disk:
    the monitor keeps console.log rotated (console.log.1), both backends alike, and
    `cocoon logs` shows the newest lines across the rotation."""
    import os
    limit = 64 * 1024
    vm.run("create", "--name", "flood", check=0, env={"COCOON_CONSOLE_LOG_MAX": str(limit)})
    vm.run("start", "flood", check=0, env={"COCOON_CONSOLE_LOG_MAX": str(limit)})
    # 1 MiB of numbered lines to the serial port, then a marker
    sh(vm, "flood", "seq -f 'flood line %06g ....................................' 1 20000 > /dev/ttyS0;"
       " echo END-OF-FLOOD > /dev/ttyS0", timeout=300)
    d = os.path.join(vm.boxes_dir(), vm.box_dirs()[0])
    sizes = {n: os.path.getsize(os.path.join(d, n)) for n in ("console.log", "console.log.1")
             if os.path.exists(os.path.join(d, n))}
    assert "console.log.1" in sizes, sizes
    assert all(s <= limit + 4096 for s in sizes.values()), sizes
    logs = decode(vm.run("logs", "flood", check=0).stdout)
    assert "END-OF-FLOOD" in logs and "flood line 019999" in logs, logs[-500:]
    assert "flood line 000001 " not in logs  # rotated away
    assert decode(sh(vm, "flood", "echo alive").stdout) == "alive\n"
    vm.run("rm", "-f", "flood", check=0)
