"""Shared inputs and settings of the export tests."""

from kerasllm.testing import tiny_config

CORPUS = [
    "the cat sat on the mat",
    "le chat est assis sur le tapis",
    "a dog ran in the park",
    "un chien courait dans le parc",
    "what a good film",
    "what a bad film",
] * 10

#: Inputs every text signature must survive; each must give a well-formed result.
BAD_INPUTS = [
    "",
    "   \t\n ",
    "word " * 2000,  # 10,000 characters
    "😀🎉👍🏽 emoji only 🇫🇷",
    "שלום עולם مرحبا بالعالم",  # right-to-left scripts
    "control\x00chars\x07\x1b[31m\x7f here",
]
GOOD_INPUTS = ["the cat sat on the mat", "a dog ran", "what a good film", "le chat"]

#: Tag names of the tiny tagger export.
TAGS = ["O", "B-animal", "B-place"]

SEQ2SEQ_MAX_LENGTH = 8
CAUSAL_MAX_LENGTH = 6
BEAMS = 3


def tiny(**overrides):
    return tiny_config("learned_postnorm", num_layers=1, max_sequence_length=24, **overrides)


SERVE_SCRIPT = r"""
import json, sys
for blocked in ("kerasllm", "keras_hub"):
    sys.modules[blocked] = None  # any import of them fails: the export must not need them
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

exports, good, bad = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
causal_max_length = int(sys.argv[4])
extra = {
    "max_length": tf.constant(5), "max_new_tokens": tf.constant(4),
    "temperature": tf.constant(0.0), "top_k": tf.constant(0), "top_p": tf.constant(1.0),
    "seed": tf.constant(0),
}

def plain(value):
    value = value.numpy()
    if value.dtype == object:  # decoding fails on invalid UTF-8
        return np.vectorize(lambda v: v.decode("utf-8"), otypes=[object])(value).tolist()
    return value.tolist()

results = {}
for family, path in exports.items():
    model = tf.saved_model.load(path)
    out = results[family] = {}
    for name, fn in model.signatures.items():
        specs = fn.structured_input_signature[1]
        if not {"text", "prompt", "text_a"} & set(specs):
            continue
        key = "text" if "text" in specs else "prompt"
        def call(texts):
            inputs = {k: v for k, v in extra.items() if k in specs}
            if "text_a" in specs:  # sentence pairs: each text with the batch reversed
                inputs["text_a"], inputs["text_b"] = tf.constant(texts), tf.constant(texts[::-1])
            else:
                inputs[key] = tf.constant(texts)
            return {k: plain(v) for k, v in fn(**inputs).items()}
        # The batch of 64 starts with the bad inputs; the batch of 1 is the longest one.
        out[name] = {
            "good": call(good),
            "one": call(bad[2:3]),
            "sixty_four": call((bad + good) * 6 + bad[:4]),
        }
    if family == "seq2seq":
        ids = model.signatures["translate_token_ids"]
        out["token_ids"] = {k: plain(v) for k, v in ids(
            token_ids=tf.constant([[5, 6, 7, 8], [9, 10, 0, 0]]),
            padding_mask=tf.constant([[1, 1, 1, 1], [1, 1, 0, 0]])).items()}
    if family == "causal":
        ids = model.signatures["generate_token_ids"]
        out["token_ids"] = {k: plain(v) for k, v in ids(
            token_ids=tf.constant([[5, 6, 7, 8], [9, 10, 0, 0]]),
            padding_mask=tf.constant([[1, 1, 1, 1], [1, 1, 0, 0]]),
            max_new_tokens=tf.constant(4)).items()}
    if family in ("classifier", "tagger"):
        ids = model.signatures["classify_token_ids"]
        out["token_ids"] = {k: plain(v) for k, v in ids(
            token_ids=tf.constant([[2, 7, 8, 3], [2, 9, 3, 0]]),
            padding_mask=tf.constant([[1, 1, 1, 1], [1, 1, 1, 0]])).items()}

def sample(name, spec, batch):
    # A valid input for `spec` with `batch` rows (token ids and masks of ones).
    if spec.dtype == tf.string:
        return tf.constant(["the cat sat"] * batch, tf.string, shape=[batch])
    if spec.shape.rank == 2:
        return tf.ones([batch, 3], spec.dtype)
    return tf.cast(extra[name], spec.dtype)

def error_of(fn, inputs):
    try:
        fn(**inputs)
    except tf.errors.InvalidArgumentError as error:
        return [line for line in str(error).splitlines() if "must" in line][:1] or [str(error)]
    return None

results["checks"], results["empty_row"] = {}, {}
# Every signature of every export: an empty batch, and each input with a wrong rank (a
# batched input with one more dimension: the (1, 2) string batch that used to be flattened;
# a scalar given as a vector of 2).
for family, path in exports.items():
    model = tf.saved_model.load(path)
    checks = results["checks"][family] = {}
    for name, fn in model.signatures.items():
        specs = fn.structured_input_signature[1]
        empty = fn(**{k: sample(k, s, 0) for k, s in specs.items()})
        rank_errors = {}
        for key, spec in specs.items():
            inputs = {k: sample(k, s, 2) for k, s in specs.items()}
            value = inputs[key]
            inputs[key] = tf.stack([value, value]) if spec.shape.rank == 0 else value[None]
            rank_errors[key] = error_of(fn, inputs)
        checks[name] = {
            "empty": {k: [v.shape.as_list(), v.dtype.name] for k, v in empty.items()},
            "dtypes": {k: v.dtype.name for k, v in fn.structured_outputs.items()},
            "rank_errors": rank_errors,
        }
    # Rows without any token, next to the same request as text ("" and no token at all).
    if family == "seq2seq":
        ids = model.signatures["translate_token_ids"](
            token_ids=tf.constant([[0, 0], [5, 6]]), padding_mask=tf.constant([[0, 0], [1, 1]]))
        results["empty_row"][family] = {
            "token_ids": {k: plain(v) for k, v in ids.items()},
            "text": plain(
                model.signatures["serving_default"](text=tf.constant(["", "x"]))["translation"]
            ),
        }
    if family == "causal":
        ids = model.signatures["generate_token_ids"](
            token_ids=tf.zeros([2, 0], tf.int32), padding_mask=tf.zeros([2, 0], tf.int32),
            max_new_tokens=tf.constant(causal_max_length))
        results["empty_row"][family] = {
            "token_ids": {k: plain(v) for k, v in ids.items()},
            "text": plain(
                model.signatures["serving_default"](prompt=tf.constant(["", ""]))["completion"]
            ),
        }
    if family == "tagger":
        ids = model.signatures["classify_token_ids"](
            token_ids=tf.constant([[0, 0], [5, 6]]), padding_mask=tf.constant([[0, 0], [1, 1]]))
        results["empty_row"][family] = {
            "token_ids": {k: plain(v) for k, v in ids.items()},
            "text": {
                k: plain(v)
                for k, v in model.signatures["serving_default"](text=tf.constant(["", "x"])).items()
            },
        }

results["modules"] = sorted(
    m for m, module in sys.modules.items() if m.startswith("kerasllm") and module is not None
)
print("RESULT" + json.dumps(results))
"""
