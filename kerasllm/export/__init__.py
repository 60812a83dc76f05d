"""SavedModel export for TF Serving: text in, text out, tokenizer and decoding in the graph.

`export(bundle_or_preset, "BASE/NAME")` writes `BASE/NAME/VERSION/` (the next free version)
with signatures that take raw strings (and, for clients that tokenize themselves, token ids),
and a warm-up file. The export loads with only `tensorflow` and `tensorflow_text` imported.
See docs/serving.md.

Example:
>>> import tempfile
>>> import tensorflow as tf
>>> from kerasllm import bundle, tokenizers, zoo
>>> from kerasllm.export import export
>>> tok = tokenizers.train_wordpiece(["good film", "bad film"] * 20, vocabulary_size=40)
>>> clf = zoo.get("bert_tiny", task="classifier", num_classes=2,
...               vocabulary_size=tok.vocabulary_size, num_layers=1, weights=None)
>>> path = export(bundle.Bundle(clf, {"text": tok}), tempfile.mkdtemp() + "/sentiment")
>>> serve = tf.saved_model.load(str(path)).signatures["serving_default"]
>>> serve(text=tf.constant(["good film", ""]))["probabilities"].shape
TensorShape([2, 2])
"""

from kerasllm.export.exporter import (
    TENSORFLOW_TEXT_OPS,
    existing_versions,
    export,
    graph_ops,
    non_core_ops,
    python_ops,
    write,
)
from kerasllm.export.sampling import RuntimeSampler
from kerasllm.export.serving import (
    CausalLMServing,
    EncoderServing,
    Seq2SeqServing,
    ServingModule,
    TokenClassifierServing,
    serving_module,
)
from kerasllm.export.warmup import predict_request, write_warmup_requests

__all__ = [
    "CausalLMServing",
    "EncoderServing",
    "RuntimeSampler",
    "TENSORFLOW_TEXT_OPS",
    "Seq2SeqServing",
    "ServingModule",
    "TokenClassifierServing",
    "existing_versions",
    "export",
    "graph_ops",
    "non_core_ops",
    "predict_request",
    "python_ops",
    "serving_module",
    "write",
    "write_warmup_requests",
]
