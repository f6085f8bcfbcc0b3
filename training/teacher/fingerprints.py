"""Per-row content fingerprints of the teacher-outputs format
(`teacher.outputs`): `text_fingerprints`, the scheme they follow, and the
warning a join without them emits."""

import hashlib

import numpy as np

#: The fingerprint scheme written in the header (see `text_fingerprints`).
FINGERPRINT_SCHEME = "blake2b-64/text-v1"
#: How many offending ids an error message quotes.
FIRST_FEW = 5


class UncheckedAlignmentWarning(UserWarning):
    """Teacher outputs without fingerprints were joined by id alone: nothing
    checked that their rows belong to the examples' texts."""


def text_fingerprints(texts):
    """Per-row content fingerprints of text segments: `[N]` str, 16 hex digits.

    Row `i`'s fingerprint is the 64-bit BLAKE2b hash of its segments
    `texts[0][i], texts[1][i], ...` (scheme `FINGERPRINT_SCHEME`). Each segment
    is whitespace-normalised (`" ".join(s.split())`: runs of whitespace,
    leading/trailing spaces and line ends do not change what a tokenizer
    reads, and differ between copies of a dataset, e.g. GLUE's TSVs and
    TFDS), encoded as UTF-8 and length-prefixed (`b"<bytes>:" + text`), so a
    segment boundary cannot be confused with text: `("ab", "c")` and
    `("a", "bc")` differ, and so do one and two segments. Case and all other
    characters count.

    Args:
        texts: one `[N]` sequence of str (a single segment) or a tuple of 1
            or 2 of them (`Examples.texts`: premise/hypothesis, ...).

    Returns:
        `[N]` numpy str array.

    Example:
    >>> text_fingerprints((["a fine film", "dull"],)).tolist()
    ['dc0f702731fdc44a', '1e084b868b472833']
    >>> a, b = text_fingerprints((["ab"], ["c"])), text_fingerprints((["a"], ["bc"]))
    >>> bool(a[0] == b[0]), bool(text_fingerprints(["a  fine film "])[0] == "dc0f702731fdc44a")
    (False, True)
    """
    if isinstance(texts, np.ndarray) and texts.ndim == 1 or (
            isinstance(texts, (list, tuple)) and texts and isinstance(texts[0], str)):
        texts = (texts,)
    segments = [list(t) for t in texts]
    if not segments:
        raise ValueError("text_fingerprints: need at least one text segment.")
    n = len(segments[0])
    if any(len(t) != n for t in segments):
        raise ValueError(f"text_fingerprints: segments of different lengths "
                         f"{[len(t) for t in segments]}.")
    out = []
    for row in zip(*segments):
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{len(row)};".encode("ascii"))
        for segment in row:
            data = " ".join(str(segment).split()).encode("utf-8")
            h.update(f"{len(data)}:".encode("ascii"))
            h.update(data)
        out.append(h.hexdigest())
    return np.asarray(out, dtype=str).reshape(n)


def first_few(items, n=FIRST_FEW):
    """`repr`s of the first `n` items for an error message, then `...`."""
    items = [str(i) for i in items]
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (", ..." if len(items) > n else "")
