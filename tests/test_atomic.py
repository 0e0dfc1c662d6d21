"""The one atomic file write: whole or not at all, created like any new file, no leftovers."""

import os

import pytest

from edge.core.atomic import atomic_write_text, replacing


def test_a_file_is_replaced_whole_and_takes_the_usual_mode(tmp_path):
    target = tmp_path / "deep" / "manifest.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with pytest.raises(OSError, match="encoder"), replacing(target, suffix=".mp4") as temporary:
        assert temporary.suffix == ".mp4" and temporary.parent == tmp_path
        temporary.write_text("half")
        raise OSError("the encoder failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
