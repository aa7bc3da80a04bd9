"""`make install` and an installed cocoon running without the build tree.

The build under test is installed with `make install DESTDIR=<tmp> PREFIX=/usr/local`
(without the 1.35 GB default image: INSTALL_IMAGE=0; boxes boot a busybox directory with
--rootfs). Then, from another directory and with COCOON_SHARE_DIR and COCOON_VMM unset,
the installed `cocoon` runs a box, and small C programs built with pkg-config against the
installed header and library (libcocoon.so, and libcocoon.a linked in) run one too.
`make uninstall` removes every file again. scripts/install-image (how the image is
placed: reflink, hard link or copy, never written through) is checked on a small file."""
import os
import shutil
import subprocess

import pytest

from conftest import BIN_DIR, REPO, SHARE_DIR, decode

BUILD = os.path.dirname(BIN_DIR)
PREFIX = "/usr/local"

C_PROGRAM = r"""
#include <stdio.h>
#include <cocoon.h>

int main(int argc, char **argv)
{
    cocoon_error err;
    cocoon_runtime *rt;
    cocoon_runtime_options ro;
    cocoon_runtime_options_init(&ro);
#ifdef SHARE_DIR /* linked statically: this program is not next to cocoon's files */
    ro.share_dir = SHARE_DIR;
    ro.vmm = VMM;
#endif
    if (argc < 2 || cocoon_runtime_open(&ro, &rt, &err) < 0) {
        fprintf(stderr, "runtime: %s\n", argc < 2 ? "usage: app ROOTFS [VMM]" : err.message);
        return 1;
    }
    cocoon_box_options bo;
    cocoon_box_options_init(&bo);
    bo.rootfs = argv[1];
    bo.vmm = argc > 2 ? argv[2] : NULL;
    bo.ephemeral = 1;
    bo.net = "none";
    cocoon_box *box = NULL;
    if (cocoon_box_create(rt, &bo, &box, &err) < 0 || cocoon_box_start(box, &err) < 0) {
        fprintf(stderr, "box: %s\n", err.message);
        if (box) {
            cocoon_box_remove(box, 1, &err);
            cocoon_box_close(box);
        }
        cocoon_runtime_close(rt);
        return 1;
    }
    const char *cmd[] = {"echo", "hi from the box", NULL};
    cocoon_exec_options eo;
    cocoon_exec_options_init(&eo);
    eo.argv = cmd;
    eo.stdout_fd = 1;
    cocoon_exit_status st;
    int rc = cocoon_box_run(box, &eo, &st, &err);
    if (rc < 0)
        fprintf(stderr, "run: %s\n", err.message);
    cocoon_box_remove(box, 1, &err);
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return rc < 0 ? 1 : cocoon_exit_status_code(&st);
}
"""


def _sanitized():
    try:
        out = subprocess.run(["nm", "-A", os.path.join(BUILD, "lib", "libcocoon.a")], capture_output=True,
                             timeout=60).stdout
    except OSError:
        return False
    return b"__asan_" in out


def _make(*args, timeout=1800):
    cmd = ["make", "-C", REPO, f"BUILD={BUILD}", f"PREFIX={PREFIX}", *args]
    if _sanitized():
        cmd.append("SANITIZE=1")
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """DESTDIR of an installation of the build under test (its guest files from
    SHARE_DIR, the default image left out)."""
    destdir = str(tmp_path_factory.mktemp("destdir"))
    r = _make("install", f"DESTDIR={destdir}", "INSTALL_IMAGE=0", f"GUEST_DIR={SHARE_DIR}")
    assert r.returncode == 0, decode(r.stdout + r.stderr)[-3000:]
    return destdir


@pytest.fixture
def rootfs(tmp_path):
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("skipped: busybox-static is not installed")
    with open(busybox, "rb") as f:
        if b"ld-linux" in f.read(4096):
            pytest.skip("skipped: busybox here is dynamically linked (install busybox-static)")
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in ("sh", "echo"):
        os.symlink("busybox", root / "bin" / applet)
    return str(root)


def _outside_env(vm, destdir):
    """The environment of a user of the installed tree: nothing points at the build."""
    env = vm._env({"COCOON_SHARE_DIR": None, "COCOON_VMM": None, "COCOON_KERNEL": None, "COCOON_INITRD": None})
    env["PATH"] = os.path.join(destdir + PREFIX, "bin") + ":/usr/bin:/bin"
    env["PKG_CONFIG_PATH"] = os.path.join(destdir + PREFIX, "lib", "pkgconfig")
    env["PKG_CONFIG_SYSROOT_DIR"] = destdir  # the .pc file names PREFIX; DESTDIR is a staging root
    return env


def test_installed_layout(installed):
    root = installed + PREFIX
    want = ["bin/cocoon", "bin/cocoon-vmm", "lib/libcocoon.so.0", "lib/libcocoon.a", "lib/pkgconfig/cocoon.pc",
            "include/cocoon.h", "share/cocoon/vmlinux", "share/cocoon/initramfs.cpio", "share/cocoon/cocoon-agent"]
    for rel in want:
        path = os.path.join(root, rel)
        assert os.path.isfile(path) and not os.path.islink(path), f"{rel} is not a regular file"
    assert os.readlink(os.path.join(root, "lib", "libcocoon.so")) == "libcocoon.so.0"
    assert not os.path.exists(os.path.join(root, "share", "cocoon", "images", "default.ext4"))  # INSTALL_IMAGE=0
    # nothing installed points back into the build tree or the cache
    for d, _, files in os.walk(installed):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                assert not os.path.isabs(os.readlink(p)), f"{p} -> {os.readlink(p)}"
    soname = subprocess.run(["objdump", "-p", os.path.join(root, "lib", "libcocoon.so.0")], capture_output=True,
                            text=True).stdout
    assert "SONAME               libcocoon.so.0" in soname, soname
    with open(os.path.join(root, "lib", "pkgconfig", "cocoon.pc")) as f:
        pc = f.read()
    assert f"prefix={PREFIX}\n" in pc and "Requires.private: jansson sqlite3" in pc, pc


def test_installed_cocoon_runs_a_box(vm, installed, rootfs, tmp_path):
    env = _outside_env(vm, installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run(["cocoon", "doctor", "--json"], capture_output=True, timeout=60, env=env, cwd=elsewhere)
    info = decode(r.stdout)
    share = os.path.join(installed + PREFIX, "share", "cocoon")
    assert share + "/vmlinux" in info and os.path.join(installed + PREFIX, "bin", "cocoon-vmm") in info, info
    assert REPO not in info, f"the installed cocoon looks into the build tree: {info}"
    r = subprocess.run(["cocoon", *vm._args(("run", "--rm", "--rootfs", rootfs, "--", "echo", "hi"))],
                       capture_output=True, timeout=300, env=env, cwd=elsewhere, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == b"hi\n", decode(r.stdout + r.stderr)
    assert vm.box_dirs() == []


def _pkg_config(env, *args):
    return subprocess.run(["pkg-config", *args], capture_output=True, text=True, env=env, check=True).stdout.split()


def test_c_programs_built_with_pkg_config(vm, installed, rootfs, tmp_path):
    if shutil.which("pkg-config") is None:
        pytest.skip("skipped: pkg-config is not installed")
    env = _outside_env(vm, installed)
    src = tmp_path / "app.c"
    src.write_text(C_PROGRAM)
    san = ["-fsanitize=address,undefined"] if _sanitized() else []
    cc = ["cc", "-std=gnu11", "-Wall", "-Werror", *san]
    libdir = _pkg_config(env, "--variable=libdir", "cocoon")[0]

    # libcocoon.so: found next to itself, it finds cocoon-vmm and share/cocoon
    shared = str(tmp_path / "app-shared")
    r = subprocess.run([*cc, "-o", shared, str(src), *_pkg_config(env, "--cflags", "--libs", "cocoon"),
                        f"-Wl,-rpath,{libdir}"], capture_output=True, env=env)
    assert r.returncode == 0, decode(r.stderr)
    ldd = subprocess.run(["ldd", shared], capture_output=True, text=True, env=env).stdout
    assert os.path.join(libdir, "libcocoon.so.0") in ldd, ldd

    # libcocoon.a linked in (the system libraries it needs, from Requires.private, stay
    # shared): such a program names the installed files through the .pc's variables
    static = str(tmp_path / "app-static")
    requires = _pkg_config(env, "--print-requires-private", "cocoon")
    share = _pkg_config(env, "--variable=sharedir", "cocoon")[0]
    vmm = _pkg_config(env, "--variable=vmm", "cocoon")[0]
    r = subprocess.run([*cc, "-o", static, str(src), *_pkg_config(env, "--cflags", "--libs-only-L", "cocoon"),
                        "-Wl,-Bstatic", "-lcocoon", "-Wl,-Bdynamic", *_pkg_config(env, "--libs", *requires),
                        "-lpthread", "-ldl", f'-DSHARE_DIR="{share}"', f'-DVMM="{vmm}"'], capture_output=True, env=env)
    assert r.returncode == 0, decode(r.stderr)
    ldd = subprocess.run(["ldd", static], capture_output=True, text=True, env=env).stdout
    assert "libcocoon" not in ldd, ldd

    for exe in (shared, static):
        r = subprocess.run([exe, rootfs, vm.backend], capture_output=True, timeout=300, env=env, cwd=tmp_path,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and r.stdout == b"hi from the box\n", f"{exe}: {decode(r.stdout + r.stderr)}"
    assert vm.box_dirs() == []


def test_uninstall_removes_everything(tmp_path):
    destdir = str(tmp_path / "destdir")
    r = _make("install", f"DESTDIR={destdir}", "INSTALL_IMAGE=0", f"GUEST_DIR={SHARE_DIR}")
    assert r.returncode == 0, decode(r.stdout + r.stderr)[-3000:]
    r = _make("uninstall", f"DESTDIR={destdir}")
    assert r.returncode == 0, decode(r.stdout + r.stderr)[-3000:]
    left = [os.path.join(d, f) for d, _, files in os.walk(destdir) for f in files]
    assert left == [], left
    assert not os.path.exists(os.path.join(destdir + PREFIX, "share", "cocoon"))


def test_install_without_guest_files_says_what_to_run(tmp_path):
    r = _make("install", f"DESTDIR={tmp_path}/d", f"GUEST_DIR={tmp_path}/nothing-here")
    err = decode(r.stderr)
    assert r.returncode != 0 and "vmlinux is missing" in err and "make all guest" in err, err
    assert not os.path.exists(f"{tmp_path}/d{PREFIX}/bin/cocoon")  # checked before anything is copied


def test_install_image_never_writes_through(tmp_path):
    """The image is placed by rename: reinstalling over a file that is a hard link to
    something else replaces the link and leaves the other file alone."""
    script = os.path.join(REPO, "scripts", "install-image")
    src = tmp_path / "src.ext4"
    src.write_bytes(b"new image" * 1000)
    other = tmp_path / "other.ext4"
    other.write_bytes(b"someone else's file")
    dest = tmp_path / "share" / "default.ext4"
    dest.parent.mkdir()
    os.link(other, dest)
    r = subprocess.run([script, str(src), str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == src.read_bytes()
    assert other.read_bytes() == b"someone else's file"
    how = r.stdout
    assert "(reflink)" in how or "(hard link)" in how, how  # same file system: no byte copy
    r = subprocess.run([script, str(src), str(dest)], capture_output=True, text=True)
    assert r.returncode == 0 and dest.read_bytes() == src.read_bytes(), r.stdout + r.stderr
    assert os.listdir(dest.parent) == ["default.ext4"]  # no temporary file left
