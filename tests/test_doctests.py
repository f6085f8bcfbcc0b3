"""Runs the doctests of the applications under their installed names.

`training/` and `export/` install as `ptloss_tf.training` and
`ptloss_tf.export` (setup.cfg `package_dir`). pytest's `--doctest-modules`
would import those folders under their folder names (`training.student`), a
second copy of every module; here each module is imported by its installed
name and its examples run with `doctest`, so a failing example fails a test
that names the module.
"""

import doctest
import importlib
import pkgutil

import pytest

import ptloss_tf.export
import ptloss_tf.training


def _modules(package):
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


MODULES = _modules(ptloss_tf.training) + _modules(ptloss_tf.export)


def test_every_application_module_is_collected():
    assert "ptloss_tf.training.cli" in MODULES and "ptloss_tf.export.cli" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest(s) failed in {name}"
