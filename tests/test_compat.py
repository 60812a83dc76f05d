"""Every private API of another package that kerasllm uses still exists and does what
kerasllm relies on. A failure names the private API, the versions it was checked on and why
kerasllm needs it (`kerasllm._compat.PRIVATE_APIS`): fix `kerasllm/_compat.py` for the new
version, or replace the wrapper with a public API if one now exists."""

from __future__ import annotations

import ast
import pathlib

import keras
import pytest
import tensorflow as tf

from kerasllm import _compat

PACKAGE = pathlib.Path(_compat.__file__).parent


def _explain(name: str) -> str:
    return f"Private API changed: {_compat._why(name)}"


def test_every_private_api_has_an_explanation():
    assert len(_compat.PRIVATE_APIS) >= 8
    assert all(len(why) > 60 for why in _compat.PRIVATE_APIS.values())


def test_gradient_registry_records_custom_gradients():
    name = "tensorflow.python.framework.ops._gradient_registry._registry"
    try:
        registry = _compat.gradient_registry()
    except AttributeError as error:
        pytest.fail(f"{_explain(name)} ({error})")
    assert isinstance(registry, dict), _explain(name)

    @tf.custom_gradient
    def identity(x):
        return tf.identity(x), lambda dy: dy

    size = len(registry)
    tf.function(identity).get_concrete_function(tf.TensorSpec([], tf.float32))
    added = list(registry)[size:]
    assert any(n.startswith("CustomGradient") for n in added), _explain(name)
    for n in added:
        registry.pop(n)


def test_local_variable_escapes_a_distribution_scope():
    name = "tensorflow.python.ops.resource_variable_ops.ResourceVariable"
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope(), tf.init_scope(), tf.device("/CPU:0"):
        variable = _compat.local_variable(0, tf.int64, "count")
    assert type(variable).__name__ == "ResourceVariable", _explain(name)
    assert not variable.trainable
    variable.assign_add(3)
    assert int(variable.numpy()) == 3


def test_untracked_values_stay_plain_on_a_module():
    name = "tensorflow.python.trackable.data_structures.NoDependency"
    module = tf.Module()
    module.items = _compat.untracked(["a", "b"])
    module.table = _compat.untracked({"a": 1})
    assert type(module.items) is list and type(module.table) is dict, _explain(name)
    # Without the marking tf.Module wraps them: the reason the wrapper exists.
    module.wrapped = ["a"]
    assert type(module.wrapped) is not list


def test_nested_layers_reaches_every_depth():
    name = "keras.Layer._flatten_layers"
    inner = keras.Sequential([keras.layers.Dense(2), keras.layers.LayerNormalization()])
    outer = keras.Sequential([inner, keras.layers.Dense(1)])
    try:
        found = list(_compat.nested_layers(outer, include_self=True))
    except AttributeError as error:
        pytest.fail(f"{_explain(name)} ({error})")
    assert found[0] is outer, _explain(name)
    assert {type(layer).__name__ for layer in found} >= {"Dense", "LayerNormalization"}
    assert len(list(_compat.nested_layers(outer))) == len(found) - 1


def test_optimizer_all_reduce_hook_is_called_by_apply():
    name = "keras TensorFlow optimizer ._all_reduce_sum_gradients"
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    calls = []

    def hook(grads_and_vars):
        calls.append(len(grads_and_vars))
        return list(grads_and_vars)

    assert hasattr(optimizer, "_all_reduce_sum_gradients"), _explain(name)
    optimizer._all_reduce_sum_gradients = hook
    variable = keras.Variable([1.0])
    optimizer.apply([tf.constant([0.5])], [variable])
    assert calls == [1], _explain(name)
    _compat.skip_replica_all_reduce(optimizer)
    optimizer.apply([tf.constant([0.5])], [variable])
    assert float(variable.numpy()[0]) == pytest.approx(0.0)


def test_keras_hub_bpe_helpers():
    name = "keras_hub.src.tokenizers.byte_pair_tokenizer.bytes_to_unicode"
    try:
        byte_list, symbols = _compat.bytes_to_unicode()
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{_explain(name)} ({error})")
    assert len(byte_list) == len(symbols) == 256, _explain(name)
    assert symbols[byte_list.index(b" ")] == "Ġ", _explain(name)
    name = "keras_hub.src.tokenizers.byte_pair_tokenizer.split_strings_for_bpe"
    try:
        words = _compat.split_strings_for_bpe(tf.constant(["Hello world!"]))
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{_explain(name)} ({error})")
    assert words.to_list() == [[b"Hello", b" world", b"!"]], _explain(name)


def test_keras_hub_wordpiece_helpers():
    import keras_hub

    name = "keras_hub.src.tokenizers.word_piece_tokenizer.pretokenize"
    try:
        words = _compat.wordpiece_pretokenize(
            tf.constant(["a,b 字"]), lowercase=False, strip_accents=False, split=True
        )
    except (ImportError, AttributeError, TypeError) as error:
        pytest.fail(f"{_explain(name)} ({error})")
    assert words.to_list() == [[b"a", b",", b"b", b"\xe5\xad\x97"]], _explain(name)
    name = "keras_hub.tokenizers.WordPieceTokenizer._fast_word_piece"
    layer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=["[UNK]", "ab", "##c"])
    detokenizer = _compat.wordpiece_detokenizer(layer)
    text = detokenizer.detokenize(tf.ragged.constant([[1, 2]]))
    assert text.numpy().tolist() == [b"abc"], _explain(name)


def test_no_private_api_outside_compat():
    """Only `_compat.py` imports `*.src.*` / `tensorflow.python` modules or calls the private
    names it wraps; everything else goes through it."""
    wrapped = {
        "_flatten_layers",
        "_all_reduce_sum_gradients",
        "_gradient_registry",
        "_no_dependency",
        "_fast_word_piece",
        "_convert_input_args",
        "_allow_non_tensor_positional_args",
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_compat.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if ".src." in f"{module}." or module.startswith("tensorflow.python"):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {module}")
            if isinstance(node, ast.Attribute) and node.attr in wrapped:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert not offenders, f"private APIs outside kerasllm/_compat.py: {offenders}"


def test_a_layer_can_take_raw_python_strings():
    class Upper(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            _compat.accept_raw_python_inputs(self)

        def call(self, texts):
            return [t.upper() for t in texts]

    assert Upper()(["a", "b"]) == ["A", "B"], _compat.PRIVATE_APIS[_compat.RAW_INPUT_FLAGS]
