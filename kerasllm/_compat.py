"""Every private name of another package that kerasllm uses, in one place.

Each wrapper below says why no public API does the job and which versions it was checked on;
`PRIVATE_APIS` lists them with that explanation, and `tests/test_compat.py` checks every one
against the installed packages, so an upgrade that removes or changes one fails that test with
the explanation instead of breaking training, tokenization or export silently.

Checked on: TensorFlow 2.21, Keras 3.15, keras-hub 0.32. The rest of kerasllm imports no
`*.src.*` or `tensorflow.python.*` module and reads no `_private` attribute of another package's
object: add any new one here, with its entry in `PRIVATE_APIS` and a test.

This module sits at the bottom of the layering (see docs/architecture.md): it imports only
third-party packages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.ops import resource_variable_ops as _tf_resource_variable_ops
from tensorflow.python.trackable import data_structures as _tf_data_structures

CHECKED_VERSIONS = "TensorFlow 2.21, Keras 3.15, keras-hub 0.32"

#: The `PRIVATE_APIS` entry of `accept_raw_python_inputs`.
RAW_INPUT_FLAGS = "keras.Layer._convert_input_args / _allow_non_tensor_positional_args"

#: name -> why kerasllm needs it (the message tests/test_compat.py fails with).
PRIVATE_APIS: dict[str, str] = {
    "tensorflow.python.framework.ops._gradient_registry._registry": (
        "Trainer.close removes the gradient functions that tracing a tf.custom_gradient "
        "(every ReplicaContext.all_reduce) adds to this global dict; each holds the whole traced "
        "training loop (~20 MiB per trainer) for the life of the process, and TensorFlow offers "
        "no public way to unregister them."
    ),
    "tensorflow.python.ops.resource_variable_ops.ResourceVariable": (
        "PipelineStats' counters must stay plain CPU variables even when a pipeline is built "
        "inside a tf.distribute scope; tf.Variable goes through the strategy's variable creator "
        "(a MirroredVariable, even under tf.init_scope), the class itself does not."
    ),
    "tensorflow.python.trackable.data_structures.NoDependency": (
        "tokenizers, serving modules and task models keep plain Python data (vocabularies, "
        "metadata dicts, the attached tokenizer) as attributes of tf.Module/keras objects; "
        "without it tf.Module wraps lists and dicts in tracking proxies that SavedModel export "
        "and checkpoints then try to save. tf.Module._no_dependency is this class; TensorFlow "
        "has no public spelling of it."
    ),
    "keras.Layer._flatten_layers": (
        "weight-decay exclusions and LoRA walk every nested layer of a model; Keras 3 has no "
        "public recursive accessor (Model.layers is one level deep, Layer has none)."
    ),
    "keras TensorFlow optimizer ._all_reduce_sum_gradients": (
        "the Trainer all-reduces gradients once itself (before clipping, loss-scale checks and "
        "accumulation); Keras' TF optimizers sum them over replicas again inside apply through "
        "this method, and there is no public switch to turn that off."
    ),
    "keras_hub.src.tokenizers.byte_pair_tokenizer.bytes_to_unicode": (
        "the byte-BPE trainer must build merges in exactly the byte-to-symbol alphabet that "
        "keras_hub's public BytePairTokenizer applies at tokenize time; keras_hub exports only "
        "the class, not this function."
    ),
    "keras_hub.src.tokenizers.byte_pair_tokenizer.split_strings_for_bpe": (
        "the byte-BPE trainer must count words split exactly as keras_hub's BytePairTokenizer "
        "splits them (GPT-2 pre-tokenization in re2); keras_hub exports only the class."
    ),
    "keras_hub.src.tokenizers.word_piece_tokenizer.pretokenize": (
        "WordPiece training and normalize() must split words exactly as keras_hub's "
        "WordPieceTokenizer does before FastWordpiece; keras_hub exports only the class."
    ),
    "keras_hub.tokenizers.WordPieceTokenizer._fast_word_piece": (
        "detokenize needs the tensorflow-text FastWordpieceTokenizer the keras_hub layer built "
        "(a graph op on ragged ids); the public WordPieceTokenizer.detokenize switches to a "
        "pure-Python path outside tf.function and reshapes its input, and kerasllm's "
        "tokenizers must run the same ops eagerly, in tf.data and in an exported SavedModel."
    ),
    RAW_INPUT_FLAGS: (
        "A preprocessor layer is called with Python strings and lists (raw text); Keras' "
        "Layer.__call__ converts positional arguments to backend tensors and refuses non-tensor "
        "ones unless these two flags are set (keras_hub's preprocessing layers set the same "
        "flags); Keras has no public switch for it."
    ),
}


def _why(name: str) -> str:
    return f"{name} (checked on {CHECKED_VERSIONS}): {PRIVATE_APIS[name]}"


# --- TensorFlow ---------------------------------------------------------------------------------


def gradient_registry() -> dict[str, Any]:
    """TensorFlow's global registry of gradient functions, by op type name (a mutable dict).

    Needed by `Trainer._call_traced`/`Trainer.close`: see `PRIVATE_APIS`. Insertion-ordered (new
    `CustomGradient-*` names come last).
    """
    return _tf_ops._gradient_registry._registry


def local_variable(value: Any, dtype: tf.DType, name: str) -> tf.Variable:
    """A non-trainable resource variable created outside every `tf.distribute` variable creator.

    Needed by `data.pipelines.PipelineStats`: see `PRIVATE_APIS`. Call it under
    `tf.init_scope()` and a device scope to place it.
    """
    variable_class = _tf_resource_variable_ops.ResourceVariable
    return variable_class(value, dtype=dtype, trainable=False, name=name)


def untracked(value: Any) -> Any:
    """`value` marked so that assigning it to a `tf.Module` (or Keras layer) attribute stores it
    as is, without object tracking (what `tf.Module._no_dependency` does). Tuples of immutable
    values need no marking: tracking leaves them alone. See `PRIVATE_APIS`.
    """
    return _tf_data_structures.NoDependency(value)


# --- Keras ---------------------------------------------------------------------------------------


def accept_raw_python_inputs(layer: keras.Layer) -> None:
    """Lets `layer` be called with raw Python values (strings, lists of strings) as they come,
    without Keras converting them to tensors first. Needed by preprocessors: see
    `PRIVATE_APIS`."""
    for flag in ("_convert_input_args", "_allow_non_tensor_positional_args"):
        if not hasattr(layer, flag):
            raise AttributeError(f"keras.Layer has no {flag} any more: {_why(RAW_INPUT_FLAGS)}")
    layer._convert_input_args = False
    layer._allow_non_tensor_positional_args = True


def nested_layers(layer: keras.Layer, include_self: bool = False) -> Iterator[keras.Layer]:
    """Every layer nested in `layer` at any depth (each once), plus `layer` if `include_self`.

    Needed by weight-decay exclusions and LoRA: see `PRIVATE_APIS`.
    """
    return layer._flatten_layers(include_self=include_self, recursive=True)


def skip_replica_all_reduce(optimizer: keras.optimizers.Optimizer) -> None:
    """Makes one Keras optimizer (not its inner one) apply the gradients it is given as they are,
    without summing them over replicas first.

    Needed by `training.optimization.skip_gradient_all_reduce`: see `PRIVATE_APIS`. The hook is
    `_all_reduce_sum_gradients(grads_and_vars) -> grads_and_vars` in
    keras/src/backend/tensorflow/optimizer.py; `list` is the identity on that list.
    """
    if not hasattr(optimizer, "_all_reduce_sum_gradients"):
        raise RuntimeError(_why("keras TensorFlow optimizer ._all_reduce_sum_gradients"))
    optimizer._all_reduce_sum_gradients = list


# --- keras_hub -----------------------------------------------------------------------------------
# keras_hub exports no function for these helpers, only the tokenizer classes that use them.
# Imported when first called: the models import this module and must not load keras_hub.


def _keras_hub_bpe():
    from keras_hub.src.tokenizers import byte_pair_tokenizer

    return byte_pair_tokenizer


def _keras_hub_wordpiece():
    from keras_hub.src.tokenizers import word_piece_tokenizer

    return word_piece_tokenizer


def bytes_to_unicode() -> tuple[list[bytes], list[str]]:
    """GPT-2's byte alphabet as keras_hub uses it: `(bytes, symbols)`, index-aligned.

    See `PRIVATE_APIS` for why it must be keras_hub's own.
    """
    return _keras_hub_bpe().bytes_to_unicode()


def split_strings_for_bpe(inputs: tf.Tensor, unsplittable_tokens: list[str] | None = None):
    """keras_hub's GPT-2 pre-tokenization: a ragged tensor of the words BPE merges apply to.

    See `PRIVATE_APIS` for why it must be keras_hub's own.
    """
    return _keras_hub_bpe().split_strings_for_bpe(inputs, unsplittable_tokens)


def wordpiece_pretokenize(text: tf.Tensor, **options: Any) -> tf.RaggedTensor:
    """keras_hub's WordPiece word split (`pretokenize(text, lowercase, strip_accents, split,
    split_on_cjk, special_tokens_pattern)`). See `PRIVATE_APIS` for why it must be keras_hub's.
    """
    return _keras_hub_wordpiece().pretokenize(text, **options)


def wordpiece_detokenizer(layer: keras.Layer) -> Any:
    """The tensorflow-text `FastWordpieceTokenizer` inside a keras_hub `WordPieceTokenizer`
    (its `detokenize(ids)` is a graph op). See `PRIVATE_APIS`.
    """
    op = getattr(layer, "_fast_word_piece", None)
    if op is None:
        raise RuntimeError(_why("keras_hub.tokenizers.WordPieceTokenizer._fast_word_piece"))
    return op
