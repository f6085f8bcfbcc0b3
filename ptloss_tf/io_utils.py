"""Atomic file writes: a reader sees the old file or the new one, never half."""

import os
import tempfile


def atomic_write_text(path, text):
    """Writes `text` to a temporary file beside `path`, then renames it.

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
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
