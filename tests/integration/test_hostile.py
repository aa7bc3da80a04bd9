"""The hostile-guest lane: real boxes whose PID 1 is tests/hostile's agent instead of
cocoon-agent. It does the real handshake, then attacks the host through every channel
it has when asked (`cocoon exec BOX -- attack NAME ARGS...`, `cocoon cp BOX:/FORGERY
DEST`): malformed and oversized frames, bad payloads, ignored credits, endless output,
silence, floods of exec events on other clients' streams, a channel it stops reading,
a console flood, forged archives, 10k UDP flows, SYN and fragment floods, and DNS
answers with 1000 records from the test's upstream.

For each attack the host side is measured: the monitor's RSS (VmHWM, the peak, against
VmRSS before), its open descriptors (sampled), the box directory's logs on disk, its
CPU time over the attack and, after it, that it idles (no spinning). Budgets are the
ones the README states (network: 64 MiB and the connection/flow caps; console.log and
net.log rotation; 100 guest-caused vmm.log lines; cp bounds), with slack for the
sanitizer build. The caller gets a clear error (every call is bounded by a timeout),
cp writes nothing outside its destination, and a second, ordinary box started before
the attacks keeps answering `cocoon exec` during and after each of them.

Network traffic goes only to servers on 127.0.0.1 started here, reached from the guest
through the host alias (--allow host:PORT) or as the DNS upstream (COCOON_DNS_UPSTREAM).
"""
import contextlib
import io
import os
import selectors
import signal
import socket
import struct
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import (BACKENDS, SHARE_DIR, Cocoon, backend_skip_reason, decode, kill_leftovers,
                      vm_missing_reason)

HOSTILE_INITRD = os.path.join(SHARE_DIR, "hostile-initramfs.cpio")
MiB = 1 << 20
# The sanitizer build keeps freed memory in quarantine (256 MiB by default), which would
# hide what the monitor really holds: a small quarantine makes its RSS mean something.
MONITOR_ASAN = "quarantine_size_mb=4:malloc_context_size=5"
# Slack over a stated budget for the sanitizer's shadow memory and allocator.
RSS_SLACK = 48 * MiB
GUEST_LOG_LINES = 100  # vmm.log lines a guest may cause (util/log.h VMM_LOG_GUEST_MAX)


# ---- the lane: one home, one ordinary bystander box, hostile boxes per test ----

class Lane:
    def __init__(self, c, backend):
        self.c = c
        self.backend = backend
        self.bystander = "bystander"
        self.n = 0

    def bystander_ok(self, when):
        r = self.c.run("exec", self.bystander, "--", "echo", "alive", timeout=120)
        assert r.returncode == 0 and decode(r.stdout).strip() == "alive", \
            f"the bystander box stopped answering {when} the attack: rc {r.returncode} {decode(r.stderr)}"


def remove_box(c, name, where):
    """`cocoon rm -f NAME`; processes running under `where` 10 s later are killed and
    returned (none should be)."""
    c.run("rm", "-f", name, timeout=120)
    return kill_leftovers(where, grace=10)


@pytest.fixture(scope="module", params=BACKENDS)
def lane(request, tmp_path_factory):
    backend = request.param
    reason = backend_skip_reason(backend, str(tmp_path_factory.getbasetemp())) or vm_missing_reason(backend)
    if reason:
        pytest.skip(f"skipped: {reason}")
    if not os.path.exists(HOSTILE_INITRD):
        pytest.skip(f"skipped: no hostile agent initramfs at {HOSTILE_INITRD} (make hostile)")
    tmp = tmp_path_factory.mktemp("hostile-" + backend)
    home = str(tmp / "home")
    os.makedirs(home, mode=0o700)
    c = Cocoon(home, tmp)
    c.backend = backend
    c.env["ASAN_OPTIONS"] = c.env.get("ASAN_OPTIONS", "") + ":" + MONITOR_ASAN
    ln = Lane(c, backend)
    c.run("create", "--name", ln.bystander, "--net", "none", check=0)
    c.run("start", ln.bystander, check=0)
    yield ln
    left = remove_box(c, ln.bystander, home)
    assert not left, f"processes left running after the lane: {left}"
    reports = c.sanitizer_reports()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


class Box:
    def __init__(self, lane, name, bdir, env):
        self.lane, self.c, self.name, self.dir, self.env = lane, lane.c, name, bdir, env
        with open(os.path.join(bdir, "vmm.pid")) as f:
            self.pid = int(f.read().split()[0])

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def exec(self, argv, timeout=120, env=None):
        return self.c.run("exec", self.name, "--", *argv, timeout=timeout, env=env)

    def alive(self):
        return os.path.exists(f"/proc/{self.pid}")

    def wait_gone(self, secs=60):
        deadline = time.monotonic() + secs
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.alive()


@contextlib.contextmanager
def hostile_box(lane, *create_args, env=None, reports=True):
    """A box booted with the hostile agent as PID 1; env goes to its monitor (start)."""
    c = lane.c
    lane.n += 1
    name = f"evil{lane.n}"
    before = set(c.box_dirs())
    c.run("create", "--name", name, *create_args, env={"COCOON_INITRD": HOSTILE_INITRD}, check=0)
    bdir = os.path.join(c.boxes_dir(), (set(c.box_dirs()) - before).pop())
    n_reports = len(c.sanitizer_reports())
    try:
        c.run("start", name, env=env, check=0)
        yield Box(lane, name, bdir, env)
    finally:
        left = remove_box(c, name, bdir)
    assert not left, f"processes of the hostile box left running: {left}"
    if reports:
        new = c.sanitizer_reports()[n_reports:]
        assert not new, "sanitizer reports:\n" + "\n".join(new)


# ---- measuring the monitor ----

def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Samples a monitor's descriptors every 50 ms while an attack runs; RSS from
    VmHWM (the kernel's own peak), CPU from utime + stime."""

    def __init__(self, box):
        self.box = box
        self.pid = box.pid
        self.rss0 = proc_status(self.pid, "VmRSS")
        self.fds0 = len(os.listdir(f"/proc/{self.pid}/fd"))
        self.cpu0 = cpu_seconds(self.pid)
        self.t0 = time.monotonic()
        self.fds_max = self.fds0
        self.hwm = proc_status(self.pid, "VmHWM")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                self.fds_max = max(self.fds_max, len(os.listdir(f"/proc/{self.pid}/fd")))
                self.hwm = max(self.hwm, proc_status(self.pid, "VmHWM"))
            except OSError:
                return
            time.sleep(0.05)

    def end(self):
        self.stop.set()
        self.thread.join()
        with contextlib.suppress(OSError):
            self.hwm = max(self.hwm, proc_status(self.pid, "VmHWM"))
        with contextlib.suppress(OSError):
            self.cpu = cpu_seconds(self.pid) - self.cpu0
        self.secs = time.monotonic() - self.t0
        return self

    def report(self, record):
        note(record, "monitor", "rss %.1f MiB -> peak %.1f MiB, fds %d -> max %d, cpu %.2f s over %.1f s" % (
            self.rss0 / MiB, self.hwm / MiB, self.fds0, self.fds_max, getattr(self, "cpu", -1), self.secs))

    def assert_within(self, rss_growth, fds_growth):
        assert self.hwm - self.rss0 <= rss_growth, \
            "monitor RSS grew by %.1f MiB (peak %.1f MiB), budget %.1f MiB" % (
                (self.hwm - self.rss0) / MiB, self.hwm / MiB, rss_growth / MiB)
        assert self.fds_max - self.fds0 <= fds_growth, \
            f"monitor descriptors grew from {self.fds0} to {self.fds_max}, budget +{fds_growth}"


def note(record, key, text):
    """A measurement: in the junit properties, and printed (seen with -s)."""
    record(key, text)
    print(f"\n  [{key}] {text}", end="")


def idle_cpu(pid, secs=2.0):
    """The monitor's CPU use over secs, as a fraction of one core: a spin shows ~1.0."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(secs)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def assert_idles(box):
    frac = idle_cpu(box.pid)
    assert frac < 0.3, f"the monitor keeps using {frac:.0%} of a core after the attack (spinning?)"


def log_sizes(box, *names):
    return sum(os.path.getsize(box.path(n)) for n in names if os.path.exists(box.path(n)))


def assert_vmm_log_bounded(box):
    log = box.read("vmm.log")
    assert b"forbidden system call" not in log, log[-3000:]
    assert log.count(b"further ones are suppressed") <= 1, log[-3000:]
    assert len(log.splitlines()) < GUEST_LOG_LINES + 120, f"vmm.log has {len(log.splitlines())} lines"
    assert b"\x1b" not in log and b"\x07" not in log, "terminal escapes from the guest reached vmm.log"
    for line in log.splitlines():
        assert line[:2] == b"20" and line[4:5] == b"-" and b"Z [" in line[:40], f"a line not written by the monitor: {line[:200]!r}"
        assert not line.startswith(b"2030-"), f"a forged line: {line!r}"
    return log


def during(lane, popen, timeout=180):
    """The bystander answers while popen (an attack) runs; then popen's result."""
    lane.bystander_ok("during")
    out, err = popen.communicate(timeout=timeout)
    return popen.returncode, decode(out or b""), decode(err or b"")


# ---- the agent channel ----

@pytest.mark.parametrize("kind", ["oversize", "type", "garbage"])
def test_malformed_frame_stops_only_that_box(lane, kind, record_property):
    """A frame whose header breaks the framing rules: the stream cannot be resynced, so
    the monitor stops the box (docs/protocol.md). It does so cleanly (no seccomp kill,
    QEMU reaped, exit logged), the caller is told why, the box starts again."""
    with hostile_box(lane) as box:
        w = Watch(box)
        r = box.exec(["attack", "header", kind], timeout=60)
        err = decode(r.stderr)
        assert r.returncode == 125, (r.returncode, err)
        assert "malformed frame" in err and "the box stopped while the command was running" in err, err
        assert box.wait_gone(60), "the monitor did not exit after the malformed frame"
        w.end().report(record_property)
        log = assert_vmm_log_bounded(box)
        assert b"the guest agent sent a malformed frame" in log and b"cocoon-vmm exits with status 1" in log, log[-2000:]
        status = decode(lane.c.run("inspect", "--json", box.name, check=0).stdout)
        assert '"stopped"' in status, status
        lane.bystander_ok("after")
        lane.c.run("start", box.name, check=0)
        r = box.exec(["echo", "again"], timeout=60)
        assert decode(r.stdout).strip() == "again", decode(r.stderr)


def test_malformed_payloads_dropped_with_a_bounded_log(lane, record_property):
    """Thousands of frames with good headers and bad contents (missing fields, out of
    range codes, fields running past the payload, frames for streams that do not exist,
    a second HELLO, unasked PONGs, ERRORs whose text forges log lines and holds terminal
    escapes): dropped, at most 100 vmm.log lines, nothing forged, the box keeps serving."""
    with hostile_box(lane) as box:
        w = Watch(box)
        p = lane.c.popen("exec", box.name, "--", "attack", "payloads", "20000")
        rc, out, err = during(lane, p)
        w.end().report(record_property)
        assert rc == 0 and "sent 20000" in out, (rc, out, err)
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        log = assert_vmm_log_bounded(box)
        assert log.count(b"further ones are suppressed") == 1, log[-2000:]
        assert b"forged\\n2030-01-01" in log, "the guest's ERROR text was not logged escaped"
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        assert_idles(box)
        lane.bystander_ok("after")


def test_ignored_credits_are_a_clear_error(lane, record_property):
    """Output far past the flow-control window, never waiting for CREDIT. A caller that
    reads as fast as the guest writes keeps the guest within its window anyway (all of
    it arrives, or the guest got ahead and the call fails as below); a caller that
    reads late is told the guest ignores flow control, never that the box stopped nor
    dropped as a client that does not read. The monitor's memory stays within its
    queue bounds and the box keeps serving."""
    with hostile_box(lane) as box:
        w = Watch(box)
        r = box.exec(["attack", "credit", str(64 * MiB)], timeout=120)
        if r.returncode == 0:
            assert len(r.stdout) == 64 * MiB
        else:
            assert r.returncode == 125 and "flow control" in decode(r.stderr), (r.returncode, decode(r.stderr)[-500:])
        # a caller that reads late: the guest gets ahead of its window
        p = lane.c.popen("exec", box.name, "--", "attack", "credit", str(32 * MiB))
        time.sleep(5)
        rc, out, err = during(lane, p)
        w.end().report(record_property)
        assert rc == 125 and "flow control" in err and "box stopped" not in err, (rc, err[-500:])
        # the monitor queues at most 4 MiB + the window per client, 8 MiB toward the guest
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        assert box.alive()
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        log = assert_vmm_log_bounded(box)
        assert b"ignores flow control" in log and b"does not read its output" not in log, log[-2000:]
        lane.bystander_ok("after")


def test_endless_output_ignoring_timeout_and_kill(lane, record_property):
    """Output as fast as the credits allow that ignores SIGNAL (SIGKILL too) and the
    exec's timeout and never ends: the caller's --timeout still ends the call (the host
    stops waiting a grace period after the timeout), the monitor then drains and drops
    the orphaned output with bounded memory, and idles once the guest stops."""
    with hostile_box(lane) as box:
        w = Watch(box)
        t0 = time.monotonic()
        p = lane.c.popen("exec", "--timeout", "2", box.name, "--", "attack", "endless", "20",
                         stdout=subprocess.DEVNULL)
        rc, _, err = during(lane, p, timeout=120)
        took = time.monotonic() - t0
        assert rc == 125 and "timeout" in err, (rc, err[-500:])
        note(record_property, "endless", f"--timeout 2 ended the call after {took:.1f} s: {err.strip()[-200:]}")
        time.sleep(max(0, 22 - (time.monotonic() - t0)))  # the guest floods for 20 s
        w.end().report(record_property)
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        assert_idles(box)
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        lane.bystander_ok("after")


def test_silent_exec_does_not_hang_the_caller(lane, record_property):
    """STARTED, then nothing, ever (SIGNAL and the timeout ignored): `--timeout` ends
    the call with an error naming the timeout, and without one, the second Ctrl-C
    (SIGKILL forwarded) ends it a grace period later."""
    with hostile_box(lane) as box:
        r = lane.c.run("exec", "--timeout", "2", box.name, "--", "attack", "silent", timeout=90)
        err = decode(r.stderr)
        assert r.returncode == 125 and "timeout" in err and "SIGKILL" in err, (r.returncode, err)
        p = lane.c.popen("exec", box.name, "--", "attack", "silent")
        time.sleep(2)
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)  # a second Ctrl-C within 2 s: SIGKILL to the command
        out, err = p.communicate(timeout=90)
        assert p.returncode == 125 and "SIGKILL" in decode(err), (p.returncode, decode(err))
        note(record_property, "silent", decode(err).strip())
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        assert_idles(box)


def test_exec_event_flood_on_other_streams(lane, record_property):
    """STARTED/STDOUT/STDERR/CREDIT/ERROR/EXIT floods on every stream id but the
    attacker's own, among them another client's running exec: the monitor routes only
    by its own map (that exec may see forged frames, its box's guest owns it) and drops
    the rest with a bounded log; the attack's own exec completes."""
    with hostile_box(lane) as box:
        holder = lane.c.popen("exec", box.name, "--", "attack", "hold", "60")
        assert decode(holder.stdout.readline()).strip() == "holding"
        w = Watch(box)
        p = lane.c.popen("exec", box.name, "--", "attack", "events", "30000")
        rc, out, err = during(lane, p)
        assert rc == 0 and "sent 30000" in out, (rc, out, err[-500:])
        hout, herr = holder.communicate(timeout=120)  # ended by a forged EXIT, or its own after 60 s
        w.end().report(record_property)
        note(record_property, "holder", f"rc {holder.returncode}, stderr {decode(herr)[-200:]!r}")
        assert 0 <= holder.returncode <= 255
        w.assert_within(8 * MiB + RSS_SLACK, 8)
        assert_vmm_log_bounded(box)
        assert box.alive() and decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        assert_idles(box)
        lane.bystander_ok("after")


def test_deaf_agent(lane, record_property):
    """An agent that stops reading its channel while a client pours stdin: the monitor
    stops reading clients above its queue mark (memory bounded), an exec with a timeout
    still ends, and `cocoon stop` ends the box (SHUTDOWN unread: the monitor kills
    QEMU after the grace period, within its seccomp filter)."""
    with hostile_box(lane) as box:
        deaf = lane.c.popen("exec", "-i", box.name, "--", "attack", "deaf", "0", stdin=subprocess.PIPE)
        assert decode(deaf.stdout.readline()).strip() == "deaf"
        w = Watch(box)

        def pour():
            with contextlib.suppress(OSError):
                deaf.stdin.write(b"x" * (32 * MiB))
                deaf.stdin.close()
        feeder = threading.Thread(target=pour, daemon=True)
        feeder.start()
        r = lane.c.run("exec", "--timeout", "1", box.name, "--", "echo", "hi", timeout=90)
        assert r.returncode == 125 and "timeout" in decode(r.stderr), (r.returncode, decode(r.stderr))
        lane.bystander_ok("during")
        w.end().report(record_property)
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        r = lane.c.run("stop", box.name, timeout=120)
        assert r.returncode == 0, decode(r.stderr)
        assert box.wait_gone(30)
        deaf.kill()
        deaf.communicate()
        log = assert_vmm_log_bounded(box)
        assert b"killing it" in log, log[-2000:]


def test_console_flood_rotates(lane, record_property):
    """The serial console written as fast as the guest can: console.log is rotated at
    its bound (COCOON_CONSOLE_LOG_MAX, lowered here), so the pair stays under twice it,
    and the monitor reads it in batches, not a wake-up per byte: its CPU time per MiB
    of console stays small (CPU time, not wall time: a loaded machine does not change it)."""
    bound = 64 * 1024
    with hostile_box(lane, env={"COCOON_CONSOLE_LOG_MAX": str(bound)}) as box:
        w = Watch(box)
        p = lane.c.popen("exec", box.name, "--", "attack", "console", str(8 * MiB), "10")
        rc, out, err = during(lane, p)
        w.end().report(record_property)
        assert rc == 0 and out.startswith("wrote"), (rc, out, err)
        wrote = int(out.split()[1])
        note(record_property, "console", f"the guest wrote {wrote} bytes to its console in 10 s")
        assert wrote > 4 * bound, "the flood was too slow to test rotation"
        per_mib = w.cpu / (wrote / MiB)
        note(record_property, "console cpu", f"the monitor spent {per_mib:.2f} s of CPU per MiB of console")
        assert per_mib < 0.5, f"the monitor spent {per_mib:.2f} s of CPU per MiB of console (a wake-up per byte?)"
        sizes = [os.path.getsize(box.path(n)) for n in ("console.log", "console.log.1")]
        assert all(s <= bound for s in sizes) and sizes[1] > 0, sizes
        w.assert_within(8 * MiB + RSS_SLACK, 8)
        assert_idles(box)
        lane.c.run("stop", box.name, check=0)
        assert b"rotation(s)" in box.read("vmm.log")
        lane.bystander_ok("after")


# ---- the network ----

class UdpServer:
    """A UDP server on 127.0.0.1 in a thread: answer(datagram) is sent back, if any."""

    def __init__(self, rcvbuf=0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                d, peer = self.s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(d, peer)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.s.sendto(reply, peer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()
        self.s.close()


class UdpSink(UdpServer):
    """Counts datagrams and their senders, and echoes each back."""

    def __init__(self):
        self.count = 0
        self.peers = set()
        super().__init__(rcvbuf=4 * MiB)

    def answer(self, d, peer):
        self.count += 1
        self.peers.add(peer)
        return d


class TcpServer:
    """One thread, a selector: accepts, answers "HTTP" lines, counts connections."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4096)
        self.ls.setblocking(False)
        self.port = self.ls.getsockname()[1]
        self.accepted = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.ls, selectors.EVENT_READ)
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.2):
                if key.fileobj is self.ls:
                    with contextlib.suppress(OSError):
                        while True:
                            c, _ = self.ls.accept()
                            self.accepted += 1
                            c.setblocking(False)
                            self.sel.register(c, selectors.EVENT_READ)
                    continue
                c = key.fileobj
                data = b""
                with contextlib.suppress(OSError):
                    data = c.recv(4096)
                if data.startswith(b"HTTP"):
                    with contextlib.suppress(OSError):
                        c.send(b"hello from the host\n")
                self.sel.unregister(c)
                c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def net_caps_fds():
    # one descriptor per TCP connection, UDP flow and DNS query (README, Networking)
    return 1024 + 512 + 256


def flood(lane, box, record, attack, count, port):
    """`attack ATTACK COUNT PORT` in the box while the bystander answers: the monitor's
    Watch and the attack's output."""
    w = Watch(box)
    p = lane.c.popen("exec", box.name, "--", "attack", attack, str(count), str(port))
    rc, out, err = during(lane, p, timeout=300)
    w.end().report(record)
    assert rc == 0 and f"sent {count}" in out, (rc, out, err)
    return w, out


def settled(lane, box):
    """After an attack: the monitor idles, its log is bounded, the bystander answers."""
    assert_idles(box)
    assert_vmm_log_bounded(box)
    lane.bystander_ok("after")


def test_udp_flows_10k(lane, record_property):
    """10,000 UDP flows to an allowed host port and 10,000 datagrams to denied private
    addresses: at most 512 flows get a host socket (the rest are dropped), descriptors
    and memory stay inside the network budget, net.log rotates at its bound, and the
    stack still answers DNS."""
    bound = 64 * 1024
    with UdpSink() as sink, hostile_box(lane, "--net", "public", "--allow", f"host:{sink.port}",
                                        env={"COCOON_NET_LOG_MAX": str(bound)}) as box:
        w, out = flood(lane, box, record_property, "udp-flows", 10000, sink.port)
        assert "dns-udp host.cocoon.internal rcode=0" in out and "a=1 private=1" in out, out
        time.sleep(1)
        note(record_property, "udp", f"the host received {sink.count} datagrams from {len(sink.peers)} flows")
        assert 0 < len(sink.peers) <= 512, len(sink.peers)
        w.assert_within(64 * MiB + RSS_SLACK, 512 + 16)
        sizes = [os.path.getsize(box.path(n)) for n in ("net.log", "net.log.1") if os.path.exists(box.path(n))]
        assert len(sizes) == 2 and all(s <= bound for s in sizes), sizes
        settled(lane, box)


def test_syn_flood(lane, record_property):
    """20,000 raw SYNs from random ports to an allowed host port (and to a denied
    address): at most 1024 connections and 128 half-open ones, descriptors and memory
    within the budget, and an ordinary connection works right after."""
    with TcpServer() as srv, hostile_box(lane, "--net", "public", "--allow", f"host:{srv.port}") as box:
        w, out = flood(lane, box, record_property, "syn-flood", 20000, srv.port)
        assert "after-tcp hello from the host" in out, out
        note(record_property, "syn", f"the host accepted {srv.accepted} connections")
        w.assert_within(64 * MiB + RSS_SLACK, 1024 + 16)
        settled(lane, box)


def test_fragment_flood(lane, record_property):
    """20,000 IP fragments that never complete, overlap, run past 64 KiB or are tiny:
    reassembly stays bounded (four datagrams at a time) and a real 3000-byte datagram
    sent in fragments right after still arrives and comes back."""
    with UdpSink() as sink, hostile_box(lane, "--net", "public", "--allow", f"host:{sink.port}") as box:
        w, out = flood(lane, box, record_property, "frag-flood", 20000, sink.port)
        assert "after-udp 3000 bytes ok" in out, out
        w.assert_within(16 * MiB + RSS_SLACK, 16)
        settled(lane, box)


class Upstream(UdpServer):
    """A DNS upstream on 127.0.0.1 that answers every A query with `records` A records,
    every other one private (10.x): in one UDP datagram whatever the query's size, or
    for names with "honest" in them as a server does (TC and no records when the answer
    is over the size the query's EDNS0 record advertises)."""

    def __init__(self, records):
        self.records = records
        super().__init__()

    def answer(self, q, peer):
        qid = struct.unpack("!H", q[:2])[0]
        off = 12
        while q[off]:
            off += 1 + q[off]
        name = q[12:off + 1].decode(errors="replace")
        n = self.records.get(next((k for k in self.records if k in name), ""), 0)
        question = q[12:off + 5]
        ans = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) +
                       (bytes([10, 1, i >> 8, i & 255]) if i % 2 else bytes([93, 184, i >> 8, i & 255]))
                       for i in range(n))
        msg = struct.pack("!HHHHHH", qid, 0x8180, 1, n, 0, 0) + question + ans
        size = 512
        if struct.unpack("!H", q[10:12])[0] and q[off + 5:off + 8] == b"\0\0\x29":
            size = max(512, struct.unpack("!H", q[off + 8:off + 10])[0])
        if "honest" in name and len(msg) > size:
            msg = struct.pack("!HHHHHH", qid, 0x8380, 1, 0, 0, 0) + question
        return msg


def test_dns_answers_with_1000_records(lane, record_property):
    """The upstream answers with 1000 A records (16 KiB, half of them private, sent
    whole over UDP, or truncated as a server does) and with 250 (4 KiB): nothing private
    reaches the guest, over UDP the big answers come back truncated (TC) or fail
    (SERVFAIL), over TCP the 4 KiB one comes with its 125 public records, no query
    hangs, and the stack's memory stays bounded."""
    with Upstream({"thousand": 1000, "quarter": 250, "honest": 1000}) as up, \
            hostile_box(lane, "--net", "public", env={"COCOON_DNS_UPSTREAM": f"127.0.0.1:{up.port}"}) as box:
        w = Watch(box)
        out = ""
        for name in ("thousand.example", "quarter.example", "honest.example"):
            r = box.exec(["attack", "dns", name], timeout=120)
            assert r.returncode == 0, decode(r.stderr)
            out += decode(r.stdout)
        w.end().report(record_property)
        note(record_property, "dns", out.strip().replace("\n", "; "))
        lines = {" ".join(l.split()[:2]): l for l in out.splitlines()}
        for l in out.splitlines():
            assert "private=0" in l or "no answer" in l or "short answer" in l or "rcode=2" in l, out
        assert "a=125 private=0" in lines["dns-tcp quarter.example"], out
        assert "tc=1" in lines["dns-udp quarter.example"], out
        w.assert_within(16 * MiB + RSS_SLACK, 16)
        assert_idles(box)
        lane.bystander_ok("after")


# ---- forged archives for `cocoon cp` ----

def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size)
    return out


def stream_complete(data):
    """True when data is a whole tar archive: entries, then its end-of-archive blocks."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            t.getmembers()
    except (tarfile.TarError, EOFError):
        return False
    return len(data) >= 1024 and data.rstrip(b"\0") != data and data[-1024:] == b"\0" * 1024


REFUSED = ["dotdot", "absolute", "symlink-escape", "symlink-relative", "hardlink-escape", "outside-top", "dup",
           "paxbomb", "lying", "deep", "badexit", "sparse20g"]


def test_cp_forged_archives(lane, tmp_path, record_property):
    """Archives no real agent writes: names that leave the destination, links out of
    it, duplicates, a pax header claiming 1 GiB, sizes that lie, names past 4 KiB, a
    failure verdict with terminal escapes, a 20 GiB sparse file (over the 16 GiB
    bound): each copy is refused with a clear message, the destination is left as it
    was, nothing appears anywhere else; streamed to stdout (`cocoon cp BOX:X -`) each is
    refused too, and no complete archive goes out. The 10 GiB sparse file arrives
    sparse both ways."""
    outside = tmp_path / "area"
    outside.mkdir()
    (outside / "sentinel").write_text("keep\n")
    messages = []
    with hostile_box(lane) as box:
        for name in REFUSED:
            dest = outside / f"dest-{name}"
            dest.mkdir()
            (dest / "mine").write_text("mine\n")
            before = tree(str(outside))
            r = lane.c.run("cp", f"{box.name}:/{name}", str(dest), timeout=120)
            err = decode(r.stderr)
            assert r.returncode != 0, f"{name}: accepted: {err}"
            assert err.strip() and "\x1b" not in err and "\x07" not in err, (name, err)
            assert tree(str(outside)) == before, f"{name}: files changed: {err}"
            messages.append(f"{name}: {err.strip()[-160:]}")
            assert not os.path.exists("/tmp/cocoon-hostile-absolute") and \
                not os.path.exists("/tmp/cocoon-hostile-through")
            # the same archive streamed to stdout (cocoon_tar_from_box): refused too, and
            # what reached stdout, if anything, is not an archive a reader can finish
            r = lane.c.run("cp", f"{box.name}:/{name}", "-", timeout=120)
            err = decode(r.stderr)
            assert r.returncode != 0, f"{name} (stream): accepted: {err}"
            assert err.strip() and "\x1b" not in err and "\x07" not in err, (name, err)
            assert not stream_complete(r.stdout), f"{name} (stream): a complete archive went out: {err}"
        note(record_property, "cp refusals", " || ".join(messages))
        # accepted: a plain tree, and modes made safe (no setuid, devices skipped)
        r = lane.c.run("cp", f"{box.name}:/modes", str(outside), timeout=120)
        assert r.returncode == 0, decode(r.stderr)
        assert "skipped" in decode(r.stderr)
        assert os.stat(outside / "modes" / "tool").st_mode & 0o7000 == 0
        assert not os.path.exists(outside / "modes" / "null")
        # a 10 GiB sparse file: only its data crosses and lands on disk
        r = lane.c.run("cp", f"{box.name}:/sparse10g", str(outside), timeout=300)
        assert r.returncode == 0, decode(r.stderr)
        st = os.stat(outside / "sparse10g")
        assert st.st_size == 10 << 30 and st.st_blocks * 512 <= 1 * MiB, (st.st_size, st.st_blocks)
        # and streamed: it stays sparse in the archive; the modes made safe there too
        r = lane.c.run("cp", f"{box.name}:/sparse10g", "-", timeout=300)
        assert r.returncode == 0 and len(r.stdout) <= 1 * MiB, (decode(r.stderr), len(r.stdout))
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            assert t.getmember("sparse10g").size == 10 << 30
        r = lane.c.run("cp", f"{box.name}:/modes", "-", timeout=120)
        assert r.returncode == 0 and "skipped" in decode(r.stderr), decode(r.stderr)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            assert all(m.mode & 0o7000 == 0 and not m.isdev() for m in t.getmembers()), t.getmembers()
        lane.bystander_ok("after")


def test_cp_million_entries(lane, tmp_path, record_property):
    """1,000,001 entries (FIFOs, which are skipped and create nothing) against the
    default bound of 1,000,000, and 2001 empty files against a lowered bound: both
    refused naming the bound, the destination unchanged and no staging left behind."""
    dest = tmp_path / "dest"
    dest.mkdir()
    with hostile_box(lane) as box:
        w = Watch(box)
        t0 = time.monotonic()
        r = lane.c.run("cp", f"{box.name}:/fifos-1000001", str(dest), timeout=600)
        took = time.monotonic() - t0
        w.end().report(record_property)
        err = decode(r.stderr)
        note(record_property, "million", f"refused after {took:.1f} s: {err.strip()[-200:]}")
        assert r.returncode != 0 and "more than 1000000 entries" in err, err[-500:]
        assert os.listdir(dest) == []
        r = lane.c.run("cp", f"{box.name}:/files-2001", str(dest), env={"COCOON_CP_MAX_ENTRIES": "2000"}, timeout=120)
        assert r.returncode != 0 and "more than 2000 entries" in decode(r.stderr), decode(r.stderr)
        assert os.listdir(dest) == []
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        lane.bystander_ok("after")


def test_cp_stall(lane, tmp_path):
    """A copy whose guest sends part of a file and then nothing: it fails at the idle
    timeout (lowered to 3 s) with a message naming it; the destination is unchanged."""
    dest = tmp_path / "dest"
    dest.mkdir()
    with hostile_box(lane) as box:
        r = lane.c.run("cp", f"{box.name}:/stall", str(dest), env={"COCOON_CP_IDLE_TIMEOUT": "3"}, timeout=120)
        err = decode(r.stderr)
        assert r.returncode != 0 and "COCOON_CP_IDLE_TIMEOUT" in err, err
        assert os.listdir(dest) == []
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"


# ---- forged answers to `cocoon fs` ----

FS_LIES = {
    "slash": "a malformed FILE_ENTRIES",
    "nameless": "a directory entry without a name",
    "dup": "the same name twice",
    "many": "more than 100000 entries",
    "huge": "an answer larger than 64 MiB",
    "after-end": "a frame after the end of the answer",
    "cut": "the answer ends in the middle of a frame",
    "noend": "its answer ended without its last frame",
}


def test_fs_forged_answers(lane, record_property):
    """Answers to `cocoon fs ls` no real agent sends: a name with '/', nameless and
    doubled entries, 100001 entries, more than 64 MiB, frames after the last, a cut
    frame, no last frame: each refused as a protocol error naming what was wrong; an
    ERROR with terminal escapes comes out escaped; a guest that never answers meets the
    idle timeout; the monitor's memory stays bounded and the box keeps serving."""
    with hostile_box(lane) as box:
        r = lane.c.run("fs", "ls", box.name, "/ok", timeout=120)
        assert r.returncode == 0 and decode(r.stdout).split()[-1] == "f1", decode(r.stderr)
        w = Watch(box)
        messages = []
        for name, why in FS_LIES.items():
            r = lane.c.run("fs", "ls", box.name, f"/{name}", timeout=300)
            err = decode(r.stderr)
            assert r.returncode == 125 and r.stdout == b"", (name, err)
            assert f"/{name}: the guest broke the file-operation protocol: {why}" in err, (name, err)
            messages.append(f"{name}: {err.strip()[-120:]}")
        w.end().report(record_property)
        note(record_property, "fs refusals", " || ".join(messages))
        w.assert_within(16 * MiB + RSS_SLACK, 8)
        r = lane.c.run("fs", "stat", box.name, "/escape", timeout=120)
        err = decode(r.stderr)
        assert r.returncode == 125 and "\x1b" not in err and "\x07" not in err and "\r" not in err, err
        assert "cocoon: /escape: \\x1b[2J\\x1b]0;pwned\\x07gone\\r\\nforged\\xff" in err, err
        r = lane.c.run("fs", "ls", box.name, "/stall", env={"COCOON_CP_IDLE_TIMEOUT": "3"}, timeout=120)
        assert r.returncode == 125 and "COCOON_CP_IDLE_TIMEOUT" in decode(r.stderr), decode(r.stderr)
        assert decode(box.exec(["echo", "fine"]).stdout).strip() == "fine"
        lane.bystander_ok("after")
