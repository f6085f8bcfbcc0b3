"""`ptloss_tf.strategy.make_strategy`.

Logical CPU devices must be configured before TensorFlow initialises, and
the TPU path's `connect_to_cluster` rewires the eager context, so those
checks run in one fresh subprocess (shared by two tests through a module
fixture, to pay TensorFlow's start-up once); the rest runs in-process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from ptloss_tf.strategy import STRATEGY_NAMES
from ptloss_tf.strategy import make_strategy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_ENV_VARS = ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG")


def _run_script(script, timeout=120, extra_env=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    for var in TPU_ENV_VARS:
        env.pop(var, None)
    env.update(extra_env or {})
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def _has_tpu():
    return bool(tf.config.list_physical_devices("TPU"))


# -- default ---------------------------------------------------------------


def test_default_is_the_current_strategy():
    for name in ("default", "DEFAULT", " Default ", None, ""):
        strategy = make_strategy(name)
        assert strategy is tf.distribute.get_strategy()
        assert strategy.num_replicas_in_sync == 1
    assert make_strategy() is tf.distribute.get_strategy()


def test_default_inside_a_scope_returns_that_strategy():
    outer = tf.distribute.OneDeviceStrategy("/cpu:0")
    with outer.scope():
        assert make_strategy("default") is outer


# -- argument errors ---------------------------------------------------------


@pytest.mark.parametrize("name", ["gpu", "mirror", "parameter_server", "xla", 3])
def test_unknown_name_lists_the_choices(name):
    with pytest.raises(ValueError, match="unknown strategy") as info:
        make_strategy(name)
    for choice in STRATEGY_NAMES:
        assert repr(choice) in str(info.value)


def test_devices_only_for_mirrored():
    with pytest.raises(ValueError, match="only used by make_strategy\\('mirrored'\\)"):
        make_strategy("default", devices=["/cpu:0"])
    with pytest.raises(ValueError, match="devices"):
        make_strategy("tpu", devices=["/cpu:0"])


def test_tpu_only_for_tpu():
    with pytest.raises(ValueError, match="only used by make_strategy\\('tpu'\\)"):
        make_strategy("mirrored", tpu="local")


def test_empty_device_list_rejected():
    with pytest.raises(ValueError, match="at least one device"):
        make_strategy("mirrored", devices=[])


# -- multi_worker: TF_CONFIG checks (no strategy is created) -----------------

_GOOD_CLUSTER = {"worker": ["localhost:1111", "localhost:2222"]}


@pytest.mark.parametrize(
    "tf_config, problem",
    [
        (None, "not set"),
        ("", "not set"),
        ("{cluster: worker}", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "'cluster'"),
        (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "'cluster'"),
        (json.dumps({"cluster": {"worker": "localhost:1"},
                     "task": {"type": "worker", "index": 0}}), "host:port"),
        (json.dumps({"cluster": {"worker": ["localhost"]},
                     "task": {"type": "worker", "index": 0}}), "host:port"),
        (json.dumps({"cluster": _GOOD_CLUSTER}), "'task'"),
        (json.dumps({"cluster": _GOOD_CLUSTER, "task": {"type": "worker"}}), "'index'"),
        (json.dumps({"cluster": _GOOD_CLUSTER,
                     "task": {"type": "chief", "index": 0}}), "not a job"),
        (json.dumps({"cluster": _GOOD_CLUSTER,
                     "task": {"type": "worker", "index": 2}}), "index 2"),
        (json.dumps({"cluster": _GOOD_CLUSTER,
                     "task": {"type": "worker", "index": -1}}), "index -1"),
        (json.dumps({"cluster": _GOOD_CLUSTER,
                     "task": {"type": "worker", "index": "0"}}), "index '0'"),
    ],
)
def test_bad_tf_config(monkeypatch, tf_config, problem):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError) as info:
        make_strategy("multi_worker")
    message = str(info.value)
    assert "TF_CONFIG" in message
    assert problem in message
    # The message shows the expected JSON shape.
    assert '{"cluster": {"worker": ["host0:12345", "host1:12345"]}' in message
    assert '"task": {"type": "worker", "index": 0}' in message


# -- mirrored (2 logical CPUs) and TPU 'local', in one subprocess ----------

_SUBPROCESS_SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
import ptloss_tf
from ptloss_tf.strategy import make_strategy

out = {}
out["no_devices"] = make_strategy("mirrored").num_replicas_in_sync
out["list"] = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]).num_replicas_in_sync
out["string"] = make_strategy("Mirrored", devices="/cpu:0, /cpu:1").num_replicas_in_sync
out["one"] = make_strategy("mirrored", devices=["/cpu:0"]).num_replicas_in_sync
strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
out["type"] = type(strategy).__name__

# Distiller steps on 2 replicas equal single-device steps on the
# global batch.
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 4)).astype("float32")
p = rng.dirichlet(np.ones(3), size=16).astype("float32")
y = rng.integers(0, 3, size=16).astype("int32")
w0 = [rng.normal(size=(4, 3)).astype("float32"), np.zeros(3, "float32")]

def run(scope):
    with scope:
        student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        student.set_weights(w0)
        d = ptloss_tf.Distiller(student)
        d.compile(optimizer=keras.optimizers.SGD(0.5),
                  distillation_loss=ptloss_tf.PTLoss([[1.0, -0.5, 0.2]], from_logits=True),
                  student_loss_weight=0.5, jit_compile=False)
    ds = tf.data.Dataset.from_tensor_slices(
        (x, {"teacher_probs": p, "labels": y})).batch(16)
    d.fit(ds, epochs=3, verbose=0)
    return [w.numpy() for w in d.student.weights]

import contextlib
single = run(contextlib.nullcontext())
mirrored = run(strategy.scope())
out["max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored))
out["moved"] = float(np.abs(single[0] - w0[0]).max())

# Last, as it rewires the eager context: the TPU path on a machine without
# a TPU.
out["has_tpu"] = bool(tf.config.list_physical_devices("TPU"))
try:
    make_strategy("tpu", tpu="local")
    out["tpu_local"] = {"raised": None}
except Exception as e:
    out["tpu_local"] = {"raised": type(e).__name__, "message": str(e),
                        "suppressed": e.__cause__ is None and e.__suppress_context__}
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def subprocess_results():
    return _run_script(_SUBPROCESS_SCRIPT)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(subprocess_results):
    out = subprocess_results
    assert out["type"] == "MirroredStrategy"
    # No GPU: MirroredStrategy() takes all local (logical) CPU devices.
    assert out["no_devices"] == 2
    assert out["list"] == 2
    assert out["string"] == 2
    assert out["one"] == 1
    assert out["moved"] > 1e-2
    assert out["max_diff"] < 1e-5


# -- tpu -------------------------------------------------------------------


def _check_tpu_message(message, tpu_text):
    assert "No TPU was found" in message
    assert f"tpu={tpu_text}" in message
    for accepted in ("--tpu", "tpu=", "'local'", "grpc://", "TPU_NAME"):
        assert accepted in message
    assert "Traceback" not in message


def test_tpu_without_a_tpu_autodetect(monkeypatch):
    if _has_tpu():
        pytest.skip("a TPU is attached")
    for var in TPU_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError) as info:
        make_strategy("tpu")
    _check_tpu_message(str(info.value), "auto-detect")
    # `from None`: no chained low-level traceback.
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.slow
def test_tpu_local_without_a_tpu(subprocess_results):
    if subprocess_results["has_tpu"]:
        pytest.skip("a TPU is attached")
    out = subprocess_results["tpu_local"]
    assert out["raised"] == "RuntimeError", out
    _check_tpu_message(out["message"], "'local'")
    assert out["suppressed"]
