"""`cocoon run` on real boxes: output, streams, exit codes, stdin, env, big output."""
import hashlib
import os
import select
import time

import pytest

from conftest import decode, drain_hashed


def test_python_in_guest(vm):
    r = vm.run("run", "--", "python3", "-c",
               "import platform; print('hello from', platform.system(), platform.release())", check=0)
    out = decode(r.stdout)
    assert out.startswith("hello from Linux 6.1."), out
    print(f"guest says: {out.strip()} ({r.elapsed:.1f} s including boot)")


def test_stdout_stderr_separate_and_ordered(vm):
    script = "for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; done; printf tail"
    r = vm.run("run", "--", "sh", "-c", script, check=0)
    assert decode(r.stdout) == "".join(f"out{i}\n" for i in range(1, 9)) + "tail"
    assert decode(r.stderr) == "".join(f"err{i}\n" for i in range(1, 9))


def test_output_streams_as_produced(vm):
    p = vm.popen("run", "--", "sh", "-c", "echo first; sleep 3; echo second")
    try:
        fd = p.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + 150
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        assert buf == b"first\n", f"expected 'first' alone, got {buf!r}"
        assert p.poll() is None, "the CLI had already exited when 'first' arrived: output was not streamed"
        rest, err = p.communicate(timeout=60)
        assert rest == b"second\n", (rest, err)
        assert p.returncode == 0, decode(err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_code(vm, code):
    r = vm.run("run", "--", "sh", "-c", f"exit {code}")
    assert r.returncode == code, decode(r.stderr)


@pytest.mark.parametrize("sig,code", [("KILL", 137), ("TERM", 143)])
def test_killed_by_signal(vm, sig, code):
    r = vm.run("run", "--", "sh", "-c", f"echo before; kill -{sig} $$; echo after")
    assert r.returncode == code, decode(r.stderr)
    assert r.stdout == b"before\n"


def test_command_not_found(vm):
    r = vm.run("run", "--", "nonexistent-cmd", "arg")
    assert r.returncode == 127, (r.returncode, decode(r.stderr))
    err = decode(r.stderr)
    assert "nonexistent-cmd" in err, err
    assert "not found" in err.lower() or "no such file" in err.lower(), err
    assert r.stdout == b""


def test_stdin_text(vm):
    r = vm.run("run", "--", "cat", input=b"hi\n", check=0)
    assert r.stdout == b"hi\n"


def test_stdin_binary_1mb(vm):
    data = os.urandom(1024 * 1024)
    r = vm.run("run", "--", "cat", input=data, check=0)
    assert len(r.stdout) == len(data)
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_stdin_eof_when_not_given(vm):
    # No stdin on the host side: the command must see EOF, not hang.
    r = vm.run("run", "--", "sh", "-c", "cat; echo done", timeout=120, check=0)
    assert r.stdout == b"done\n"


def test_env_and_workdir(vm):
    r = vm.run("run", "--env", "FOO=bar", "--workdir", "/tmp", "--", "sh", "-c", "echo $FOO; pwd", check=0)
    assert decode(r.stdout) == "bar\n/tmp\n"


GUEST_50MB = """
import hashlib, os, sys
h = hashlib.sha256()
left = 52428800
out = sys.stdout.buffer
with open('/dev/urandom', 'rb') as f:
    while left:
        b = f.read(min(left, 1 << 16))
        h.update(b)
        out.write(b)
        left -= len(b)
out.flush()
sys.stderr.write(h.hexdigest() + '\\n')
"""


def test_50mb_stdout(vm):
    start = time.monotonic()
    p = vm.popen("run", "--", "python3", "-c", GUEST_50MB)
    try:
        n, digest, err = drain_hashed(p, 1 << 16, 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    elapsed = time.monotonic() - start
    assert p.returncode == 0, decode(err)
    assert n == 52428800
    guest_hash = decode(err).strip().splitlines()[-1]
    assert guest_hash == digest
    print(f"50 MB through stdout in {elapsed:.1f} s including boot ({50 / elapsed:.1f} MB/s)")
