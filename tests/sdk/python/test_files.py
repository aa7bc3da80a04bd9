"""Files through the SDK, on both transports: bytes and text, trees both ways, tar
archives, and the file operations (stat, list, mkdir, remove, move)."""
import io
import os
import tarfile

import pytest

import cocoon


def test_write_and_read_bytes_and_text(box):
    box.files.write("/tmp/blob", b"\x00\xffdata", mode=0o600)
    assert box.files.read("/tmp/blob") == b"\x00\xffdata"
    assert box.exec(["stat", "-c", "%a", "/tmp/blob"]).stdout == "600\n"
    box.files.write_text("/tmp/t.txt", "héllo\n")
    assert box.files.read_text("/tmp/t.txt") == "héllo\n"
    assert box.exec(["cat", "/tmp/t.txt"]).stdout == "héllo\n"
    box.files.write("/tmp/t.txt", "replaced")
    assert box.files.read_text("/tmp/t.txt") == "replaced"


def test_read_errors(box):
    with pytest.raises(cocoon.NotFound):
        box.files.read("/no/such/file")
    box.files.write("/tmp/big", b"x" * 5000)
    with pytest.raises(cocoon.InvalidArgument):
        box.files.read("/tmp/big", max_bytes=100)


def _tree(root):
    os.makedirs(os.path.join(root, "sub", "deeper"))
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("alpha\n")
    with open(os.path.join(root, "sub", "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho ran\n")
    os.chmod(os.path.join(root, "sub", "run.sh"), 0o755)
    with open(os.path.join(root, "sub", "deeper", "bin"), "wb") as f:
        f.write(bytes(range(256)) * 40)
    os.symlink("a.txt", os.path.join(root, "link"))


def test_upload_and_download_trees(box, tmp_path):
    src = tmp_path / "proj"
    _tree(str(src))
    box.exec(["mkdir", "-p", "/work"], check=True)
    box.files.upload(src, "/work")  # an existing directory: into it, under its name
    assert box.exec(["/work/proj/sub/run.sh"]).stdout == "ran\n"
    assert box.exec(["readlink", "/work/proj/link"]).stdout == "a.txt\n"
    box.files.upload(src / "a.txt", "/work/renamed.txt")  # not a directory: the copy is that name
    assert box.files.read_text("/work/renamed.txt") == "alpha\n"

    box.exec(["sh", "-c", "echo made-inside > /work/proj/new.txt"], check=True)
    out = tmp_path / "out"
    out.mkdir()
    box.files.download("/work/proj", out)
    got = out / "proj"
    assert (got / "new.txt").read_text() == "made-inside\n"
    assert (got / "sub" / "deeper" / "bin").read_bytes() == bytes(range(256)) * 40
    assert os.readlink(got / "link") == "a.txt"
    assert os.stat(got / "sub" / "run.sh").st_mode & 0o111
    box.files.download("/work/proj/a.txt", tmp_path / "single.txt")
    assert (tmp_path / "single.txt").read_text() == "alpha\n"
    with pytest.raises(cocoon.NotFound):
        box.files.download("/work/nope", tmp_path / "nope")
    assert not os.path.exists(tmp_path / "nope")


def test_archives(box):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from an archive\n"
        ti = tarfile.TarInfo("arch/file.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    box.exec(["mkdir", "-p", "/srv"], check=True)
    box.files.put_archive("/srv", buf.getvalue())
    assert box.files.read_text("/srv/arch/file.txt") == "from an archive\n"
    with pytest.raises(cocoon.CocoonError):
        box.files.put_archive("/srv", buf.getvalue(), overwrite=False)
    got = tarfile.open(fileobj=io.BytesIO(box.files.get_archive("/srv/arch")))
    assert sorted(m.name for m in got) == ["arch", "arch/file.txt"]
    assert got.extractfile("arch/file.txt").read() == b"from an archive\n"
    with pytest.raises(cocoon.InvalidArgument):
        box.files.put_archive("/srv", b"not a tar archive" * 100)


def _fileops(box):
    try:
        box.files.stat("/")
    except cocoon.Unsupported as e:
        pytest.skip(f"skipped: file operations not in this build ({e})")


def test_stat_list_mkdir_remove_move(box):
    _fileops(box)
    box.files.mkdir("/fs/a/b", parents=True)
    box.files.mkdir("/fs/a/b", parents=True)  # exists: fine with parents
    with pytest.raises(cocoon.CocoonError):
        box.files.mkdir("/fs/a/b")
    box.files.write("/fs/a/f.txt", "12345", mode=0o640)
    st = box.files.stat("/fs/a/f.txt")
    assert (st.name, st.type, st.size, st.mode & 0o777) == ("f.txt", "file", 5, 0o640)
    assert st.is_file and not st.is_dir and st.mtime > 1e9
    box.exec(["ln", "-s", "f.txt", "/fs/a/l"], check=True)
    entries = box.files.list("/fs/a")
    assert [(e.name, e.type) for e in entries] == [("b", "directory"), ("f.txt", "file"), ("l", "symlink")]
    assert [e.link_target for e in entries if e.is_symlink] == ["f.txt"]
    box.files.move("/fs/a/f.txt", "/fs/a/g.txt")
    assert box.files.exists("/fs/a/g.txt") and not box.files.exists("/fs/a/f.txt")
    box.files.write("/fs/a/h.txt", "h")
    with pytest.raises(cocoon.CocoonError):
        box.files.move("/fs/a/h.txt", "/fs/a/g.txt", replace=False)
    with pytest.raises(cocoon.CocoonError):
        box.files.remove("/fs/a")  # not empty
    box.files.remove("/fs/a", recursive=True)
    assert not box.files.exists("/fs/a")
    with pytest.raises(cocoon.NotFound):
        box.files.stat("/fs/a")
    with pytest.raises(cocoon.NotFound):
        box.files.list("/fs/nope")
