"""`cocoon version` and `cocoon doctor`: what the host offers, stated consistently."""
import json
import os

from conftest import REPO, decode, find_key, host_has_hw_virt


def test_version(cocoon):
    r = cocoon.run("version", timeout=30, check=0)
    out = decode(r.stdout)
    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    assert version in out, out


def test_doctor_text(cocoon):
    r = cocoon.run("doctor", timeout=60)
    out = decode(r.stdout) + decode(r.stderr)
    assert "kvm" in out.lower(), out
    assert "tcg" in out.lower() or "accel" in out.lower(), out


def test_doctor_json_consistent_with_cpu(cocoon):
    r = cocoon.run("doctor", "--json", timeout=60)
    info = json.loads(decode(r.stdout))
    backend = find_key(info, "backend")
    accel = find_key(info, "accel")
    usable = find_key(info, "kvm_usable", "usable")
    print(f"doctor: backend={backend} accel={accel} kvm_usable={usable}")
    assert backend in ("qemu", "kvm")  # kvm where KVM can run a stock kernel (test_backend.py)
    assert accel in ("kvm", "tcg")
    kvm_opens = os.access("/dev/kvm", os.R_OK | os.W_OK)
    hw = host_has_hw_virt()
    if not (kvm_opens and hw):
        # e.g. a PVM host: /dev/kvm exists but the CPU shows no vmx/svm
        assert accel == "tcg", info
        assert usable in (False, 0), info
        reason = find_key(info, "kvm_reason", "reason")
        assert reason, f"no reason given why KVM is not usable: {info}"
    else:
        assert accel == "kvm", info
        assert usable in (True, 1), info
