#!/usr/bin/env python3
"""Boot benchmark: cocoon against plain QEMU booting the same guest.

Measures, over N runs each (interleaved so machine load hits both alike):
  cocoon ready       `cocoon start BOX` of a created box: CLI start until it returns
                     with the agent ready (monitor spawn, QEMU boot, handshake)
  cocoon first byte  `cocoon run -- echo hi`: CLI start until the first byte of "hi"
                     reaches its stdout (includes creating the box and its disk)
  bare ready         qemu-system-x86_64 with the same kernel, initramfs, disk (qcow2
                     overlay over the same image), accel, cpus, memory, machine and
                     kernel command line: spawn until the agent's READY arrives on the
                     virtio-serial socket (this script plays the host side of the
                     handshake, HELLO -> CONFIG -> READY, see docs/protocol.md)
  bare first byte    spawn until the STDOUT frame of an `echo hi` EXEC arrives
  bare hello         spawn until the agent's first bytes (HELLO)
Usage: bench/boot.py [--runs N] [--bin-dir build/bin] [--share build/share/cocoon]
                     [--results bench/RESULTS.md]
"""
import argparse
import datetime
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Must match src/vmm/qemu.c (build_argv, KERNEL_CMDLINE).
CMDLINE = ("console=ttyS0 quiet reboot=t panic=-1 nolapic_timer tsc=reliable cocoon.root=/dev/vda "
           "cocoon.rootfstype=ext4")
HELLO, CONFIG, READY, SHUTDOWN, ERROR = 1, 2, 3, 6, 7
EXEC, STARTED, STDOUT, STDERR, EXIT = 16, 17, 20, 21, 22
T_VERSION, T_HOSTNAME, T_REALTIME_NS, T_MODE, T_TIMEOUT_MS = 1, 8, 9, 10, 11
T_ARGV, T_TTY, T_WINDOW = 14, 18, 21


def frame(stream, mtype, payload=b""):
    return struct.pack("<IIHBB", len(payload), stream, mtype, 1, 0) + payload


def field(tag, value):
    return struct.pack("<HI", tag, len(value)) + value


def u32(tag, v):
    return field(tag, struct.pack("<I", v))


def u64(tag, v):
    return field(tag, struct.pack("<Q", v))


class Channel:
    """Reads whole frames from the host end of the agent socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def next(self, deadline):
        while True:
            if len(self.buf) >= 12:
                length, stream, mtype, version, flags = struct.unpack_from("<IIHBB", self.buf)
                if version != 1 or flags != 0 or length > 65536:
                    raise RuntimeError(f"bad frame header from the agent: {self.buf[:12].hex()}")
                if len(self.buf) >= 12 + length:
                    payload = self.buf[12:12 + length]
                    self.buf = self.buf[12 + length:]
                    return stream, mtype, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("agent did not answer in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("agent channel closed (QEMU exited?)")
            if not self.buf and not hasattr(self, "first_bytes_at"):
                self.first_bytes_at = time.monotonic()
            self.buf += chunk

    def expect(self, mtype, deadline):
        while True:
            stream, t, payload = self.next(deadline)
            if t == mtype:
                return stream, payload
            if t == ERROR:
                raise RuntimeError(f"agent error: {payload!r}")


def bare_run(qemu, share, work, cpus, memory, accel):
    disk = os.path.join(work, "disk.qcow2")
    image = os.path.realpath(os.path.join(share, "images", "default.ext4"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, disk], check=True)
    host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = guest.fileno()
    kvm = accel == "kvm"
    argv = [qemu, "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", "-accel", "kvm" if kvm else "tcg,thread=multi",
            "-cpu", "host" if kvm else "max", "-smp", str(cpus), "-m", str(memory), "-nodefaults",
            "-no-user-config", "-nographic", "-no-reboot", "-kernel", os.path.join(share, "vmlinux"),
            "-initrd", os.path.join(share, "initramfs.cpio"), "-append", CMDLINE,
            "-chardev", "file,id=con,path=console.log", "-serial", "chardev:con",
            "-drive", "id=root,file=disk.qcow2,format=qcow2,if=none,cache=writeback,discard=unmap",
            "-device", "virtio-blk-device,drive=root", "-chardev", f"socket,id=agent,fd={fd}",
            "-device", "virtio-serial-device", "-device", "virtserialport,chardev=agent,name=cocoon.agent",
            "-device", "virtio-rng-device"]
    t0 = time.monotonic()
    q = subprocess.Popen(argv, cwd=work, pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, "qemu.err"), "wb"))
    guest.close()
    ch = Channel(host)
    deadline = t0 + 120
    try:
        ch.expect(HELLO, deadline)
        t_hello = ch.first_bytes_at
        ch.sock.sendall(frame(0, CONFIG, u32(T_VERSION, 1) + field(T_HOSTNAME, b"bare") +
                              u64(T_REALTIME_NS, time.time_ns())))
        ch.expect(READY, deadline)
        t_ready = time.monotonic()
        ch.sock.sendall(frame(1, EXEC, field(T_ARGV, b"echo") + field(T_ARGV, b"hi") + u32(T_TTY, 0) +
                              u32(T_WINDOW, 262144)))
        stream, payload = ch.expect(STDOUT, deadline)
        t_out = time.monotonic()
        assert payload.startswith(b"hi"), payload
        ch.expect(EXIT, deadline)
        ch.sock.sendall(frame(0, SHUTDOWN, u32(T_MODE, 0) + u32(T_TIMEOUT_MS, 5000)))
        try:
            q.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return t_hello - t0, t_ready - t0, t_out - t0
    except Exception as e:
        with open(os.path.join(work, "console.log"), errors="replace") as f:
            tail = f.read()[-1500:]
        raise RuntimeError(f"bare QEMU run failed: {e}; console: {tail}") from e
    finally:
        if q.poll() is None:
            q.kill()
        q.wait()
        host.close()


def cocoon_env(home, share):
    return dict(os.environ, COCOON_HOME=home, COCOON_SHARE_DIR=share)


def cocoon_ready(cli, home, share):
    env = cocoon_env(home, share)
    box = subprocess.run([cli, "create"], env=env, capture_output=True, check=True, text=True).stdout.split()[-1]
    try:
        t0 = time.monotonic()
        subprocess.run([cli, "start", box], env=env, capture_output=True, check=True, timeout=120)
        return time.monotonic() - t0
    finally:
        subprocess.run([cli, "rm", "-f", box], env=env, capture_output=True, timeout=60)


def cocoon_first_byte(cli, home, share):
    env = cocoon_env(home, share)
    t0 = time.monotonic()
    p = subprocess.Popen([cli, "run", "--", "echo", "hi"], env=env, stdout=subprocess.PIPE, bufsize=0,
                         stderr=subprocess.PIPE)
    first = p.stdout.read(1)
    t = time.monotonic() - t0
    rest, err = p.communicate(timeout=60)
    if first + rest != b"hi\n" or p.returncode != 0:
        raise RuntimeError(f"cocoon run failed: rc={p.returncode} out={first + rest!r} err={err[-800:]!r}")
    return t


def accel_of(cli, share):
    import json
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([cli, "doctor", "--json"], env=cocoon_env(home, share), capture_output=True).stdout
    info = json.loads(out)
    return info.get("accel", "tcg"), info.get("backend", "qemu")


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    qv = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, {qv}"


def med(xs):
    return statistics.median(xs) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--share", default=os.path.join(REPO, "build", "share", "cocoon"))
    ap.add_argument("--results", default=None, help="write a markdown report here")
    a = ap.parse_args()
    cli = os.path.join(os.path.abspath(a.bin_dir), "cocoon")
    share = os.path.abspath(a.share)
    accel, backend = accel_of(cli, share)
    qemu = shutil.which(os.environ.get("COCOON_QEMU", "qemu-system-x86_64"))
    cpus, memory = 1, 512  # cocoon's defaults (src/lib/box.c)
    res = {k: [] for k in ("c_ready", "c_first", "b_hello", "b_ready", "b_first")}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cocoon-bench-") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        for i in range(a.runs):
            res["c_ready"].append(cocoon_ready(cli, home, share))
            res["c_first"].append(cocoon_first_byte(cli, home, share))
            work = os.path.join(tmp, f"bare{i}")
            os.makedirs(work)
            h, r, o = bare_run(qemu, share, work, cpus, memory, accel)
            shutil.rmtree(work)
            res["b_hello"].append(h)
            res["b_ready"].append(r)
            res["b_first"].append(o)
            print(f"run {i + 1}/{a.runs}: cocoon ready {res['c_ready'][-1] * 1000:.0f} ms, first byte "
                  f"{res['c_first'][-1] * 1000:.0f} ms | bare hello {h * 1000:.0f} ms, ready {r * 1000:.0f} ms, "
                  f"first byte {o * 1000:.0f} ms", file=sys.stderr)
    load_after = os.getloadavg()
    rows = [
        ("agent ready", med(res["c_ready"]), med(res["b_ready"])),
        ("first byte of `echo hi`", med(res["c_first"]), med(res["b_first"])),
    ]
    lines = [f"| measure | cocoon (ms) | bare QEMU (ms) | cocoon / bare |", "|---|---|---|---|"]
    for name, c, b in rows:
        lines.append(f"| {name} | {c:.0f} | {b:.0f} | {c / b:.2f} |")
    lines.append(f"| agent HELLO (bare only) | | {med(res['b_hello']):.0f} | |")
    table = "\n".join(lines)
    spread = ", ".join(f"{k} min {min(v) * 1000:.0f} / max {max(v) * 1000:.0f}" for k, v in res.items())
    print(table)
    print("spread (ms): " + spread)
    if a.results:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "bench/run" if os.environ.get("COCOON_BENCH_VIA_RUN") else " ".join(["bench/boot.py"] + sys.argv[1:])
        replace_section(a.results, "## Boot: cocoon vs bare QEMU", f"""
Medians of {a.runs} runs each, cocoon and bare QEMU interleaved.

{table}

- **cocoon ready**: `cocoon start BOX` on a box made by `cocoon create` (CLI start until it
  returns with the agent ready: monitor spawn, QEMU boot, HELLO → CONFIG → READY).
- **cocoon first byte**: `cocoon run -- echo hi`, from the CLI's start until the first byte
  of `hi` on its stdout (includes creating the box and its disk, the boot and starting the
  exec; not the teardown).
- **bare QEMU**: the same `qemu-system-x86_64` command line cocoon-vmm builds (microvm,
  same kernel, initramfs, command line, qcow2 overlay over the same image,
  accel {accel}, {cpus} vCPU, {memory} MiB), the host side of the protocol played by
  `bench/boot.py` over the virtio-serial socketpair: spawn until READY, and until the
  STDOUT frame of an `echo hi` EXEC.
- spread (ms): {spread}

Backend {backend}, accel {accel}. Command: `{cmd}` (runs: {a.runs}). Date: {now}.
Machine: {machine()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after
(the machine was shared with other jobs, so absolute numbers are noisy; the ratio less so).
""")


if __name__ == "__main__":
    main()
