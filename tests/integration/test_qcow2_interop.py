"""Interop of our qcow2 code (src/disk/qcow2*.c) with QEMU's tools, both ways:
images we create and write pass `qemu-img check` without errors or leaks and
`qemu-img compare` equal to the raw content we expect; images and overlays written
by qemu-img/qemu-io read back byte for byte through our code.

Our side is driven through tests/tools/qcow2-tool.c, compiled here from source
(with ASan/UBSan) into a temporary directory. Skipped when qemu-img is missing."""
import json
import os
import random
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")

pytestmark = pytest.mark.skipif(not QEMU_IMG or not QEMU_IO,
                                reason="qemu-img/qemu-io not installed (apt-get install qemu-utils)")

MiB = 1 << 20


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    out = tmp_path_factory.mktemp("qcow2tool") / "qcow2-tool"
    srcs = [os.path.join(ROOT, "tests/tools/qcow2-tool.c")] + sorted(
        os.path.join(ROOT, "src/disk", f) for f in os.listdir(os.path.join(ROOT, "src/disk"))
        if f.startswith("qcow2") and f.endswith(".c")) + [os.path.join(ROOT, "src/util", f)
                                                           for f in ("fd.c", "testpoint.c")]
    cmd = ["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
           "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"),
           "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-o", str(out)] + srcs + ["-lpthread"]
    subprocess.run(cmd, check=True)
    return str(out)


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def qemu_check(img):
    """qemu-img check as JSON; asserts no errors and no leaks."""
    p = run(QEMU_IMG, "check", "-f", "qcow2", "--output=json", img, ok=False)
    assert p.returncode == 0, f"qemu-img check rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    r = json.loads(p.stdout)
    assert r.get("check-errors", 0) == 0, r
    assert r.get("corruptions", 0) == 0, r
    assert r.get("leaks", 0) == 0, r
    return r


def write_ours(tool, img, off, data, tmp):
    f = tmp / "chunk.bin"
    f.write_bytes(data)
    run(tool, "write", img, off, f)


def random_writes(tool, img, model, rng, tmp, n=40, maxlen=300000):
    size = len(model)
    for _ in range(n):
        ln = rng.randint(1, maxlen)
        off = rng.randrange(0, size - ln)
        data = rng.randbytes(ln)
        write_ours(tool, img, off, data, tmp)
        model[off:off + ln] = data


@pytest.mark.parametrize("size", ["1G", "2T"])
def test_our_create_is_clean(tool, tmp_path, size):
    img = tmp_path / "a.qcow2"
    run(tool, "create", img, size)
    qemu_check(img)
    info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == {"1G": 1 << 30, "2T": 2 << 40}[size]
    assert info["format-specific"]["data"]["compat"] == "1.1"
    assert os.path.getsize(img) < MiB


@pytest.mark.parametrize("cluster_bits", [16, 12, 9])
def test_our_random_writes_compare_equal(tool, tmp_path, cluster_bits):
    img, raw = tmp_path / "w.qcow2", tmp_path / "w.raw"
    size = 24 * MiB
    run(tool, "create", img, size, "", "", cluster_bits)
    model = bytearray(size)
    random_writes(tool, img, model, random.Random(cluster_bits), tmp_path)
    raw.write_bytes(model)
    qemu_check(img)
    run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", img, raw)
    # and our own checker agrees with qemu-img
    assert "corruptions=0 leaks=0" in run(tool, "check", img).stdout


def test_qemu_written_image_reads_back(tool, tmp_path):
    for opts, name in [("cluster_size=65536", "def"), ("cluster_size=4096,refcount_bits=1", "small"),
                       ("compat=0.10", "v2"), ("cluster_size=2M,refcount_bits=64", "big")]:
        img, out = tmp_path / f"q-{name}.qcow2", tmp_path / f"q-{name}.out"
        size = 8 * MiB
        run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", opts, img, size)
        cmds = ["write -P 0x55 0 64k", "write -P 0xaa 1000448 4096", "write -P 0x11 3M 1M",
                "write -z 3200k 64k", "write -P 0x77 8380416 8192"]
        args = [QEMU_IO, "-f", "qcow2"]
        for c in cmds:
            args += ["-c", c]
        run(*args, img)
        exp = bytearray(size)
        exp[0:65536] = b"\x55" * 65536
        exp[1000448:1000448 + 4096] = b"\xaa" * 4096
        exp[3 * MiB:4 * MiB] = b"\x11" * MiB
        exp[3200 * 1024:3264 * 1024] = bytes(65536)
        exp[8380416:8388608] = b"\x77" * 8192
        run(tool, "dump", img, out)
        assert out.read_bytes() == bytes(exp), name
        # we can also write to it and QEMU stays happy
        write_ours(tool, img, 5 * MiB + 3, b"\x99" * 70000, tmp_path)
        exp[5 * MiB + 3:5 * MiB + 3 + 70000] = b"\x99" * 70000
        qemu_check(img)
        (tmp_path / "exp.raw").write_bytes(exp)
        run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", img, tmp_path / "exp.raw")


def test_convert_ours_to_raw(tool, tmp_path):
    img, conv = tmp_path / "c.qcow2", tmp_path / "c.raw"
    size = 16 * MiB
    run(tool, "create", img, size)
    model = bytearray(size)
    random_writes(tool, img, model, random.Random(7), tmp_path, n=25)
    run(QEMU_IMG, "convert", "-f", "qcow2", "-O", "raw", img, conv)
    assert conv.read_bytes() == bytes(model)
    # and the other direction: QEMU converts a raw file to qcow2, we read it
    run(QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", conv, tmp_path / "back.qcow2")
    run(tool, "dump", tmp_path / "back.qcow2", tmp_path / "back.raw")
    assert (tmp_path / "back.raw").read_bytes() == bytes(model)


def test_overlay_over_raw_base(tool, tmp_path):
    base, img, exp = tmp_path / "base.raw", tmp_path / "ov.qcow2", tmp_path / "exp.raw"
    rng = random.Random(42)
    size = 20 * MiB + 12345  # not cluster aligned
    data = bytearray(rng.randbytes(size))
    base.write_bytes(data)
    run(tool, "create", img, 0, base, "raw")
    info = json.loads(run(QEMU_IMG, "info", "--output=json", img).stdout)
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "raw"
    model = data + bytes((-size) % 512)
    random_writes(tool, img, model, rng, tmp_path, n=30, maxlen=100000)
    run(tool, "discard", img, 5 * MiB + 100, 3 * 65536)
    model[5 * MiB + 100:5 * MiB + 100 + 3 * 65536] = bytes(3 * 65536)
    exp.write_bytes(model)
    qemu_check(img)
    run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", img, exp)
    assert base.read_bytes() == data  # the base is never written


def test_chains_mixed_with_qemu(tool, tmp_path):
    """qemu overlay over our image, and our overlay over qemu's image."""
    ours, top = tmp_path / "ours.qcow2", tmp_path / "top.qcow2"
    size = 8 * MiB
    run(tool, "create", ours, size)
    run(tool, "fill", ours, 100000, 200000, 0x42)
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", ours, "-F", "qcow2", top)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x24 150000 1000", top)
    exp = bytearray(size)
    exp[100000:300000] = b"\x42" * 200000
    exp[150000:151000] = b"\x24" * 1000
    run(tool, "dump", top, tmp_path / "top.raw")
    assert (tmp_path / "top.raw").read_bytes() == bytes(exp)

    qbase, mine = tmp_path / "qbase.qcow2", tmp_path / "mine.qcow2"
    run(QEMU_IMG, "create", "-q", "-f", "qcow2", qbase, size)
    run(QEMU_IO, "-f", "qcow2", "-c", "write -P 0x33 0 1M", qbase)
    run(tool, "create", mine, 0, qbase, "qcow2")
    run(tool, "fill", mine, 4096, 10, 0x44)
    qemu_check(mine)
    exp = bytearray(size)
    exp[0:MiB] = b"\x33" * MiB
    exp[4096:4106] = b"\x44" * 10
    (tmp_path / "exp.raw").write_bytes(exp)
    run(QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", mine, tmp_path / "exp.raw")
    qemu_check(qbase)  # untouched and clean


def test_sigkill_mid_write_leaves_no_corruption(tool, tmp_path):
    """A writer killed at any point leaves at most leaked clusters, never errors,
    and the image stays usable by both sides."""
    import signal
    import time
    img = tmp_path / "k.qcow2"
    run(tool, "create", img, 256 * MiB, "", "", 9)  # small clusters: many table evictions
    for delay in (0.05, 0.2, 0.5):
        p = subprocess.Popen([tool, "fill", str(img), "1000", str(200 * MiB), "0x66"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        c = run(QEMU_IMG, "check", "-f", "qcow2", "--output=json", img, ok=False)
        assert c.returncode in (0, 3), c.stdout + c.stderr  # 3: leaks only
        r = json.loads(c.stdout)
        assert r.get("corruptions", 0) == 0 and r.get("check-errors", 0) == 0, r
    run(tool, "fill", img, 0, 4096, 0x12)
    run(QEMU_IO, "-f", "qcow2", "-c", "read -P 0x12 0 4096", img)
