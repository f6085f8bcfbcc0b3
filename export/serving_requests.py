"""Requests in TF Serving's wire formats, built with tensorflow-serving-api.

* `predict_request`: a gRPC `PredictRequest` (model spec, signature, inputs).
* `write_warmup_records`: `assets.extra/tf_serving_warmup_requests`, a
  TFRecord file of `PredictionLog` records that the server replays at load
  time, so the first user request does not pay for graph warm-up.
* `rest_row_request` / `rest_columnar_request`: the JSON bodies of
  `POST /v1/models/NAME:predict` in the row (`instances`) and columnar
  (`inputs`) formats.
"""

import json

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2


def _tensor_proto(value):
    value = np.asarray(value)
    if value.dtype.kind in "UO":
        value = np.asarray([str(v).encode("utf-8") for v in value.reshape(-1)],
                           dtype=object).reshape(value.shape)
        return tf.make_tensor_proto(value, dtype=tf.string)
    return tf.make_tensor_proto(value)


def predict_request(model_name, signature_name, inputs):
    """A `PredictRequest` for `inputs` (`{name: array}`).

    Example:
    >>> r = predict_request("sst2", "serving_default", {"text": ["a fine film"]})
    >>> r.model_spec.signature_name, list(r.inputs), r.inputs["text"].dtype
    ('serving_default', ['text'], 7)
    """
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(_tensor_proto(value))
    return request


def write_warmup_records(path, requests):
    """Writes `PredictRequest`s as `PredictionLog` records (TFRecord)."""
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def read_warmup_records(path):
    """The `PredictionLog`s of a warmup file."""
    logs = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def _jsonable(value):
    value = np.asarray(value)
    if value.dtype.kind in "UO":
        return [str(v) for v in value.reshape(-1)] if value.ndim else str(value)
    return value.tolist()


def rest_row_request(signature_name, inputs):
    """`{"signature_name", "instances": [{name: value}, ...]}` (one dict per row).

    Example:
    >>> rest_row_request("serving_default", {"text": ["good", "bad"]})
    '{"signature_name": "serving_default", "instances": [{"text": "good"}, {"text": "bad"}]}'
    """
    columns = {name: _jsonable(value) for name, value in inputs.items()}
    size = len(next(iter(columns.values())))
    rows = [{name: column[i] for name, column in columns.items()} for i in range(size)]
    return json.dumps({"signature_name": signature_name, "instances": rows})


def rest_columnar_request(signature_name, inputs):
    """`{"signature_name", "inputs": {name: [values]}}`.

    Example:
    >>> rest_columnar_request("serving_default", {"text": ["good", "bad"]})
    '{"signature_name": "serving_default", "inputs": {"text": ["good", "bad"]}}'
    """
    columns = {name: _jsonable(value) for name, value in inputs.items()}
    return json.dumps({"signature_name": signature_name, "inputs": columns})
