"""Errors of `ptloss-export` name flags, never Python-only arguments
(issue 12: "an error suggests `allow_extra=True`, a Python argument with no
flag"). The library writes argument names in backticks; the CLI replaces
each with its flag, so every backticked name in an error must have one."""

import ast
import os
import re

import pytest

import ptloss_tf.export
from ptloss_tf.export.cli import argument_flags, cli_message

EXPORT_DIR = os.path.dirname(os.path.abspath(ptloss_tf.export.__file__))


def _error_messages():
    """`(file:line, text)` of the string parts of every `raise` in export/."""
    found = []
    for name in sorted(os.listdir(EXPORT_DIR)):
        if not name.endswith(".py"):
            continue
        path = os.path.join(EXPORT_DIR, name)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(n.value for n in ast.walk(node.exc)
                                if isinstance(n, ast.Constant) and isinstance(n.value, str))
                found.append((f"{name}:{node.lineno}", text))
    return found


def test_every_backticked_name_in_an_error_has_a_flag():
    messages = _error_messages()
    assert len(messages) > 20  # the scan sees the raises
    flags = argument_flags()
    unmapped = {(where, name) for where, text in messages
                for name in re.findall(r"`(\w+)`", text) if name not in flags}
    assert not unmapped, sorted(unmapped)


def test_no_error_suggests_a_python_keyword_argument():
    hints = [(where, text) for where, text in _error_messages()
             if re.search(r"\b\w+=(True|False|None)\b", text)]
    assert not hints, hints


@pytest.mark.parametrize("message, expected", [
    ("pass `class_names`.", "pass --class-names."),
    ("pass `pair` or `num_segments` 1", "pass --pair or --num-segments 1"),
    ("`text_fields` ['a'] and `label_field`", "--text-fields ['a'] and --label-field"),
    ("`vocabulary` and `sequence_length`", "--vocabulary and --sequence-length"),
    ("omit `version`; `base_path`, `name`", "omit --version; --base-path, --name"),
    ("pass `overwrite`", "pass --overwrite"),
    # Positional arguments have no flag: left as written.
    ("`version_dir` stays", "`version_dir` stays"),
])
def test_cli_message_says_flags(message, expected):
    assert cli_message(message) == expected
