"""Backend selection (`--vmm auto|kvm|qemu`, config.json "backend") and the kvm backend.

On hosts whose /dev/kvm cannot run a stock kernel (PVM: no vmx/svm flag) the kvm
backend must be refused with the probe's reason, auto must pick qemu and say why.
A real Linux guest on the kvm backend is exercised by the nested lane
(tests/nested/run.sh); test_nested_lane runs it when COCOON_NESTED=1."""
import json
import os
import subprocess

import pytest

from conftest import (BACKENDS, BIN_DIR, REPO, SHARE_DIR, backend_skip_reason, decode, find_key, host_has_hw_virt,
                      vm_missing_reason)

VMM = os.path.join(BIN_DIR, "cocoon-vmm")


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK) and host_has_hw_virt()


def box_config(cocoon, name):
    for d in cocoon.box_dirs():
        with open(os.path.join(cocoon.boxes_dir(), d, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("name") == name:
            return cfg
    raise AssertionError(f"no box named {name}")


def test_doctor_names_backend_and_reason(cocoon):
    info = json.loads(decode(cocoon.run("doctor", "--json", timeout=60).stdout))
    backend = find_key(info, "backend")
    reason = find_key(info, "backend_reason")
    print(f"doctor: backend={backend} ({reason})")
    assert backend == ("kvm" if kvm_usable() else "qemu"), info
    assert reason, info
    text = decode(cocoon.run("doctor", timeout=60).stdout)
    assert "backend" in text and backend in text, text


def test_vm_tests_run_on_every_backend_the_host_can_run(tmp_path):
    """The suite's backend parameter: qemu always; kvm exactly where doctor says
    kvm_usable, and otherwise skipped with the probe's reason (never silently passed)."""
    assert BACKENDS == ("qemu", "kvm")
    assert backend_skip_reason("qemu", str(tmp_path)) is None
    reason = backend_skip_reason("kvm", str(tmp_path))
    if os.environ.get("COCOON_FORCE_KVM", "0") not in ("", "0"):
        assert reason is None
    elif kvm_usable():
        assert reason is None, reason
    else:
        assert reason and reason.startswith("kvm backend: /dev/kvm cannot run a stock kernel here ("), reason


def test_vm_fixture_passes_vmm(vm):
    """Every create/run of a VM test names its backend; a test's own --vmm wins."""
    assert vm.backend in BACKENDS
    assert vm._args(("create", "--name", "x")) == ["create", "--vmm", vm.backend, "--name", "x"]
    assert vm._args(("run", "--rm", "echo")) == ["run", "--vmm", vm.backend, "--rm", "echo"]
    assert vm._args(("create", "--vmm", "qemu")) == ["create", "--vmm", "qemu"]
    assert vm._args(("exec", "b", "true")) == ["exec", "b", "true"]


def test_kvm_with_networking_is_not_refused_for_lack_of_a_device(cocoon):
    """virtio-net exists: `--vmm kvm` with a network fails here only because /dev/kvm
    cannot run a stock kernel, never because the kvm backend has no network device."""
    if kvm_usable():
        pytest.skip("this host's KVM can run a stock kernel: --vmm kvm is allowed here")
    if vm_missing_reason():
        pytest.skip(vm_missing_reason())
    r = cocoon.run("create", "--name", "kn", "--vmm", "kvm", "--net", "public", timeout=60,
                   env={"COCOON_FORCE_KVM": None})
    err = decode(r.stderr)
    assert r.returncode != 0, err
    assert "network device" not in err and "kvm backend unavailable" in err, err


def test_bad_vmm_value_is_a_usage_error(cocoon):
    r = cocoon.run("create", "--vmm", "firecracker", timeout=60)
    assert r.returncode != 0
    assert "--vmm" in decode(r.stderr) and "auto, kvm or qemu" in decode(r.stderr), r.stderr


def test_create_records_backend(cocoon):
    if vm_missing_reason():
        pytest.skip(vm_missing_reason())
    cocoon.run("create", "--name", "b-auto", timeout=120, check=0)
    cocoon.run("create", "--name", "b-qemu", "--vmm", "qemu", timeout=120, check=0)
    assert box_config(cocoon, "b-auto")["backend"] == "auto"
    assert box_config(cocoon, "b-qemu")["backend"] == "qemu"


def test_vmm_kvm_refused_without_hardware_virtualization(cocoon):
    if kvm_usable():
        pytest.skip("this host's KVM can run a stock kernel: --vmm kvm is allowed here")
    if vm_missing_reason():
        pytest.skip(vm_missing_reason())
    r = cocoon.run("create", "--name", "k", "--vmm", "kvm", timeout=60, env={"COCOON_FORCE_KVM": None})
    err = decode(r.stderr)
    assert r.returncode != 0, err
    assert "kvm backend unavailable" in err, err
    assert "vmx/svm" in err or "/dev/kvm" in err, err  # the probe's reason


def test_monitor_refuses_kvm_backend_with_reason(tmp_path):
    """cocoon-vmm itself re-checks: a config.json asking for kvm on a host that cannot
    run it fails the start with the probe's reason on the ready fd."""
    if kvm_usable():
        pytest.skip("KVM is usable here")
    kernel = os.path.join(SHARE_DIR, "vmlinux")
    if not os.path.exists(kernel):
        pytest.skip("no guest kernel (make guest)")
    box = tmp_path / "box"
    box.mkdir()
    disk = box / "disk.raw"
    disk.write_bytes(b"\0" * 1024 * 1024)
    (box / "config.json").write_text(json.dumps(
        {"id": "kvmtest", "kernel": kernel, "disk": str(disk), "disk_format": "raw", "backend": "kvm"}))
    r, w = os.pipe()
    env = dict(os.environ)
    env.pop("COCOON_FORCE_KVM", None)
    p = subprocess.run([VMM, "--box-dir", str(box), "--ready-fd", str(w)], pass_fds=(w,), env=env,
                       capture_output=True, timeout=30)
    os.close(w)
    line = os.read(r, 4096).decode()
    os.close(r)
    assert p.returncode != 0
    assert line.startswith("error kvm backend unavailable"), line
    assert "--vmm qemu" in line, line


def test_kvm_run_child_reports_failure(tmp_path):
    """The kvm child (`cocoon-vmm --kvm-run DIR CMDLINE`) fails with one line on stderr when
    it cannot build the machine (here: an empty config.json)."""
    box = tmp_path / "box"
    box.mkdir()
    (box / "config.json").write_text("{}")
    p = subprocess.run([VMM, "--kvm-run", str(box), "console=ttyS0"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err.startswith("cocoon-vmm kvm: ") and "config.json" in err, err


@pytest.mark.skipif(os.environ.get("COCOON_NESTED") != "1", reason="skipped: the nested lane runs in `make test` via tests/nested/run.sh; set COCOON_NESTED=1 to run it from pytest too")
def test_nested_lane():
    """kvm backend + real Linux guest inside a QEMU-TCG VM with an emulated SVM CPU."""
    p = subprocess.run([os.path.join(REPO, "tests", "nested", "run.sh")], capture_output=True, timeout=900)
    out = p.stdout.decode()
    print(out)
    if out.startswith("skipped:"):
        pytest.skip(out.strip())
    assert p.returncode == 0, out + p.stderr.decode()[-2000:]
