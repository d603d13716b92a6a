from __future__ import annotations

import io
import tarfile

import pytest

from edgeopt.bundle import opened, safe_extract, write_bundle
from edgeopt.errors import BoardError

FILES = {"manifest.json": b'{"schema_version": 1}\n', "model.onnx": b"model", "golden/input_0.npy": b"x"}


def test_tarball_is_reproducible(tmp_path):
    first = write_bundle(tmp_path / "a", "b1", FILES)
    second = write_bundle(tmp_path / "b", "b1", dict(reversed(FILES.items())))
    assert first.sha256 == second.sha256
    assert first.tarball.read_bytes() == second.tarball.read_bytes()
    with tarfile.open(first.tarball) as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert (first.directory / "golden" / "input_0.npy").read_bytes() == b"x"


def test_rebuild_replaces_and_leaves_no_temp(tmp_path):
    write_bundle(tmp_path, "b1", FILES)
    write_bundle(tmp_path, "b1", {**FILES, "model.onnx": b"new"})
    assert (tmp_path / "b1" / "model.onnx").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1", "b1.tar.gz"]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_bundle(tmp_path, "b1", {**FILES, "bad": None})
    assert list(tmp_path.iterdir()) == []


def evil_tarball(path, name):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "b/../../x"])
def test_safe_extract_refuses_traversal(tmp_path, name):
    evil_tarball(tmp_path / "evil.tar.gz", name)
    with pytest.raises(BoardError, match="refusing unsafe entry"):
        safe_extract(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_refuses_links(tmp_path):
    with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("b/manifest.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BoardError, match="link"):
        safe_extract(tmp_path / "link.tar.gz", tmp_path / "out")


def test_opened_reads_dir_and_tarball(tmp_path):
    bundle = write_bundle(tmp_path, "b1", FILES)
    for path in (bundle.directory, bundle.tarball):
        with opened(path) as directory:
            assert (directory / "model.onnx").read_bytes() == b"model"
    with pytest.raises(BoardError, match="not an edgeopt bundle"):
        with opened(tmp_path):
            pass
