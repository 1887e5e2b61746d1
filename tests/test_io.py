"""Atomic outputs: all or nothing, with ordinary permissions."""

import os
import stat

import pytest

from vggheads.io import atomic_dir, atomic_path, write_json


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_until_success(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "images"
    with atomic_dir(target) as d:
        (d / "a.png").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "b.png").write_bytes(b"2")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["a.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["images"]


def test_outputs_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_ultralytics_leaves_pil_alone_on_corrupt_images(tmp_path):
    """ultralytics' PIL patch would try to pip-install a HEIF plugin on an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    from vggheads.offline import import_ultralytics

    import_ultralytics()
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(UnidentifiedImageError):
        Image.open(bad)


def test_next_write_clears_what_a_killed_write_left(tmp_path):
    """SIGKILL leaves the partial file; the next write of the same target removes it, and only it."""
    target, other = tmp_path / "00000.parquet", tmp_path / "00000"
    stale = tmp_path / ".00000.parquet.partial-abc123.parquet"
    stale.write_bytes(b"half")
    stale_dir = tmp_path / ".00000.partial-xyz"
    stale_dir.mkdir()
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(".00000.parquet.partial-")
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists()
    assert stale_dir.exists()  # another target's (the directory 00000) partial is left alone
    with atomic_dir(other) as d:
        (d / "a.png").write_bytes(b"1")
    assert not stale_dir.exists() and (other / "a.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000", "00000.parquet"]
