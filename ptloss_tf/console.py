"""A clean terminal for the console scripts: framework start-up logging off
by default, one-line argument errors.

TensorFlow writes 8-14 lines to stderr while it is imported (oneDNN, CUDA
stubs, CPU features), from C++ and before its log level can be read from
Python; Keras and absl add warnings later. `quiet_framework()` imports
TensorFlow with stderr (file descriptor 2) redirected, replays it if the
import fails, and turns the framework's later logging down to errors. It
must run before anything imports TensorFlow: the console scripts call it
first thing, and `import ptloss_tf` itself loads nothing heavy.

Example:
>>> parser = ArgumentParser(prog="tool")
>>> _ = parser.add_argument("--epochs", type=int)
>>> try:
...     parser.parse_args(["--epochs", "x"])
... except SystemExit as e:
...     e.code
2
>>> framework_logging_requested(["--epochs", "3", "--verbose", "3"])
True
"""

import argparse
import contextlib
import os
import sys
import tempfile
import warnings

#: `--verbose` level from which the framework's own logging is shown.
FRAMEWORK_LOGS_VERBOSITY = 3
#: Modules whose Python warnings are hidden unless the framework logs are on.
FRAMEWORK_MODULES = r"(keras|keras_hub|keras_nlp|tensorflow|tensorflow_datasets|tf_keras|absl)(\.|$)"


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors are one line (the usage
    block of a long option list would push the error off the screen) and
    whose `--help` shows every option's default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: ...)` for every option with a default, help text or
    not (None and False defaults are not shown: they mean "not given")."""

    def _format_action(self, action):
        if action.help is None and action.option_strings:
            action.help = "(default: %(default)s)" if self._shows_default(action) else None
        return super()._format_action(action)

    def _get_help_string(self, action):
        if not self._shows_default(action):
            return action.help
        return super()._get_help_string(action)

    @staticmethod
    def _shows_default(action):
        return action.default is not None and action.default is not False and (
            action.default is not argparse.SUPPRESS)


def framework_logging_requested(argv):
    """Whether `argv` asks for the framework's logging: `--verbose 3` (or
    more), or `--verbose` without a value."""
    for i, arg in enumerate(argv):
        if arg == "--verbose":
            value = argv[i + 1] if i + 1 < len(argv) else None
            if value is None or value.startswith("-"):
                return True
            try:
                return int(value) >= FRAMEWORK_LOGS_VERBOSITY
            except ValueError:
                return False
        if arg.startswith("--verbose="):
            try:
                return int(arg.split("=", 1)[1]) >= FRAMEWORK_LOGS_VERBOSITY
            except ValueError:
                return False
    return False


@contextlib.contextmanager
def _stderr_captured():
    """Redirects file descriptor 2 (C++ logging too) into a temporary file;
    yields the file, so the caller can replay it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def quiet_framework(show=False):
    """Imports TensorFlow quietly and keeps the framework's logging to errors.

    Args:
        show: keep everything (`--verbose 3`): only imports TensorFlow.

    A user's own `TF_CPP_MIN_LOG_LEVEL` is respected. Returns nothing.
    Without TensorFlow (a JAX or PyTorch host training from prepared data)
    there is nothing to quieten; any other failed import raises as usual,
    after replaying what it printed.
    """
    if show:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module=FRAMEWORK_MODULES)
    if "tensorflow" not in sys.modules:
        error = None
        with _stderr_captured() as captured:
            try:
                import tensorflow as tf  # noqa: F401
            except ImportError:  # not installed: code that needs it says so
                return
            except BaseException as e:  # replayed below, then raised unchanged
                error = e
                captured.seek(0)
                replay = captured.read()
        if error is not None:
            os.write(2, replay)
            raise error
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl ships with TensorFlow; nothing to quieten otherwise
        pass
