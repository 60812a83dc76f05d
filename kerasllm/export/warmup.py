"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these requests when it loads a model version, before it reports the version
as available, so the first client request does not pay for graph initialization.

The file is a TFRecord of `tensorflow.serving.PredictionLog` protos. Those messages belong to
`tensorflow-serving-api`; rather than make that package a dependency of every export, the four
small messages involved are written here in protobuf wire format (field numbers from
`tensorflow_serving/apis/{prediction_log,predict,model}.proto`), around `TensorProto`s built by
TensorFlow itself. The tests parse the file back with `tensorflow-serving-api`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

WARMUP_FILENAME = "tf_serving_warmup_requests"
WARMUP_DIRECTORY = "assets.extra"

# Field numbers of the serving protos.
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_PREDICT_REQUEST_MODEL_SPEC = 1
_PREDICT_REQUEST_INPUTS = 2
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY, _MAP_VALUE = 1, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes and sub-messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_request(
    model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray]
) -> bytes:
    """A serialized `PredictionLog` holding one `PredictRequest`.

    Args:
        model_name: the name TF Serving serves the model under.
        signature_name: the signature the request calls.
        inputs: `{input name: array}`; strings as numpy object/bytes arrays.

    Example:
    >>> record = predict_request("m", "serving_default", {"text": np.array([b"hi"])})
    >>> record[:1]  # field 6 (predict_log), wire type 2
    b'2'
    """
    spec = _field(_MODEL_SPEC_NAME, model_name.encode()) + _field(
        _MODEL_SPEC_SIGNATURE_NAME, signature_name.encode()
    )
    request = _field(_PREDICT_REQUEST_MODEL_SPEC, spec)
    for name in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[name]).SerializeToString()
        entry = _field(_MAP_KEY, name.encode()) + _field(_MAP_VALUE, tensor)
        request += _field(_PREDICT_REQUEST_INPUTS, entry)
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def write_warmup_requests(
    export_dir: str | os.PathLike,
    model_name: str,
    requests: Sequence[tuple[str, Mapping[str, np.ndarray]]],
) -> str:
    """Writes `(signature name, inputs)` requests as the export's warm-up file.

    Returns:
        The file's path.
    """
    directory = os.path.join(os.fspath(export_dir), WARMUP_DIRECTORY)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILENAME)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            writer.write(predict_request(model_name, signature_name, inputs))
    return path
