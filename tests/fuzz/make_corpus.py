#!/usr/bin/env python3
"""Writes the hand-made seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Each input is built here from the wire format of docs/protocol.md so it can be
reviewed; the generated files are committed too. fuzz_frame takes a byte stream of
frames; fuzz_conn takes one seed byte (chunk pattern) followed by the same stream.
Run: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# message types and field tags (src/proto/proto.h)
HELLO, CONFIG, READY, PING, PONG, SHUTDOWN, ERROR = 1, 2, 3, 4, 5, 6, 7
EXEC, STARTED, STDIN, STDIN_EOF, STDOUT, STDERR, EXIT, SIGNAL, RESIZE, CREDIT = range(16, 26)
VMM_HELLO = 32
(T_VERSION, T_VERSION_MIN, T_VERSION_MAX, T_AGENT_VERSION, T_KERNEL, T_BOOT_NS, T_INIT_NS,
 T_HOSTNAME, T_REALTIME_NS, T_MODE, T_TIMEOUT_MS, T_CODE, T_MESSAGE, T_ARGV, T_ENV, T_CWD,
 T_USER, T_TTY, T_ROWS, T_COLS, T_WINDOW, T_PID, T_SIGNAL, T_TIMED_OUT, T_BYTES, T_BACKEND,
 T_ACCEL, T_BOX_ID, T_READY_MS) = range(1, 30)
FILE_PUT, FILE_GET, STATS, STATS_REPLY = 40, 41, 42, 43
VMM_ATTACH, VMM_ATTACHED = 46, 47
VMM_SNAPSHOT, FREEZE, FROZEN, RESTORED = 52, 53, 54, 55
T_SEED = 67
(T_PATH, T_FLAGS, T_CPU_NS, T_CPUS, T_MEM_TOTAL, T_MEM_AVAILABLE, T_MEM_FREE, T_DISK_TOTAL, T_DISK_USED,
 T_DISK_AVAILABLE, T_PROCS, T_UPTIME_NS, T_LOAD1, T_LOAD5, T_LOAD15) = range(40, 55)


def header(length, stream, mtype, version=1, flags=0):
    return struct.pack("<IIHBB", length, stream, mtype, version, flags)


def frame(stream, mtype, payload=b"", **kw):
    return header(len(payload), stream, mtype, **kw) + payload


def field(tag, value, length=None):
    return struct.pack("<HI", tag, len(value) if length is None else length) + value


def u32(tag, v):
    return field(tag, struct.pack("<I", v & 0xFFFFFFFF))


def u64(tag, v):
    return field(tag, struct.pack("<Q", v))


def s(tag, text):
    return field(tag, text if isinstance(text, bytes) else text.encode())


def exec_payload(argv, env=(), cwd=None, window=262144, timeout=0):
    p = b"".join(s(T_ARGV, a) for a in argv) + b"".join(s(T_ENV, e) for e in env)
    if cwd:
        p += s(T_CWD, cwd)
    return p + u32(T_TTY, 0) + u64(T_TIMEOUT_MS, timeout) + u32(T_WINDOW, window)


HELLO_P = u32(T_VERSION_MIN, 1) + u32(T_VERSION_MAX, 1) + s(T_AGENT_VERSION, "0.1.0") + \
    s(T_KERNEL, "6.1.192") + u64(T_BOOT_NS, 640_000_000)
CONFIG_P = u32(T_VERSION, 1) + s(T_HOSTNAME, "cocoon-3fa2c9") + u64(T_REALTIME_NS, 1764190000 * 10**9)
READY_P = u64(T_BOOT_NS, 700_000_000) + u64(T_INIT_NS, 650_000_000)
EXIT_P = u32(T_CODE, 0) + u32(T_SIGNAL, 0) + u32(T_TIMED_OUT, 0)
VMM_HELLO_P = u32(T_VERSION, 1) + s(T_BACKEND, "qemu") + s(T_ACCEL, "tcg") + s(T_BOX_ID, "3fa2c9e01b7d") + \
    s(T_KERNEL, "6.1.192") + u64(T_BOOT_NS, 1) + u64(T_INIT_NS, 2) + u32(T_READY_MS, 900)

INPUTS = {
    # --- well-formed ---
    "good-hello": frame(0, HELLO, HELLO_P),
    "good-config": frame(0, CONFIG, CONFIG_P),
    "good-ready": frame(0, READY, READY_P),
    "good-exec-echo": frame(1, EXEC, exec_payload(["echo", "hi"])),
    "good-exec-full": frame(7, EXEC, exec_payload(["sh", "-c", "echo $FOO; pwd"], ["FOO=bar", "PATH=/bin"],
                                                  "/tmp", 65536, 2000) + s(T_USER, "1000:1000")),
    "good-exec-tty": frame(2, EXEC, s(T_ARGV, "bash") + u32(T_TTY, 1) + u32(T_ROWS, 24) + u32(T_COLS, 80)),
    "good-started": frame(1, STARTED, u32(T_PID, 42) + u32(T_WINDOW, 262144)),
    "good-output": frame(1, STDOUT, b"hi\n") + frame(1, STDERR, b"warn\n"),
    "good-stdin": frame(1, STDIN, b"\x00\xffbinary") + frame(1, STDIN_EOF),
    "good-exit-signal": frame(1, EXIT, u32(T_CODE, 0) + u32(T_SIGNAL, 9) + u32(T_TIMED_OUT, 1)),
    "good-error": frame(1, ERROR, u32(T_CODE, 2) + s(T_MESSAGE, "nonexistent-cmd: not found")),
    "good-credit-signal-resize": frame(1, CREDIT, u32(T_BYTES, 65536)) + frame(1, SIGNAL, u32(T_SIGNAL, 15)) +
    frame(1, RESIZE, u32(T_ROWS, 50) + u32(T_COLS, 132)),
    "good-shutdown": frame(0, SHUTDOWN, u32(T_MODE, 0) + u32(T_TIMEOUT_MS, 5000)),
    "good-vmm-hello": frame(0, VMM_HELLO, VMM_HELLO_P),
    "good-ping-agent": frame(0, PING, b"A123") + frame(0, PONG, b"A123") + frame(3, PING, b""),
    "good-session": frame(0, HELLO, HELLO_P) + frame(0, CONFIG, CONFIG_P) + frame(0, READY, READY_P) +
    frame(1, EXEC, exec_payload(["echo", "hi"])) + frame(1, STARTED, u32(T_PID, 9) + u32(T_WINDOW, 4096)) +
    frame(1, STDOUT, b"hi\n") + frame(1, EXIT, EXIT_P),
    "good-max-stdout": frame(1, STDOUT, bytes(range(256)) * 256),
    "good-unknown-tags": frame(1, EXEC, field(60, b"\x01\x02") + s(T_ARGV, "ls") + field(0x4000, b"future") +
                               field(0x4000, b"again")),
    # --- header rejects ---
    "bad-truncated-header": header(4, 1, STDOUT)[:5],
    "bad-header-only": header(100, 1, STDOUT),
    "bad-huge-length": header(0xFFFFFFFF, 1, STDOUT) + b"x" * 16,
    "bad-oversize-by-one": header(65537, 1, STDOUT) + b"\0" * 64,
    "bad-version-0": frame(0, HELLO, HELLO_P, version=0),
    "bad-version-2": frame(0, PING, b"x", version=2),
    "bad-flags": frame(0, PING, b"x", flags=0x80),
    "bad-unknown-type": frame(1, 8, b"") + frame(1, 0xFFFF, b""),
    "bad-hello-on-stream": frame(3, HELLO, HELLO_P),
    "bad-exec-on-stream0": frame(0, EXEC, exec_payload(["ls"])),
    "bad-good-then-garbage": frame(1, STDOUT, b"ok") + b"\xde\xad\xbe\xef" * 5,
    # --- TLV lies ---
    "bad-field-past-end": frame(1, STARTED, field(T_PID, b"\0\0\0\0", length=40)),
    "bad-field-len-wraps": frame(1, EXEC, field(T_ARGV, b"ls", length=0xFFFFFFFA)),
    "bad-nested-lie": frame(1, EXEC, s(T_ARGV, "sh") + field(T_ENV, field(T_ENV, b"A=1", length=999))),
    "bad-partial-field": frame(1, EXIT, u32(T_CODE, 0) + b"\x0c\x00\x04"),
    "bad-u32-size": frame(1, STARTED, field(T_PID, b"\0\0\0") + u32(T_WINDOW, 1)),
    "bad-duplicate-scalar": frame(1, EXEC, s(T_ARGV, "ls") + s(T_CWD, "/") + s(T_CWD, "/root")),
    "bad-nul-in-argv": frame(1, EXEC, s(T_ARGV, b"ls\0-la")),
    "bad-too-many-argv": frame(1, EXEC, s(T_ARGV, "x") * 1025),
    "bad-long-string": frame(1, EXEC, s(T_ARGV, "a" * 4096)),
    "bad-exec-no-argv": frame(1, EXEC, s(T_CWD, "/") + u32(T_WINDOW, 10)),
    "bad-exec-window-0": frame(1, EXEC, s(T_ARGV, "ls") + u32(T_WINDOW, 0)),
    "bad-env-no-equals": frame(1, EXEC, s(T_ARGV, "env") + s(T_ENV, "NOEQUALS")),
    "bad-exit-300": frame(1, EXIT, u32(T_CODE, 300)),
    "bad-exit-negative": frame(1, EXIT, u32(T_CODE, -1) + u32(T_SIGNAL, 99)),
    "bad-hello-min-gt-max": frame(0, HELLO, u32(T_VERSION_MIN, 3) + u32(T_VERSION_MAX, 1)),
    # --- files and stats ---
    "good-file-put": frame(3, FILE_PUT, s(T_PATH, "/root/dest") + u32(T_WINDOW, 262144)) +
    frame(3, STARTED, u32(T_PID, 77) + u32(T_WINDOW, 262144)) + frame(3, STDIN, b"ustar-ish" * 20) +
    frame(3, STDIN_EOF) + frame(3, EXIT, EXIT_P),
    "good-file-get": frame(4, FILE_GET, s(T_PATH, "/etc/hostname") + u32(T_FLAGS, 2)) +
    frame(4, STDOUT, b"\0" * 1024) + frame(4, STDERR, b"warning\n") + frame(4, EXIT, EXIT_P),
    "good-stats": frame(5, STATS) + frame(5, STATS_REPLY, u64(T_CPU_NS, 10**9) + u32(T_CPUS, 2) +
                                          u64(T_MEM_TOTAL, 1 << 30) + u64(T_MEM_AVAILABLE, 1 << 29) +
                                          u64(T_MEM_FREE, 1 << 28) + u64(T_DISK_TOTAL, 4 << 30) +
                                          u64(T_DISK_USED, 1 << 27) + u64(T_DISK_AVAILABLE, 3 << 30) +
                                          u32(T_PROCS, 30) + u64(T_UPTIME_NS, 5 * 10**9) + u32(T_LOAD1, 1500) +
                                          u32(T_LOAD5, 20) + u32(T_LOAD15, 1)),
    "bad-file-no-path": frame(3, FILE_PUT, u32(T_WINDOW, 1)),
    "bad-file-window-0": frame(3, FILE_GET, s(T_PATH, "/a") + u32(T_WINDOW, 0)),
    "bad-file-flags": frame(3, FILE_GET, s(T_PATH, "/a") + u32(T_FLAGS, 0xFF)),
    "bad-file-on-stream0": frame(0, FILE_PUT, s(T_PATH, "/a")),
    "bad-stats-reply-lies": frame(5, STATS_REPLY, u64(T_UPTIME_NS, 1) + u64(T_MEM_TOTAL, 1) +
                                  u64(T_MEM_AVAILABLE, 2) + field(T_CPU_NS, b"\1\2\3")),
    "bad-kernel-too-long": frame(0, HELLO, u32(T_VERSION_MIN, 1) + u32(T_VERSION_MAX, 1) + s(T_KERNEL, "k" * 200)),
    # attach (a local client's request, the monitor's answer)
    "attach-ok": frame(1, VMM_ATTACH, u32(T_FLAGS, 1) + u32(T_ROWS, 24) + u32(T_COLS, 80)),
    "attached-ok": frame(1, VMM_ATTACHED, u32(T_PID, 42) + u32(T_TTY, 1) + u32(T_FLAGS, 1) + u64(T_BYTES, 1 << 40)),
    "bad-attach-on-stream0": frame(0, VMM_ATTACH, u32(T_FLAGS, 1)),
    "bad-attach-unknown-flag": frame(1, VMM_ATTACH, u32(T_FLAGS, 6)),
    "bad-attach-rows-70000": frame(1, VMM_ATTACH, u32(T_ROWS, 70000)),
    "bad-attach-flags-u16": frame(1, VMM_ATTACH, field(T_FLAGS, b"\x01\x00")),
    "bad-attach-duplicate-flags": frame(1, VMM_ATTACH, u32(T_FLAGS, 1) + u32(T_FLAGS, 0)),
    "bad-attached-tty-2": frame(1, VMM_ATTACHED, u32(T_TTY, 2)),
    # live snapshots and forks (docs/protocol.md "Live snapshots", "Forks")
    "snapshot-memory": frame(0, VMM_SNAPSHOT, u32(T_FLAGS, 1) + u32(T_TIMEOUT_MS, 30000)),
    "snapshot-answer": frame(0, VMM_SNAPSHOT, u32(T_CODE, 0) + s(T_MESSAGE, "the agent did not answer")),
    "bad-snapshot-flag-2": frame(0, VMM_SNAPSHOT, u32(T_FLAGS, 2)),
    "bad-snapshot-timeout": frame(0, VMM_SNAPSHOT, u32(T_TIMEOUT_MS, 60001)),
    "bad-snapshot-on-stream1": frame(1, VMM_SNAPSHOT),
    "freeze-mute": frame(0, FREEZE, u32(T_TIMEOUT_MS, 30000) + u32(T_FLAGS, 1)),
    "bad-freeze-no-timeout": frame(0, FREEZE, u32(T_FLAGS, 1)),
    "bad-freeze-flag-4": frame(0, FREEZE, u32(T_TIMEOUT_MS, 1) + u32(T_FLAGS, 4)),
    "frozen-ok": frame(0, FROZEN, u32(T_MODE, 1)),
    "bad-frozen-mode-2": frame(0, FROZEN, u32(T_MODE, 2) + u32(T_CODE, 5)),
    "restored-ok": frame(0, RESTORED, u64(T_REALTIME_NS, 1 << 60) + s(T_HOSTNAME, "cocoon-abcdef")
                         + b"".join(u64(T_SEED, i) for i in range(4))),
    "bad-restored-three-seeds": frame(0, RESTORED, u64(T_REALTIME_NS, 1) + b"".join(u64(T_SEED, i) for i in range(3))),
    "bad-restored-five-seeds": frame(0, RESTORED, u64(T_REALTIME_NS, 1) + b"".join(u64(T_SEED, i) for i in range(5))),
    "bad-restored-seed-u32": frame(0, RESTORED, u64(T_REALTIME_NS, 1) + b"".join(u32(T_SEED, i) for i in range(4))),
    "bad-restored-no-clock": frame(0, RESTORED, b"".join(u64(T_SEED, i) for i in range(4))),
}

# Chunk-pattern seed bytes for fuzz_conn: 1-byte writes, header-sized splits, bursts.
SEEDS = [0, 1, 2, 3, 4, 5, 6, 7, 0x29, 0xFF]


def write_dir(target, files):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return len(files)


def main():
    n = write_dir("fuzz_frame", INPUTS)
    conn = {}
    for i, (name, data) in enumerate(sorted(INPUTS.items())):
        conn[name] = bytes([SEEDS[i % len(SEEDS)]]) + data
    # Whole session fed a byte at a time, and many max-size frames in a row.
    conn["good-session-bytewise"] = b"\x00" + INPUTS["good-session"]
    conn["good-many-max-frames"] = b"\x07" + INPUTS["good-max-stdout"] * 5
    m = write_dir("fuzz_conn", conn)
    print(f"fuzz_frame: {n} inputs, fuzz_conn: {m} inputs")


if __name__ == "__main__":
    main()
