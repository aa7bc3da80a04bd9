"""Fixtures of the integration suite: real boxes through the real `cocoon` CLI.

Environment (scripts/run-integration sets these):
  COCOON_BIN_DIR    directory holding cocoon and cocoon-vmm (default build/bin)
  COCOON_SHARE_DIR  kernel, initramfs, images (default build/share/cocoon)
Every test gets a fresh COCOON_HOME under its tmp_path and, after it, a check that no
cocoon-vmm or qemu-system process of that home is left running (they are killed and
the test fails), and that no sanitizer report was written.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.abspath(os.environ.get("COCOON_BIN_DIR") or os.path.join(REPO, "build", "bin"))
SHARE_DIR = os.path.abspath(os.environ.get("COCOON_SHARE_DIR") or os.path.join(REPO, "build", "share", "cocoon"))
COCOON = os.path.join(BIN_DIR, "cocoon")
DEFAULT_TIMEOUT = float(os.environ.get("COCOON_TEST_TIMEOUT", "180"))
LEFTOVER_GRACE_S = 10.0


# The VMM backends the VM tests run on (`--vmm`): every test that takes the `vm`
# fixture runs once per backend, as test_x[qemu] and test_x[kvm]. A backend this host
# cannot run is skipped with the reason (never silently passed).
BACKENDS = ("qemu", "kvm")


def vm_missing_reason(backend="qemu"):
    """Why a VM cannot be booted here, or None. Only missing guest artefacts count:
    a missing CLI or monitor is a failure of the build, not a reason to skip."""
    need = {
        "guest kernel": os.path.join(SHARE_DIR, "vmlinux"),
        "initramfs": os.path.join(SHARE_DIR, "initramfs.cpio"),
        "default image": os.path.join(SHARE_DIR, "images", "default.ext4"),
    }
    missing = [f"{what} ({path})" for what, path in need.items() if not os.path.exists(path)]
    if backend == "qemu" and shutil.which(os.environ.get("COCOON_QEMU", "qemu-system-x86_64")) is None:
        missing.append("qemu-system-x86_64")
    if missing:
        return "missing " + ", ".join(missing) + " (make guest)"
    return None


def _proc_matches(pid, needle):
    """(name, cmdline) of a cocoon-vmm/qemu process that mentions needle, else None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return None
    # A process that is exiting has no command line once its main thread is gone, but
    # its other threads hold its files (and their locks: a QEMU's on its disk) until
    # they end too: it is matched by name and open files then.
    name = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else comm
    if not any(k in name or k in comm for k in ("cocoon-vmm", "qemu-system")):
        return None
    blob = b"\0".join(argv)
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            blob += b"\0" + f.read()
    except OSError:
        pass
    if needle.encode() in blob:
        return name, b" ".join(argv).decode(errors="replace")
    # A jailed monitor or its QEMU may name nothing of the home on its command line;
    # its open files (disk, console log, box directory) still do: those of any of its
    # threads (the main one may have exited first).
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for fd_dir in [f"/proc/{pid}/fd"] + [f"/proc/{pid}/task/{t}/fd" for t in tasks if t != str(pid)]:
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}").startswith(needle):
                    return name, b" ".join(argv).decode(errors="replace")
            except OSError:
                pass
        if fds:
            break  # the threads of a process share one table: the first that has one is enough
    return None


def find_box_processes(home):
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            m = _proc_matches(int(entry), home)
            if m:
                found[int(entry)] = m
    return found


def kill_leftovers(home, grace=LEFTOVER_GRACE_S):
    """Waits up to grace seconds for the box processes of home to end, kills those still
    running and returns them ({pid: (name, cmdline)}; empty when all ended)."""
    deadline = time.monotonic() + grace
    left = find_box_processes(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = find_box_processes(home)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


class Cocoon:
    """Runs the CLI with a private COCOON_HOME and records what it did."""

    def __init__(self, home, tmp_path):
        self.home = home
        self.tmp_path = tmp_path
        self.backend = None  # set by the vm fixture: create/run get --vmm BACKEND
        self.sanitizer_dir = os.path.join(str(tmp_path), "sanitizer")
        os.makedirs(self.sanitizer_dir, exist_ok=True)
        self.env = dict(os.environ)
        self.env["COCOON_HOME"] = home
        self.env["COCOON_SHARE_DIR"] = SHARE_DIR
        self.env.setdefault("COCOON_VMM", os.path.join(BIN_DIR, "cocoon-vmm"))
        # Sanitizer reports of every process (CLI and detached monitor) land in files.
        log = os.path.join(self.sanitizer_dir, "report")
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            base = self.env.get(var, "")
            self.env[var] = (base + ":" if base else "") + "log_path=" + log

    def _env(self, extra):
        env = dict(self.env)
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def _args(self, args):
        """create/run get `--vmm BACKEND` right after the subcommand (options stop at
        the first operand) unless the test chose a --vmm itself."""
        args = list(args)
        if self.backend and args and args[0] in ("create", "run") and not any(
                a == "--vmm" or a.startswith("--vmm=") for a in args):
            args[1:1] = ["--vmm", self.backend]
        return args

    def run(self, *args, input=None, timeout=DEFAULT_TIMEOUT, env=None, check=None):
        """Runs `cocoon ARGS`; returns CompletedProcess with bytes stdout/stderr and
        .elapsed. Fails the test (after killing it) if it outlives timeout."""
        args = self._args(args)
        start = time.monotonic()
        p = subprocess.Popen([COCOON, *args], stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(env))
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            pytest.fail(f"cocoon {' '.join(args)} still running after {timeout} s; "
                        f"stdout={out[-500:]!r} stderr={err[-2000:]!r}")
        r = subprocess.CompletedProcess([COCOON, *args], p.returncode, out, err)
        r.elapsed = time.monotonic() - start
        if check is not None and r.returncode != check:
            pytest.fail(f"cocoon {' '.join(args)} exited {r.returncode}, expected {check}; "
                        f"stdout={out[-1000:]!r} stderr={err.decode(errors='replace')[-3000:]}")
        return r

    def popen(self, *args, env=None, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([COCOON, *self._args(args)], env=self._env(env), **kw)

    def boxes_dir(self):
        return os.path.join(self.home, "boxes")

    def box_dirs(self):
        d = self.boxes_dir()
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def sanitizer_reports(self):
        out = []
        for name in sorted(os.listdir(self.sanitizer_dir)):
            with open(os.path.join(self.sanitizer_dir, name), errors="replace") as f:
                out.append(f"{name}:\n{f.read()[-4000:]}")
        return out


def find_key(obj, *names):
    """First value under any of names anywhere in a JSON document (dicts searched
    breadth-first), or None."""
    queue = [obj]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            for n in names:
                if n in cur:
                    return cur[n]
            queue.extend(cur.values())
        elif isinstance(cur, list):
            queue.extend(cur)
    return None


def host_has_hw_virt():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "vmx" in flags or "svm" in flags
    except OSError:
        pass
    return False


_HOST = {}


def host_info(tmp_root):
    """`cocoon doctor --json` once per session (None if it failed)."""
    if "info" not in _HOST:
        _HOST["info"] = None
        home = os.path.join(tmp_root, "doctor-home")
        os.makedirs(home, mode=0o700, exist_ok=True)
        env = dict(os.environ, COCOON_HOME=home, COCOON_SHARE_DIR=SHARE_DIR)
        try:
            p = subprocess.run([COCOON, "doctor", "--json"], capture_output=True, timeout=60, env=env)
            _HOST["raw"] = p
            _HOST["info"] = json.loads(p.stdout.decode())
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            _HOST["error"] = repr(e)
    return _HOST["info"]


def backend_label(info):
    if not info:
        return "unknown (cocoon doctor --json failed: %s)" % _HOST.get("error", "no output")
    return "backend=%s accel=%s" % (find_key(info, "backend"), find_key(info, "accel"))


def pytest_report_header(config):
    import tempfile
    info = host_info(tempfile.mkdtemp(prefix="cocoon-doctor-"))
    reason = vm_missing_reason()
    return [f"cocoon: {COCOON}", f"share: {SHARE_DIR}", f"cocoon boxes run on: {backend_label(info)}",
            "guest artefacts: " + (reason or "present")]


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"cocoon integration tests ran on: {backend_label(_HOST.get('info'))}")


@pytest.fixture
def cocoon(tmp_path, record_property):
    home = str(tmp_path / "home")
    os.makedirs(home, mode=0o700)  # cocoon warns about a state directory others can read
    c = Cocoon(home, tmp_path)
    record_property("backend", backend_label(_HOST.get("info")))
    yield c
    problems = leftover_problems(c)
    if problems:
        pytest.fail("\n".join(problems))


def leftover_problems(c):
    """What a finished test left behind in c's home: cocoon-vmm or QEMU processes still
    running LEFTOVER_GRACE_S later (they are killed), and sanitizer reports."""
    left = kill_leftovers(c.home)
    reports = c.sanitizer_reports()
    problems = []
    if left:
        problems.append("processes left running %.0f s after the test (killed): %s" % (
            LEFTOVER_GRACE_S, "; ".join(f"{pid} {cmd[:300]}" for pid, (_, cmd) in left.items())))
    if reports:
        problems.append("sanitizer reports:\n" + "\n".join(reports))
    return problems


def backend_skip_reason(backend, tmp_root):
    """Why `backend` cannot run boxes on this host, or None. kvm needs `cocoon doctor
    --json` to say kvm_usable (hardware VMX/SVM behind /dev/kvm), or COCOON_FORCE_KVM."""
    if backend != "kvm":
        return None
    if os.environ.get("COCOON_FORCE_KVM", "0") not in ("", "0"):
        return None
    info = host_info(tmp_root)
    if info is None:
        return "kvm backend: cocoon doctor --json failed (%s)" % _HOST.get("error", "no output")
    if find_key(info, "kvm_usable"):
        return None
    return "kvm backend: /dev/kvm cannot run a stock kernel here (%s)" % (
        find_key(info, "kvm_reason") or "kvm_usable is false")


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path_factory):
    """The VMM backend of this test variant; skipped when the host cannot run it."""
    reason = backend_skip_reason(request.param, str(tmp_path_factory.getbasetemp()))
    if reason:
        pytest.skip(f"skipped: {reason}")
    return request.param


@pytest.fixture
def vm(backend, cocoon):
    """A cocoon fixture for tests that boot a box, on `backend` (create and run get
    --vmm BACKEND): skipped when the guest artefacts are missing or the host cannot
    run the backend, with the reason."""
    reason = vm_missing_reason(backend)
    if reason:
        pytest.skip(f"skipped: {reason}")
    assert os.access(COCOON, os.X_OK), f"{COCOON} is not built (make all)"
    cocoon.backend = backend
    return cocoon


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    return host_info(str(tmp_path_factory.mktemp("doctor")))


def drain_hashed(p, chunk, timeout):
    """Reads the Popen p's stdout to its end chunk bytes at a time, then its stderr, and
    waits for it: (bytes read, their sha256 hex digest, stderr bytes)."""
    h = hashlib.sha256()
    n = 0
    while True:
        data = p.stdout.read(chunk)
        if not data:
            break
        h.update(data)
        n += len(data)
    err = p.stderr.read()
    p.wait(timeout=timeout)
    return n, h.hexdigest(), err


def decode(b):
    return b.decode(errors="replace")


@pytest.fixture
def boxes(vm):
    """Boots named boxes for a test and removes them after it, pass or fail."""
    names = []

    def boot(name, *extra):
        names.append(name)
        vm.run("create", "--name", name, *extra, check=0)
        vm.run("start", name, check=0)
        return name
    yield boot
    for n in names:
        vm.run("rm", "-f", n)


def sh(vm, box, script, check=0, **kw):
    """Runs a shell script in a running box through `cocoon exec`."""
    return vm.run("exec", box, "--", "sh", "-c", script, check=check, **kw)
