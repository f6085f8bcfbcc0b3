"""`ptloss_tf.io_utils`: atomic text/JSON writes, permissions, fsync order."""

import json
import os
import stat

import numpy as np
import pytest

from ptloss_tf import io_utils


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda value: os.umask(value)
    os.umask(saved)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_gets_the_umask_permissions(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "a.txt"
    io_utils.atomic_write_text(str(path), "hello")
    assert path.read_text() == "hello"
    assert _mode(path) == mode
    # The same as a plain open() would give.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(plain) == mode


def test_overwrite_replaces_content_and_permissions(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "a.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    io_utils.atomic_write_text(str(path), "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o644
    assert _leftovers(tmp_path, ["a.json"]) == []


def test_current_umask_reads_without_changing(umask, monkeypatch):
    umask(0o037)
    assert io_utils.current_umask() == 0o037
    # The os.umask fallback (non-Linux) gives the same and restores it.
    monkeypatch.setattr(io_utils.sys, "platform", "darwin")
    assert io_utils.current_umask() == 0o037
    assert os.umask(0o037) == 0o037


def test_unserialisable_payload_leaves_the_old_file(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        io_utils.atomic_write_json(str(path), {"new": {1, 2}})
    assert path.read_text() == '{"old": 1}'
    assert _leftovers(tmp_path, ["result.json"]) == []


def test_failed_write_removes_the_temporary_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(TypeError):
        io_utils.atomic_write_text(str(path), b"bytes are not text")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path, ["a.txt"]) == []


def test_failed_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def fail(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(io_utils.os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        io_utils.atomic_write_text(str(path), "new")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path, ["a.txt"]) == []


def test_fsync_before_rename_then_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        events.append("fsync dir" if is_dir else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(io_utils.os, "fsync", fsync)
    monkeypatch.setattr(io_utils.os, "replace", replace)
    io_utils.atomic_write_text(str(tmp_path / "a.txt"), "x")
    assert events == ["fsync file", "replace", "fsync dir"]


def test_json_with_numpy_values_round_trips(tmp_path):
    path = tmp_path / "r.json"
    payload = {
        "f32": np.float32(0.25),
        "i64": np.int64(7),
        "array": np.array([[1.5, 2.0], [3.0, 4.0]]),
        "plain": [1, "a", None],
    }
    io_utils.atomic_write_json(str(path), payload)
    loaded = json.loads(path.read_text())
    assert loaded == {"f32": 0.25, "i64": 7, "array": [[1.5, 2.0], [3.0, 4.0]],
                      "plain": [1, "a", None]}
    assert type(loaded["i64"]) is int
    # indent=1 by default, as the JSON files of this project are written.
    assert path.read_text() == json.dumps(json.loads(path.read_text()), indent=1)
    io_utils.atomic_write_json(str(path), {"a": 1}, indent=None)
    assert path.read_text() == '{"a": 1}'


def test_json_default_rejects_other_types():
    with pytest.raises(TypeError, match="object"):
        io_utils.json_default(object())
    with pytest.raises(TypeError, match="bool"):
        io_utils.json_default(np.bool_(True))
