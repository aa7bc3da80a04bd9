#!/usr/bin/env python3
"""Boot benchmark: cocoon against plain QEMU booting the same guest.

Measures, over N runs of each configuration (interleaved so machine load hits all alike):
  cocoon             `cocoon start BOX` of a created box: CLI start until it returns
                     with the agent ready (monitor spawn, QEMU boot, handshake); and
                     `cocoon run --rm -- echo hi` until the first byte of "hi"
  cocoon-before      the same with the guest clock set up as before the RTC fix
  bare configs       qemu-system-x86_64 with the same kernel, initramfs and disk in the
                     fastest configurations we know (BARE_CONFIGS): spawn until the
                     agent's READY on the virtio-serial socket (this script plays the
                     host side, HELLO -> CONFIG -> READY, see docs/protocol.md) and
                     until the STDOUT frame of an `echo hi` EXEC
and, for every boot, whether the guest stalled on its clock (RTC stall, failed TSC
calibration). The fastest bare configuration of the run is the baseline.
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


# The bare QEMU baselines: the fastest ways we know to boot this kernel, initramfs and
# disk under QEMU, chosen on their own merits and measured in the same run; the fastest
# median is the baseline. They are not cocoon's command line: a copy would inherit its
# mistakes (rtc=off made both sides wait a second for a clock and still looked like 1.05x).
# Only what the agent needs to work is shared (its disk, console and channel).
ROOT_ARGS = "cocoon.root=/dev/vda cocoon.rootfstype=ext4"
BARE_CONFIGS = {
    # QEMU's own microvm defaults (RTC, PIT, PIC on), no tuning; acpi=off only because
    # the kernel has no ACPI, and microvm lists its virtio devices on the command line
    # only without ACPI
    "microvm-defaults": ("microvm,acpi=off", "console=ttyS0 quiet reboot=t panic=-1"),
    # the TCG boot facts in DESIGN: no option ROMs, no ACPI tables, PIT tick instead of
    # calibrating the LAPIC timer, the TSC trusted and its rate given (no PIT calibration)
    "microvm-tuned": ("microvm,x-option-roms=off,acpi=off",
                      "console=ttyS0 quiet reboot=t panic=-1 nolapic_timer tsc=reliable tsc_early_khz={tsc}"),
}


def host_tsc_khz():
    """The TSC rate a TCG guest sees (the host's). The host kernel's "cpu MHz" is its
    TSC rate where the TSC is invariant (constant_tsc: the frequency is the nominal one);
    cocoon-vmm measures it instead (src/util/hosttsc.c)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 0


def bare_run(qemu, share, work, cpus, memory, accel, config, tsc_khz):
    disk = os.path.join(work, "disk.qcow2")
    image = os.path.realpath(os.path.join(share, "images", "default.ext4"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, disk], check=True)
    host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = guest.fileno()
    kvm = accel == "kvm"
    machine, cmdline = BARE_CONFIGS[config]
    if not tsc_khz:
        cmdline = cmdline.replace(" tsc_early_khz={tsc}", "")
    if kvm:  # KVM guests take their clock from kvmclock: no TCG boot flags
        cmdline = "console=ttyS0 quiet reboot=t panic=-1"
    cmdline = cmdline.format(tsc=tsc_khz) + " " + ROOT_ARGS
    argv = [qemu, "-M", machine, "-accel", "kvm" if kvm else "tcg,thread=multi",
            "-cpu", "host" if kvm else "max", "-smp", str(cpus), "-m", str(memory), "-nodefaults",
            "-no-user-config", "-nographic", "-no-reboot", "-kernel", os.path.join(share, "vmlinux"),
            "-initrd", os.path.join(share, "initramfs.cpio"), "-append", cmdline,
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
        ch.sock.sendall(frame(3, EXEC, field(T_ARGV, b"cat") + field(T_ARGV, CLOCKSOURCE.encode()) +
                              u32(T_TTY, 0) + u32(T_WINDOW, 262144)))
        _, clock = ch.expect(STDOUT, deadline)
        ch.expect(EXIT, deadline)
        ch.sock.sendall(frame(0, SHUTDOWN, u32(T_MODE, 0) + u32(T_TIMEOUT_MS, 5000)))
        try:
            q.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return t_hello - t0, t_ready - t0, t_out - t0, boot_trace(os.path.join(work, "console.log"),
                                                                 clock.decode().strip())
    except Exception as e:
        with open(os.path.join(work, "console.log"), errors="replace") as f:
            tail = f.read()[-1500:]
        raise RuntimeError(f"bare QEMU run failed: {e}; console: {tail}") from e
    finally:
        if q.poll() is None:
            q.kill()
        q.wait()
        host.close()


CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource0/current_clocksource"
RTC_STALL = "Unable to read current time from RTC"


def boot_trace(console_path, clocksource):
    """What a boot's console and clock say about clock stalls: the CMOS wall-clock read
    that timed out (1 s when the TSC was calibrated early), and a jiffies clocksource
    (the TSC calibration failed: ~250 ms of delay-loop calibration, a 10 ms clock)."""
    try:
        with open(console_path, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    return {"rtc_stall": RTC_STALL in text, "clocksource": clocksource,
            "tsc_fail": "jiffies" in clocksource}


def cocoon_env(home, share, qemu=None):
    env = dict(os.environ, COCOON_HOME=home, COCOON_SHARE_DIR=share)
    if qemu:
        env["COCOON_QEMU"] = qemu
    return env


# cocoon as it was before the clock fix (same binary, same run): a QEMU wrapper puts back
# rtc=off and drops the TSC rate from the kernel command line.
BEFORE_WRAPPER = """#!/usr/bin/env python3
import os, re, sys
a = sys.argv[1:]
for i in range(1, len(a)):
    if a[i - 1] == "-M":
        a[i] = a[i].replace("rtc=on", "rtc=off")
    if a[i - 1] == "-append":
        a[i] = re.sub(r" tsc_early_khz=[0-9]+", "", a[i])
os.execv(QEMU, [QEMU] + a)
"""


def cocoon_ready(cli, home, share, qemu=None):
    """`cocoon start` of a created box; then the guest's clocksource and its wall clock
    against the host's (the agent sets it from the host at boot)."""
    env = cocoon_env(home, share, qemu)
    box = subprocess.run([cli, "create"], env=env, capture_output=True, check=True, text=True).stdout.split()[-1]
    try:
        t0 = time.monotonic()
        subprocess.run([cli, "start", box], env=env, capture_output=True, check=True, timeout=120)
        t = time.monotonic() - t0
        before = time.time()
        out = subprocess.run([cli, "exec", box, "--", "sh", "-c", f"date +%s.%N; cat {CLOCKSOURCE}"], env=env,
                             capture_output=True, check=True, text=True, timeout=60).stdout.split()
        after = time.time()
        guest = float(out[0])
        skew = 0.0 if before <= guest <= after else min(abs(guest - before), abs(guest - after))
        trace = boot_trace(os.path.join(home, "boxes", box, "console.log"), out[1])
        trace["skew_ms"] = skew * 1000
        return t, trace
    finally:
        subprocess.run([cli, "rm", "-f", box], env=env, capture_output=True, timeout=60)


def cocoon_first_byte(cli, home, share):
    env = cocoon_env(home, share)
    t0 = time.monotonic()
    p = subprocess.Popen([cli, "run", "--rm", "--", "echo", "hi"], env=env, stdout=subprocess.PIPE, bufsize=0,
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


def spread(xs):
    """min, quartiles, max and every value (ms): a bimodal set shows as two clusters."""
    ms = sorted(x * 1000 for x in xs)
    q = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) >= 2 else [ms[0]] * 3
    return (f"{ms[0]:.0f} / {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} / {ms[-1]:.0f}",
            " ".join(f"{m:.0f}" for m in ms))


def share(traces, key):
    n = sum(1 for t in traces if t[key])
    return f"{n}/{len(traces)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--share", default=os.path.join(REPO, "build", "share", "cocoon"))
    ap.add_argument("--results", default=None, help="write a markdown report here")
    a = ap.parse_args()
    cli = os.path.join(os.path.abspath(a.bin_dir), "cocoon")
    share_dir = os.path.abspath(a.share)
    accel, backend = accel_of(cli, share_dir)
    qemu = shutil.which(os.environ.get("COCOON_QEMU", "qemu-system-x86_64"))
    tsc_khz = host_tsc_khz()
    cpus, memory = 1, 512  # cocoon's defaults (src/lib/box.c)
    ready = {"cocoon": [], "cocoon-before": []}
    ready.update({c: [] for c in BARE_CONFIGS})
    traces = {k: [] for k in ready}
    first = {"cocoon": []}
    first.update({c: [] for c in BARE_CONFIGS})
    hello = {c: [] for c in BARE_CONFIGS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cocoon-bench-") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        wrapper = os.path.join(tmp, "qemu-before")
        with open(wrapper, "w") as f:
            f.write(BEFORE_WRAPPER.replace("QEMU", repr(qemu)))
        os.chmod(wrapper, 0o755)
        for i in range(a.runs):
            for name, q in (("cocoon", None), ("cocoon-before", wrapper)):
                t, tr = cocoon_ready(cli, home, share_dir, q)
                ready[name].append(t)
                traces[name].append(tr)
            first["cocoon"].append(cocoon_first_byte(cli, home, share_dir))
            for config in BARE_CONFIGS:
                work = os.path.join(tmp, f"bare{i}-{config}")
                os.makedirs(work)
                h, r, o, tr = bare_run(qemu, share_dir, work, cpus, memory, accel, config, tsc_khz)
                shutil.rmtree(work)
                hello[config].append(h)
                ready[config].append(r)
                first[config].append(o)
                traces[config].append(tr)
            print(f"run {i + 1}/{a.runs}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in ready.items()),
                  file=sys.stderr)
    load_after = os.getloadavg()
    baseline = min(BARE_CONFIGS, key=lambda c: statistics.median(ready[c]))
    base_ready, base_first = med(ready[baseline]), med(first[baseline])
    lines = ["| configuration | agent ready, median (ms) | / baseline | min / p25 / median / p75 / max (ms) "
             "| RTC stall | TSC calibration failed | first byte of `echo hi` (ms) |",
             "|---|---|---|---|---|---|---|"]
    every = []
    for name, xs in ready.items():
        sp, allv = spread(xs)
        fb = f"{med(first[name]):.0f} ({med(first[name]) / base_first:.2f}x)" if name in first else ""
        label = name + (" (baseline)" if name == baseline else "")
        lines.append(f"| {label} | {med(xs):.0f} | {med(xs) / base_ready:.2f} | {sp} | "
                     f"{share(traces[name], 'rtc_stall')} | {share(traces[name], 'tsc_fail')} | {fb} |")
        every.append(f"  - {name}: {allv}")
    table = "\n".join(lines)
    skews = [t["skew_ms"] for t in traces["cocoon"]]
    clocks = sorted({t["clocksource"] for t in traces["cocoon"]})
    print(table)
    print("\n".join(every))
    print(f"guest wall clock vs host after start: max {max(skews):.0f} ms off; clocksource {', '.join(clocks)}")
    if a.results:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "bench/run" if os.environ.get("COCOON_BENCH_VIA_RUN") else " ".join(["bench/boot.py"] + sys.argv[1:])
        every_text = "\n".join(every)
        replace_section(a.results, "## Boot: cocoon vs bare QEMU", f"""
{a.runs} runs of each configuration, interleaved; baseline: the fastest bare QEMU configuration
of this run ({baseline}).

{table}

Every value (ms), sorted:
{every_text}

- **cocoon**: `cocoon start BOX` on a box made by `cocoon create` (CLI start until it
  returns with the agent ready: monitor spawn, QEMU boot, HELLO → CONFIG → READY).
  First byte: `cocoon run --rm -- echo hi`, from the CLI's start until the first byte of
  `hi` on its stdout (creating the box and its disk, the boot, the exec).
- **cocoon-before**: the same binary with the guest clock as it was before (QEMU's
  `rtc=off`, no TSC rate on the kernel command line), through a QEMU wrapper.
- **bare QEMU**: `qemu-system-x86_64` booting the same kernel, initramfs and disk (qcow2
  overlay over the same image), accel {accel}, {cpus} vCPU, {memory} MiB, the host side of
  the protocol played by `bench/boot.py` over the virtio-serial socketpair (spawn until
  READY, and until the STDOUT frame of an `echo hi` EXEC). Configurations chosen on their
  own merits, not copied from cocoon: *microvm-defaults* is QEMU's microvm as it comes (but `acpi=off`: the kernel has no
  ACPI and would not find its devices);
  *microvm-tuned* adds the TCG boot facts (no option ROMs or ACPI, PIT tick,
  `tsc=reliable`, the host's TSC rate {tsc_khz} kHz from /proc/cpuinfo).
- **RTC stall**: boots whose console says "{RTC_STALL}" (the guest polled an absent CMOS
  clock for up to 1 s). **TSC calibration failed**: boots whose clocksource is jiffies
  (the guest could not calibrate its TSC: ~250 ms calibrating a delay loop instead).
- Guest wall clock right after `cocoon start`: at most {max(skews):.0f} ms from the host's
  (0 = within the exec's own round trip); clocksource {", ".join(clocks)}.

Backend {backend}, accel {accel}. Command: `{cmd}` (runs: {a.runs}). Date: {now}.
Machine: {machine()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after
(the machine was shared with other jobs, so absolute numbers are noisy; the ratios less so).
""")


if __name__ == "__main__":
    main()
