"""Atomic replacement: the new content appears whole, or the old one stays."""

from __future__ import annotations

import pytest

from gateway.fsutil import atomic_path, atomic_write


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "pointer"
    atomic_write(path, "v1")
    atomic_write(path, b"v2")
    assert path.read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["pointer"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.txt"]


def test_a_folder_is_moved_into_place_whole(tmp_path):
    target = tmp_path / "fs-1"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
        assert not target.exists()
    assert (target / "a").read_text() == "1"
    with pytest.raises(ValueError), atomic_path(tmp_path / "fs-2") as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
        raise ValueError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs-1"]
