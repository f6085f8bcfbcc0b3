"""Atomic file writes: a reader sees the old file or the new one, never half.

The text goes to a temporary file in the target's directory, is flushed to
disk (`fsync`), and is renamed over the target (`os.replace`, atomic on POSIX
and Windows); the directory is then synced so the rename itself survives a
crash (best effort: not every platform can open a directory).
"""

import json
import os
import sys
import tempfile

import numpy as np


def current_umask():
    """The process umask, read without changing it where the OS allows.

    Linux reports it in `/proc/self/status` (kernel 4.7+). Elsewhere it is
    read by setting it and restoring it at once: a file another thread creates
    between those two calls gets mode bits without the umask (a short,
    documented race of `os.umask`).

    Example:
    >>> old = os.umask(0o027)
    >>> oct(current_umask())
    '0o27'
    >>> _ = os.umask(old)
    """
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        return int(line.split()[1], 8)
        except (OSError, ValueError, IndexError):
            pass
    old = os.umask(0)
    os.umask(old)
    return old


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_file(tmp, path):
    """Moves a finished temporary file `tmp` onto `path` atomically.

    For files another library writes (a Keras `model.save`, `save_weights`)
    to a temporary name beside `path`: the file is synced to disk, given the
    permissions an ordinary `open(path, "w")` would give (the user's umask;
    `mkstemp` and some writers create 0o600), renamed over `path` and the
    directory synced. On any error `tmp` is removed and the error raised;
    `path` keeps its old content.

    Example:
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> tmp, path = os.path.join(directory, "m.tmp"), os.path.join(directory, "m.bin")
    >>> _ = open(tmp, "w").write("weights")
    >>> publish_file(tmp, path)
    >>> open(path).read(), os.path.exists(tmp)
    ('weights', False)
    """
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def save_atomically(save, tmp, path):
    """Calls `save(tmp)` (a library's writer: `model.save`, `save_weights`),
    then `publish_file(tmp, path)`; if `save` fails, `tmp` is removed and
    `path` keeps its old content. `tmp` is a name beside `path` with the
    extension the writer requires (`.keras`, `.weights.h5`).

    Example:
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> def write(name):
    ...     with open(name, "w") as f:
    ...         f.write("weights")
    >>> path = os.path.join(directory, "m.bin")
    >>> save_atomically(write, path + ".tmp", path)
    >>> open(path).read(), sorted(os.listdir(directory))
    ('weights', ['m.bin'])
    """
    try:
        save(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    publish_file(tmp, path)


def file_sha256(path):
    """Hex sha256 of a file's bytes, read in 1 MiB blocks.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path, text):
    """Writes `text` to a temporary file beside `path`, then renames it.

    The file gets the permissions an ordinary `open(path, "w")` would give,
    `0o666 & ~umask` (e.g. 0o644 under the usual umask 0o022), not the 0o600
    of `tempfile.mkstemp`: a reader running as another user (a TF-Serving
    container, say) must be able to read it. On any error the temporary file
    is removed and an existing `path` is left as it was.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> atomic_write_text(path, "{}")
    >>> open(path).read()
    '{}'
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except BaseException:
        os.unlink(tmp)
        raise
    publish_file(tmp, path)


def json_default(value):
    """`json.dumps(default=...)` hook for numpy values.

    numpy scalars become Python numbers (`.item()`), arrays nested lists;
    anything else raises `TypeError`, as `json.dumps` would.

    Example:
    >>> json.dumps({"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(2)},
    ...            default=json_default)
    '{"n": 3, "x": 0.5, "v": [0, 1]}'
    """
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(
        f"Object of type {type(value).__name__} is not JSON serializable"
    )


def atomic_write_json(path, payload, indent=1):
    """`payload` as JSON (numpy values allowed, see `json_default`), atomically.

    The text is built before any file is touched, so a payload that cannot be
    serialised raises `TypeError` and leaves `path` as it was.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "result.json")
    >>> atomic_write_json(path, {"accuracy": np.float64(0.875), "counts": np.arange(2)})
    >>> print(open(path).read())
    {
     "accuracy": 0.875,
     "counts": [
      0,
      1
     ]
    }
    """
    atomic_write_text(path, json.dumps(payload, indent=indent, default=json_default))
