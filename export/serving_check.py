"""Checks a SavedModel the way TF Serving loads it: run as a standalone script.

    python -I serving_check.py CONFIG.json RESULT.json

This process sees only what `tensorflow_model_server` has: TensorFlow, the
C++ kernels of TF Text's ops (loaded with `tf.load_op_library`, as the
server links them in), and the tensorflow-serving-api protos to read
requests. Keras, keras-hub, TF Text's Python package and this project are
made unimportable *before* TensorFlow is imported, so a SavedModel that
needed any of them at load or call time fails here.

It uses only the standard library, numpy, tensorflow and
tensorflow_serving; `ptloss_tf.export.verify` writes CONFIG and reads RESULT.
"""

import importlib.util
import json
import os
import sys

UNAVAILABLE = ("keras", "keras_hub", "keras_nlp", "tf_keras", "tensorflow_text",
               "ptloss_tf", "training", "export")


def _tf_text_kernels():
    spec = importlib.util.find_spec("tensorflow_text")  # locates, does not import
    if spec is None:
        return []
    ops = os.path.join(spec.submodule_search_locations[0], "python", "ops")
    return sorted(os.path.join(ops, f) for f in os.listdir(ops) if f.endswith(".so"))


KERNELS = []
np = tf = predict_pb2 = prediction_log_pb2 = None


def isolate():
    """Makes keras & co. unimportable, then imports TensorFlow and loads TF
    Text's kernels. Only for this script's own process: importing this
    module has no side effects."""
    global np, tf, predict_pb2, prediction_log_pb2
    KERNELS.extend(_tf_text_kernels())
    for module in UNAVAILABLE:
        sys.modules[module] = None  # `import keras` now raises ImportError
    import numpy
    import tensorflow
    from tensorflow_serving.apis import predict_pb2 as predict, prediction_log_pb2 as logs

    np, tf, predict_pb2, prediction_log_pb2 = numpy, tensorflow, predict, logs
    for kernel in KERNELS:
        tf.load_op_library(kernel)


class Checks:
    def __init__(self):
        self.results = []

    def add(self, name, ok, detail=""):
        self.results.append({"check": name, "ok": bool(ok), "detail": str(detail)})
        return ok


def _spec_summary(spec):
    return [spec.dtype.name, spec.shape.as_list()]


def _check_specs(checks, function, name, expected_inputs, num_classes):
    _, inputs = function.structured_input_signature
    got = {k: _spec_summary(v) for k, v in inputs.items()}
    checks.add(f"{name}: inputs", got == expected_inputs,
               f"{got}" if got != expected_inputs else ", ".join(sorted(got)))
    expected_outputs = {"probabilities": ["float32", [None, num_classes]],
                        "logits": ["float32", [None, num_classes]],
                        "label_id": ["int32", [None]], "label": ["string", [None]]}
    outputs = {k: _spec_summary(v) for k, v in function.structured_outputs.items()}
    checks.add(f"{name}: outputs", outputs == expected_outputs,
               f"{outputs}" if outputs != expected_outputs else ", ".join(sorted(outputs)))


def _to_tensor(values, dtype):
    if dtype == tf.string:
        return tf.constant([str(v) for v in values], tf.string)
    return tf.constant(np.asarray(values), dtype)


def _call(function, inputs):
    _, spec = function.structured_input_signature
    missing = sorted(set(spec) - set(inputs))
    if missing:
        raise ValueError(f"request lacks inputs {missing}")
    return {k: v.numpy() for k, v in function(
        **{k: _to_tensor(inputs[k], spec[k].dtype) for k in spec}).items()}


def _compare(checks, name, outputs, expected, class_names, atol):
    probs = outputs["probabilities"]
    if probs.shape != expected.shape:
        return checks.add(name, False, f"probabilities shape {probs.shape}, expected {expected.shape}")
    diff = float(np.max(np.abs(probs - expected)))
    labels = [class_names[i] for i in outputs["label_id"]]
    ok = (diff <= atol and np.array_equal(outputs["label_id"], probs.argmax(-1))
          and [x.decode() for x in outputs["label"]] == labels
          and np.allclose(probs.sum(-1), 1.0, atol=1e-5))
    return checks.add(name, ok, f"max |p - p_keras| = {diff:.2e} (tolerance {atol:.0e})")


def _rest_inputs(body):
    if "instances" in body:
        rows = body["instances"]
        return {k: [row[k] for row in rows] for k in rows[0]}
    return body["inputs"]


def _proto_inputs(request):
    inputs = {}
    for name, proto in request.inputs.items():
        value = tf.make_ndarray(proto)
        inputs[name] = ([v.decode("utf-8") for v in value.reshape(-1)]
                        if value.dtype == object else value)
    return inputs


def main(config_path, result_path):
    with open(config_path) as f:
        config = json.load(f)
    checks = Checks()
    class_names = config["class_names"]
    num_classes = len(class_names)
    atol = config["atol"]
    expected = np.asarray(config["expected_probabilities"], np.float32)
    try:
        model = tf.saved_model.load(config["saved_model"])
        checks.add("load without keras / keras-hub / TF Text Python", True,
                   f"{len(KERNELS)} TF Text kernel libraries")
    except Exception as e:  # any load failure is the finding
        checks.add("load without keras / keras-hub / TF Text Python", False,
                   " ".join(str(e).split())[:400])
        return _finish(checks, result_path)
    signatures = sorted(model.signatures.keys())
    wanted = sorted(config["signatures"])
    if not checks.add("signature names", signatures == wanted, ", ".join(signatures)):
        return _finish(checks, result_path)
    text_inputs = {n: ["string", [None]] for n in config["text_inputs"]}
    token_inputs = {n: ["int32", [None, None]] for n in ("token_ids", "segment_ids", "padding_mask")}
    serving = model.signatures["serving_default"]
    tokens = model.signatures["predict_token_ids"]
    _check_specs(checks, serving, "serving_default", text_inputs, num_classes)
    _check_specs(checks, tokens, "predict_token_ids", token_inputs, num_classes)
    texts = {n: [row[i] for row in config["texts"]] for i, n in enumerate(config["text_inputs"])}
    _compare(checks, "serving_default on sample text", _call(serving, texts), expected,
             class_names, atol)
    _compare(checks, "predict_token_ids on sample tokens", _call(tokens, config["tokens"]),
             expected, class_names, atol)

    logs = []
    try:
        for record in tf.data.TFRecordDataset(config["warmup"]).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            logs.append(log)
        checks.add("warmup records parse as PredictionLog", bool(logs), f"{len(logs)} records")
    except Exception as e:
        checks.add("warmup records parse as PredictionLog", False, str(e)[:300])
    for i, log in enumerate(logs):
        request = log.predict_log.request
        name = request.model_spec.signature_name or "serving_default"
        try:
            inputs = _proto_inputs(request)
            outputs = _call(model.signatures[name], inputs)
            size = len(next(iter(inputs.values())))
            ok = (outputs["probabilities"].shape == (size, num_classes)
                  and np.all(np.isfinite(outputs["probabilities"])))
            checks.add(f"warmup request {i + 1} ({name}, batch {size})", ok)
        except Exception as e:
            checks.add(f"warmup request {i + 1} ({name})", False, str(e)[:300])

    for kind, path in sorted(config["rest"].items()):
        with open(path) as f:
            body = json.load(f)
        function = model.signatures[body.get("signature_name", "serving_default")]
        _compare(checks, f"REST {kind} JSON ({os.path.basename(path)})",
                 _call(function, _rest_inputs(body)), expected, class_names, atol)
    request = predict_pb2.PredictRequest()
    with open(config["grpc"], "rb") as f:
        request.ParseFromString(f.read())
    _compare(checks, f"gRPC PredictRequest ({os.path.basename(config['grpc'])})",
             _call(model.signatures[request.model_spec.signature_name], _proto_inputs(request)),
             expected, class_names, atol)
    leaked = sorted(m for m in UNAVAILABLE if sys.modules.get(m) is not None)
    checks.add("no keras / keras-hub / project module imported", not leaked, ", ".join(leaked))
    return _finish(checks, result_path)


def _finish(checks, result_path):
    with open(result_path, "w") as f:
        json.dump(checks.results, f, indent=1)
    return 0 if all(r["ok"] for r in checks.results) else 1


if __name__ == "__main__":
    isolate()
    sys.exit(main(sys.argv[1], sys.argv[2]))
