"""What the CLI loads when it starts (issue 16): libcurl, libarchive and libext2fs, with
their TLS, Kerberos, LDAP, XML and ICU dependencies, are loaded only by the commands that
pull, load or copy files (src/util/dynlib.c); a host without one gets an error naming
the package, and every other command still works. Speed itself is measured by
bench/cli_start.py, not here."""
import os
import subprocess
import tarfile

import pytest

import small_images
from conftest import BIN_DIR, COCOON, decode

LAZY = ("libcurl", "libarchive", "libext2fs", "libcom_err", "libssl", "libgnutls", "libxml2", "libicu", "libkrb5",
        "libldap", "libyaml")
LIBCOCOON = os.path.join(os.path.dirname(BIN_DIR), "lib", "libcocoon.so.0")


def linked(path):
    return subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout


def test_cli_and_library_do_not_link_the_heavy_libraries():
    for path in (COCOON, LIBCOCOON):
        libs = linked(path)
        found = [name for name in LAZY if name in libs]
        assert not found, f"{path} loads {found} at start:\n{libs}"


def test_short_commands_never_load_them(cocoon):
    """The dynamic loader's own record of what these commands opened."""
    for args in (("version",), ("ls", "-a"), ("images",), ("help",)):
        r = cocoon.run(*args, env={"LD_DEBUG": "files"}, check=0)
        opened = [line for line in decode(r.stderr).splitlines() if "file=" in line and any(n in line for n in LAZY)]
        assert not opened, f"cocoon {' '.join(args)} loaded:\n" + "\n".join(opened)


def test_missing_libraries_are_named_and_the_rest_works(cocoon, tmp_path):
    gone = {"COCOON_TEST_DLOPEN_FAIL": "libarchive.so.13,libcurl.so.4"}
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as t:
        t.add(__file__, arcname="manifest.json")
    r = cocoon.run("load", str(archive), env=gone)
    err = decode(r.stderr)
    assert r.returncode == 125 and "libarchive.so.13 is needed for" in err and "libarchive13" in err, err
    r = cocoon.run("pull", "--insecure", "127.0.0.1:9/nothing:here", env=gone)
    err = decode(r.stderr)
    assert r.returncode == 125 and "libcurl.so.4 is needed for pulling images" in err and "libcurl4" in err, err
    assert "cannot reach" not in err, "the pull went to the network before finding libcurl missing"
    for args in (("ls", "-a"), ("images",), ("version",)):
        r = cocoon.run(*args, env=gone)
        assert r.returncode == 0, decode(r.stderr)
    # and with the libraries there, the same load gets as far as reading the archive
    r = cocoon.run("load", str(archive))
    assert r.returncode == 125 and "libarchive.so.13" not in decode(r.stderr), decode(r.stderr)


def test_load_without_libext2fs_says_so_and_lists_nothing(cocoon, tmp_path):
    if not small_images.available():
        pytest.skip("skipped: /bin/busybox is not installed (busybox-static)")
    tar = small_images.save_tarball(str(tmp_path / "img.tar"), "lazy/ext2fs:1")
    r = cocoon.run("load", tar, env={"COCOON_TEST_DLOPEN_FAIL": "libext2fs.so.2"})
    err = decode(r.stderr)
    assert r.returncode == 125 and "libext2fs.so.2 is needed for writing an image's ext4 base" in err, err
    assert "libext2fs2" in err, err
    assert "lazy/ext2fs" not in decode(cocoon.run("images", check=0).stdout)
    cocoon.run("load", tar, check=0)
    assert "lazy/ext2fs" in decode(cocoon.run("images", check=0).stdout)


def test_cp_without_libarchive_says_so(vm, boxes, tmp_path):
    box = boxes("cp-lib")
    src = tmp_path / "note.txt"
    src.write_text("hi\n")
    r = vm.run("cp", str(src), f"{box}:/tmp/note.txt", env={"COCOON_TEST_DLOPEN_FAIL": "libarchive.so.13"})
    err = decode(r.stderr)
    assert r.returncode != 0 and "libarchive.so.13 is needed for" in err, err
    r = vm.run("exec", box, "--", "sh", "-c", "test -e /tmp/note.txt && echo there || echo absent", check=0)
    assert decode(r.stdout) == "absent\n"
    vm.run("cp", str(src), f"{box}:/tmp/note.txt", check=0)
    r = vm.run("exec", box, "--", "cat", "/tmp/note.txt", check=0)
    assert decode(r.stdout) == "hi\n"
