"""Shared helpers for kerasllm's tests (and for users testing their own presets and layers).

Tiny configurations of each backbone family and random inputs of the right shape, so every test
file builds models the same way; and the test harness that every layer, backbone, task model and
preprocessor runs through: `run_layer_test`, `run_backbone_test`, `run_task_test`,
`run_preprocessor_test` (docs/architecture.md, "Test harness", lists what each checks).
"""

from __future__ import annotations

import inspect
import json
import os
import random
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasllm import _compat

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=32,
    dropout=0.0,
)

# Variants that between them exercise every architectural switch.
TINY_VARIANTS = {
    "learned_postnorm": dict(position_embedding="learned", norm_first=False),
    "sinusoidal_scaled": dict(
        position_embedding="sinusoidal", embedding_scale=True, embedding_norm=False
    ),
    "rotary_gqa_swiglu": dict(
        position_embedding="rotary",
        norm_first=True,
        norm_type="rms",
        num_key_value_heads=2,
        activation="swiglu",
        use_bias=False,
        # Llama-family settings: a non-default rotary base, tied logits left unscaled.
        rotary_max_wavelength=500000.0,
        rotary_scaling={"rope_type": "linear", "factor": 2.0},
        scale_tied_logits=False,
    ),
    "relative_t5": dict(
        position_embedding="relative",
        norm_first=True,
        norm_type="rms",
        use_bias=False,
        attention_scale=1.0,
        relative_num_buckets=8,
        relative_max_distance=16,
        activation="relu",
    ),
}


def tiny_config(variant: str = "learned_postnorm", **overrides) -> dict:
    """A tiny backbone config of the given variant (see `TINY_VARIANTS`)."""
    return {**TINY, **TINY_VARIANTS[variant], **overrides}


def random_ids(batch: int, length: int, vocabulary_size: int = 97, seed: int = 0, low: int = 1):
    """Random token ids in [low, vocabulary_size), int32."""
    rng = np.random.default_rng(seed)
    return rng.integers(low, vocabulary_size, size=(batch, length)).astype("int32")


def right_padding_mask(lengths, length: int):
    """(B, length) int32 mask with the first `lengths[i]` positions of row i set."""
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")


def encoder_inputs(batch=2, length=8, lengths=None, seed=0, vocabulary_size=97):
    ids = random_ids(batch, length, vocabulary_size, seed)
    lengths = [length] * batch if lengths is None else lengths
    return {
        "token_ids": ids,
        "padding_mask": right_padding_mask(lengths, length),
        "segment_ids": np.zeros_like(ids),
    }


def decoder_inputs(batch=2, length=8, lengths=None, seed=0, vocabulary_size=97):
    inputs = encoder_inputs(batch, length, lengths, seed, vocabulary_size)
    inputs.pop("segment_ids")
    return inputs


def seq2seq_inputs(
    batch=2, source_length=9, target_length=7, source_lengths=None, target_lengths=None, seed=0
):
    source = decoder_inputs(batch, source_length, source_lengths, seed)
    target = decoder_inputs(batch, target_length, target_lengths, seed + 1)
    return {
        "encoder_token_ids": source["token_ids"],
        "encoder_padding_mask": source["padding_mask"],
        "decoder_token_ids": target["token_ids"],
        "decoder_padding_mask": target["padding_mask"],
    }


def interrupt_on_loop(make_train_loop, call: int = 2):
    """Wraps a `Trainer._make_train_loop` so that its `call`-th training loop raises
    `KeyboardInterrupt`, as Ctrl-C (or SIGTERM in the CLIs) would between two loops.

    Example: `monkeypatch.setattr(trainer, "_make_train_loop",
    interrupt_on_loop(trainer._make_train_loop))`.
    """

    def make():
        train_loop, calls = make_train_loop(), []

        def interrupting_loop(*args):
            calls.append(1)
            if len(calls) == call:
                raise KeyboardInterrupt
            return train_loop(*args)

        return interrupting_loop

    return make


# =============================================================================== test harness
# `run_layer_test`, `run_backbone_test`, `run_task_test` and `run_preprocessor_test` check what
# every layer, backbone, task model and preprocessor must do (serialization, symbolic calls,
# training with dropout, mixed precision, padding, `.keras` files), so that a new class gets the
# same checks as the old ones by one call. docs/architecture.md, "Test harness", lists them.

#: Rates the training checks use: small enough for a few steps to reduce the loss, large enough
#: for dropout to change every output.
_DROPOUT = 0.1
_ATTENTION_DROPOUT = 0.2
#: Relative error allowed between a mixed_bfloat16 model and the float32 model with the same
#: weights (bfloat16 keeps 8 mantissa bits; a tiny model accumulates a few percent at most).
_MIXED_RELATIVE_ERROR = 0.1


def _numpy(x) -> np.ndarray:
    """A backend tensor (or array) as numpy; bfloat16 as float32 (numpy has no bfloat16)."""
    x = keras.ops.convert_to_numpy(x)
    if x.dtype.kind not in "biu" and x.dtype != np.float64:
        x = x.astype("float32")
    return x


def _flat(outputs) -> dict:
    """Outputs (a tensor, a tuple or a dict of tensors) as a flat {name: numpy array} dict."""
    if isinstance(outputs, dict):
        return {str(k): _numpy(v) for k, v in outputs.items()}
    return {str(i): _numpy(v) for i, v in enumerate(keras.tree.flatten(outputs))}


def _assert_close(actual, expected, what: str, atol: float = 1e-5) -> None:
    actual, expected = _flat(actual), _flat(expected)
    assert actual.keys() == expected.keys(), f"{what}: outputs {actual.keys()} != {expected.keys()}"
    for key in expected:
        np.testing.assert_allclose(
            actual[key], expected[key], atol=atol, rtol=1e-5, err_msg=f"{what} (output {key})"
        )


def _dtypes(outputs) -> dict:
    if isinstance(outputs, dict):
        return {k: keras.backend.standardize_dtype(v.dtype) for k, v in outputs.items()}
    return {
        str(i): keras.backend.standardize_dtype(v.dtype)
        for i, v in enumerate(keras.tree.flatten(outputs))
    }


def _shapes(outputs) -> dict:
    if isinstance(outputs, dict):
        return {k: tuple(v.shape) for k, v in outputs.items()}
    return {str(i): tuple(v.shape) for i, v in enumerate(keras.tree.flatten(outputs))}


def _regression_loss(outputs, targets):
    """Mean squared distance of every float output to a fixed random target (float32)."""
    flat = keras.tree.flatten(outputs)
    total = 0.0
    for output, target in zip(flat, targets):
        total = total + ops.mean(ops.square(ops.cast(output, "float32") - target))
    return total


def _targets(outputs, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=tuple(o.shape)).astype("float32") for o in keras.tree.flatten(outputs)]


def _init_parameters(cls) -> list[str]:
    """The named `__init__` parameters of `cls` and of its kerasllm base classes (what its
    `get_config` must hold so that `from_config` rebuilds the same object)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("kerasllm") or "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if name == "self" or parameter.kind in (
                parameter.VAR_POSITIONAL,
                parameter.VAR_KEYWORD,
            ):
                continue
            if name not in names:
                names.append(name)
    return names


def _check_config(obj, init_kwargs: dict, keys=None) -> dict:
    """`get_config` is JSON-serializable, names every constructor argument (`keys`, default:
    the `__init__` parameters), holds the plain values it was given, and the class is registered
    so that `.keras` files find it."""
    cls = type(obj)
    config = obj.get_config()
    json.dumps(keras.saving.serialize_keras_object(obj))  # raises on a non-serializable value
    registered = keras.saving.get_registered_name(cls)
    assert keras.saving.get_registered_object(registered) is cls, (
        f"{cls.__name__} is not registered with keras.saving.register_keras_serializable"
    )
    keys = _init_parameters(cls) if keys is None else keys
    missing = [k for k in keys if k not in config]
    assert not missing, f"{cls.__name__}.get_config() lacks constructor arguments {missing}"
    for key, value in init_kwargs.items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            assert config[key] == value, (
                f"{cls.__name__}.get_config()[{key!r}] is {config[key]!r}; it was built with "
                f"{value!r}"
            )
    return config


def _check_mixed_dtypes(obj, expected_output_dtype, outputs, include_self=True) -> None:
    """Under `mixed_bfloat16`: variables float32, every nested layer that owns weights or is a
    dropout on the same policy (`obj` itself too when `include_self`), outputs in
    `expected_output_dtype` (a str or a {output: dtype} dict) and finite."""
    for variable in obj.weights:
        assert variable.dtype == "float32", f"{variable.path} is {variable.dtype} under mixed"
    for layer in _compat.nested_layers(obj, include_self=include_self):
        nested = {id(w) for sub in _compat.nested_layers(layer) for w in sub.weights}
        owns_weights = any(id(w) not in nested for w in layer.weights)
        if owns_weights or isinstance(layer, keras.layers.Dropout):
            assert layer.dtype_policy.name == "mixed_bfloat16", (
                f"{layer.path or layer.name} computes under {layer.dtype_policy.name}, not the "
                "mixed_bfloat16 policy of its parent (a sub-layer built without "
                "dtype=self.dtype_policy)"
            )
    dtypes = _dtypes(outputs)
    for key, dtype in dtypes.items():
        want = expected_output_dtype
        if isinstance(want, dict):
            want = want[key]
        assert dtype == want, f"output {key} is {dtype} under mixed_bfloat16; expected {want}"
    for key, value in _flat(outputs).items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), f"output {key} is not finite under mixed_bfloat16"


def _check_close_to_float32(mixed, reference, what: str) -> None:
    for key, ref in _flat(reference).items():
        if ref.dtype.kind != "f":
            continue
        got = _flat(mixed)[key]
        scale = float(np.abs(ref).max()) + 1e-6
        error = float(np.abs(got - ref).max()) / scale
        assert error < _MIXED_RELATIVE_ERROR, (
            f"{what}: output {key} under mixed_bfloat16 is off the float32 output by "
            f"{error:.3f} of its scale (same weights)"
        )


def _check_gradients(variables, gradients, allow_unused=()) -> None:
    """Every trainable variable gets a finite gradient (`allow_unused`: path substrings of
    variables the checked outputs do not depend on, e.g. an unused pooler)."""
    for variable, gradient in zip(variables, gradients):
        if any(name in variable.path for name in allow_unused):
            continue
        assert gradient is not None, f"no gradient reaches {variable.path}"
        assert np.isfinite(_numpy(gradient)).all(), f"the gradient of {variable.path} is not finite"


def _train_steps(obj, call, loss_fn, steps: int = 3, allow_unused=(), learning_rate=1e-2):
    """Runs `steps` Adam steps of `loss_fn(call(training=True))` on `obj`'s trainable
    variables, checking the gradients at each; returns the inference loss before and after and
    whether every variable changed."""
    variables = obj.trainable_variables
    before_values = [_numpy(v) for v in variables]
    loss_before = float(loss_fn(call(False)))
    optimizer = keras.optimizers.Adam(learning_rate)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(call(True))
        assert np.isfinite(float(loss)), "the training loss is not finite"
        gradients = tape.gradient(loss, variables)
        _check_gradients(variables, gradients, allow_unused)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        optimizer.apply_gradients(pairs)
    loss_after = float(loss_fn(call(False)))
    unchanged = [
        v.path
        for v, old in zip(variables, before_values)
        if not any(name in v.path for name in allow_unused) and np.array_equal(_numpy(v), old)
    ]
    assert not unchanged, f"training steps left these variables unchanged: {unchanged}"
    return loss_before, loss_after


def _check_dropout(make, call_with, dropout_rates: dict, reference_outputs) -> None:
    """For each rate in `dropout_rates` alone (the others 0): inference outputs are
    deterministic and equal those of the model without dropout (same weights), and training
    outputs differ from them (the rate has an effect)."""
    reference, reference_out = reference_outputs
    for name, rate in dropout_rates.items():
        only = {key: (rate if key == name else 0.0) for key in dropout_rates}
        obj = make(only)
        call_with(obj, False)  # builds it
        obj.set_weights(reference.get_weights())
        inference = call_with(obj, False)
        _assert_close(inference, reference_out, f"{name}={rate} at inference (training=False)")
        _assert_close(call_with(obj, False), inference, f"{name}={rate} at inference, twice")
        training = _flat(call_with(obj, True))
        changed = any(
            not np.allclose(training[k], v, atol=1e-6)
            for k, v in _flat(inference).items()
            if v.dtype.kind == "f"
        )
        assert changed, f"{name}={rate} has no effect with training=True"


def _keras_round_trip(model, call, what: str, expected) -> object:
    """Saves `model` to a `.keras` file, loads it, checks that `call(loaded)` equals
    `expected`; returns the loaded model."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"{what}: loaded a {type(loaded).__name__}"
    _assert_close(call(loaded), expected, f"{what}: outputs after a .keras round trip")
    return loaded


def _perturb(value: np.ndarray, real: np.ndarray, rng, vocabulary_size: int | None = None):
    """`value` with every position where `real` is False replaced by other content: random ids
    (int arrays, in [1, vocabulary_size)) or random floats. `real` covers the leading axes."""
    value = np.array(value)
    pad = ~np.asarray(real, bool)
    shape = pad.shape + value.shape[pad.ndim :]
    if value.dtype.kind in "iu":
        other = rng.integers(1, vocabulary_size or 2, size=shape).astype(value.dtype)
    else:
        other = rng.normal(size=shape).astype(value.dtype) * 3.0
    mask = pad.reshape(pad.shape + (1,) * (value.ndim - pad.ndim))
    return np.where(mask, other, value)


def _check_real_outputs(base, changed, real_outputs: dict, what: str) -> None:
    """Outputs at real positions unchanged: `real_outputs` maps an output name to a (B, T) mask
    of its real positions, or None when the whole output must stay the same."""
    base, changed = _flat(base), _flat(changed)
    for key, real in real_outputs.items():
        a, b = changed[key], base[key]
        if real is not None:
            real = np.asarray(real, bool)
            a, b = a[real], b[real]
        np.testing.assert_allclose(
            a, b, atol=1e-5, err_msg=f"{what}: output {key} at real positions depends on padding"
        )


def run_layer_test(
    cls,
    init_kwargs: dict,
    input_data=None,
    expected_output_shape=None,
    *,
    call_kwargs: dict | None = None,
    expected_output_dtype="float32",
    expected_mixed_output_dtype="bfloat16",
    dropout_kwargs: dict | None = None,
    padding: dict | None = None,
    allow_unused_weights=(),
    run_training_check: bool = True,
    run_symbolic_check: bool = True,
    seed: int = 0,
) -> None:
    """Checks a layer class the way every kerasllm layer must behave.

    - Serialization: `get_config` names every constructor argument with the values given,
      is JSON-serializable and the class registered; `from_config` rebuilds the same config,
      and with the same weights the same outputs.
    - A call on `input_data` (positional) and `call_kwargs` (arrays are inputs, other values
      plain arguments) gives `expected_output_shape` (a tuple, or a tuple of tuples for several
      outputs) in `expected_output_dtype`.
    - Symbolic call (`run_symbolic_check`, needs `input_data`): the layer called on
      `keras.Input`s builds a functional model that gives the eager outputs, and that model
      survives a `.keras` round trip with identical outputs.
    - Training (`run_training_check`): with every rate of `dropout_kwargs` set (e.g.
      `{"dropout": 0.1}`) and `training=True`, a few Adam steps on a regression loss give every
      trainable weight (except `allow_unused_weights` path substrings) a finite gradient, change
      every weight and lower the inference loss; each rate alone changes training outputs and
      leaves inference outputs equal to the dropout-free layer's.
    - Mixed precision: under `mixed_bfloat16` variables stay float32, nested layers share the
      policy, outputs are `expected_mixed_output_dtype`, finite, and close to float32 outputs
      with the same weights.
    - Padding (`padding`, optional): `{"argument": None (the positional input) or a keyword,
      "real": (B, S) bool of its real positions, "output_real": (B, T) bool or None}`:
      changing the padded positions of that argument leaves the outputs at real positions
      (all outputs when None) unchanged.
    """
    call_kwargs = dict(call_kwargs or {})
    dropout_kwargs = dict(dropout_kwargs or {})
    keras.utils.set_random_seed(seed)

    def call_with(layer, training=None, data=input_data, kwargs=None):
        kwargs = call_kwargs if kwargs is None else kwargs
        args = () if data is None else (data,)
        extra = {} if training is None else {"training": training}
        return layer(*args, **kwargs, **extra)

    def takes_training(layer):
        return "training" in inspect.signature(layer.call).parameters

    layer = cls(**init_kwargs)
    outputs = call_with(layer)
    shapes = _shapes(outputs)
    expected = expected_output_shape
    if expected is not None:
        if isinstance(expected, tuple) and expected and isinstance(expected[0], tuple):
            expected = {str(i): s for i, s in enumerate(expected)}
        elif not isinstance(expected, dict):
            expected = {"0": tuple(expected)}
        assert shapes == expected, f"{cls.__name__} output shapes {shapes}; expected {expected}"
    for key, dtype in _dtypes(outputs).items():
        want = expected_output_dtype
        if isinstance(want, dict):
            want = want[key]
        assert dtype == want, f"{cls.__name__} output {key} is {dtype}; expected {want}"

    # Serialization: the same config, and the same outputs with the same weights.
    config = _check_config(layer, init_kwargs)
    clone = cls.from_config(config)
    assert clone.get_config() == config, f"{cls.__name__}: from_config changes the config"
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert revived.get_config() == config
    for copy in (clone, revived):
        call_with(copy)
        copy.set_weights(layer.get_weights())
        _assert_close(call_with(copy), outputs, f"{cls.__name__} rebuilt from its config")

    # Symbolic call and `.keras` file.
    if run_symbolic_check and input_data is not None:
        arrays = {"inputs": np.asarray(input_data)}
        arrays.update(
            {k: np.asarray(v) for k, v in call_kwargs.items() if isinstance(v, np.ndarray)}
        )
        symbols = {
            name: keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)
            for name, value in arrays.items()
        }
        plain = {k: v for k, v in call_kwargs.items() if k not in arrays}
        symbolic_kwargs = {**plain, **{k: symbols[k] for k in arrays if k != "inputs"}}
        symbolic = layer(symbols["inputs"], **symbolic_kwargs)
        for (key, shape), (_, eager_shape) in zip(_shapes(symbolic).items(), shapes.items()):
            assert shape[1:] == eager_shape[1:], (
                f"{cls.__name__}: symbolic output {key} has shape {shape}, eager {eager_shape}"
            )
        model = keras.Model(symbols, symbolic)
        _assert_close(model(arrays), outputs, f"{cls.__name__} in a functional model")
        _keras_round_trip(model, lambda m: m(arrays), f"{cls.__name__} functional model", outputs)

    # Padding: real positions never see the padded content.
    if padding is not None:
        rng = np.random.default_rng(seed + 1)
        argument = padding.get("argument")
        real = padding["real"]
        if argument is None:
            changed = call_with(layer, data=_perturb(input_data, real, rng))
        else:
            kwargs = dict(call_kwargs)
            kwargs[argument] = _perturb(call_kwargs[argument], real, rng)
            changed = call_with(layer, kwargs=kwargs)
        real_outputs = {key: padding.get("output_real") for key in _flat(outputs)}
        _check_real_outputs(outputs, changed, real_outputs, f"{cls.__name__} padding")

    # Training with dropout.
    if run_training_check:
        trainable = cls(**{**init_kwargs, **dropout_kwargs})
        call_with(trainable)
        if dropout_kwargs:
            assert takes_training(trainable), f"{cls.__name__} has dropout but no `training`"
            reference = cls(**{**init_kwargs, **{k: 0.0 for k in dropout_kwargs}})
            reference_out = call_with(reference, False)
            _check_dropout(
                lambda rates: cls(**{**init_kwargs, **rates}),
                lambda obj, training: call_with(obj, training),
                dropout_kwargs,
                (reference, reference_out),
            )
        if trainable.trainable_weights:
            targets = _targets(outputs, seed)
            training_arg = takes_training(trainable)
            before, after = _train_steps(
                trainable,
                lambda training: call_with(trainable, training if training_arg else None),
                lambda out: _regression_loss(out, targets),
                allow_unused=allow_unused_weights,
            )
            assert after < before, (
                f"{cls.__name__}: the inference loss went {before:.5f} -> {after:.5f} in three "
                "training steps"
            )

    # Mixed precision.
    mixed = cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
    call_with(mixed)
    mixed.set_weights(layer.get_weights())
    mixed_outputs = call_with(mixed)
    _check_mixed_dtypes(mixed, expected_mixed_output_dtype, mixed_outputs)
    _check_close_to_float32(mixed_outputs, outputs, cls.__name__)


def _padding_pairs(inputs: dict) -> dict:
    """{token key: padding-mask key} of a model's input dict (`token_ids`/`padding_mask`,
    `encoder_token_ids`/`encoder_padding_mask`, ...)."""
    return {
        key.replace("padding_mask", "token_ids"): key
        for key in inputs
        if key.endswith("padding_mask") and key.replace("padding_mask", "token_ids") in inputs
    }


def _pad_inputs(inputs: dict, vocabulary_size: int, seed: int) -> dict:
    """`inputs` with the tokens at every padded position replaced by other random tokens."""
    rng = np.random.default_rng(seed)
    changed = dict(inputs)
    for tokens, mask in _padding_pairs(inputs).items():
        changed[tokens] = _perturb(inputs[tokens], inputs[mask], rng, vocabulary_size)
    return changed


def _symbolic_inputs(inputs: dict) -> dict:
    return {
        key: keras.Input(
            shape=np.asarray(value).shape[1:], dtype=str(np.asarray(value).dtype), name=key
        )
        for key, value in inputs.items()
    }


def _check_model_symbolic_call(model, inputs: dict, outputs, what: str) -> None:
    """The model called on `keras.Input`s gives outputs of the eager outputs' shapes (batch
    unknown), and a functional model built on them gives the eager outputs."""
    symbols = _symbolic_inputs(inputs)
    symbolic = model(symbols)
    eager_shapes = _shapes(outputs)
    for key, shape in _shapes(symbolic).items():
        assert shape[0] is None and shape[1:] == eager_shapes[key][1:], (
            f"{what}: symbolic output {key} has shape {shape}; eager {eager_shapes[key]}"
        )
    functional = keras.Model(symbols, symbolic)
    _assert_close(functional(inputs), outputs, f"{what} wrapped in a functional model")


def run_backbone_test(
    cls,
    init_kwargs: dict,
    input_data: dict,
    expected_output_shape: dict,
    *,
    real_outputs: dict | None = None,
    seed: int = 0,
) -> None:
    """Checks a backbone class the way every kerasllm backbone must behave.

    - Serialization: `get_config` holds every hyperparameter (`config_keys()`) with the values
      given; `from_config` rebuilds the same config and, with the same weights, the same outputs.
    - `expected_output_shape`: {output name: shape} of the call on `input_data`.
    - Symbolic call: the backbone on `keras.Input`s, wrapped in a functional model, gives the
      eager outputs.
    - Training with `dropout` and `attention_dropout` > 0 (each alone changes training outputs
      and leaves inference outputs equal to the dropout-free model's): a few Adam steps give
      every weight a finite gradient, change every weight and lower the inference loss.
    - Mixed precision: `mixed_bfloat16` outputs are bfloat16, finite and close to float32 with
      the same weights; variables float32; every nested layer on the policy.
    - Padding: new tokens at padded positions (every `*padding_mask` of `input_data`) leave the
      outputs at real positions unchanged. `real_outputs` maps each output to the input mask
      key of its positions (None: the whole output); by default `*sequence_output` follows the
      `*padding_mask` of the same prefix and other outputs must not change at all.
    - A `.keras` round trip gives identical outputs.
    """
    keras.utils.set_random_seed(seed)
    model = cls(**init_kwargs)
    outputs = model(input_data)
    name = cls.__name__
    assert _shapes(outputs) == {k: tuple(v) for k, v in expected_output_shape.items()}, (
        f"{name} output shapes {_shapes(outputs)}; expected {expected_output_shape}"
    )
    assert all(d == "float32" for d in _dtypes(outputs).values()), _dtypes(outputs)

    config = _check_config(model, init_kwargs, keys=list(cls.config_keys()))
    clone = cls.from_config(config)
    assert clone.get_config() == config, f"{name}: from_config changes the config"
    clone.set_weights(model.get_weights())
    _assert_close(clone(input_data), outputs, f"{name} rebuilt from its config")

    _check_model_symbolic_call(model, input_data, outputs, name)

    # Padding.
    if real_outputs is None:
        real_outputs = {}
        for key in outputs:
            mask_key = key.replace("sequence_output", "padding_mask")
            real_outputs[key] = mask_key if key.endswith("sequence_output") else None
    changed = model(_pad_inputs(input_data, model.vocabulary_size, seed + 1))
    masks = {k: (None if m is None else input_data[m]) for k, m in real_outputs.items()}
    _check_real_outputs(outputs, changed, masks, f"{name} padding")

    # Training with dropout and attention dropout.
    rates = {"dropout": _DROPOUT, "attention_dropout": _ATTENTION_DROPOUT}
    _check_dropout(
        lambda r: cls(**{**init_kwargs, **r}),
        lambda obj, training: obj(input_data, training=training),
        rates,
        (model, outputs),
    )
    trainable = cls(**{**init_kwargs, **rates})
    targets = _targets(outputs, seed)
    before, after = _train_steps(
        trainable,
        lambda training: trainable(input_data, training=training),
        lambda out: _regression_loss(out, targets),
    )
    assert after < before, f"{name}: the inference loss went {before:.5f} -> {after:.5f}"

    # Mixed precision.
    mixed = cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
    mixed.set_weights(model.get_weights())
    mixed_outputs = mixed(input_data)
    _check_mixed_dtypes(mixed, "bfloat16", mixed_outputs)
    _check_close_to_float32(mixed_outputs, outputs, name)

    _keras_round_trip(model, lambda m: m(input_data), name, outputs)


def run_task_test(
    cls,
    init_kwargs: dict,
    input_data: dict,
    expected_output_shape: tuple,
    *,
    labels,
    real_output_mask=None,
    allow_unused_weights=(),
    seed: int = 0,
) -> None:
    """Checks a task model class the way every kerasllm task must behave.

    `init_kwargs` holds the `backbone` (built without dropout) and the task's own arguments.

    - Serialization: `get_config` names every constructor argument; `from_config` rebuilds the
      same config (backbone included) and, with the same weights, the same outputs.
    - Outputs: float32 logits of `expected_output_shape`, under float32 and under
      `mixed_bfloat16` (finite, close to float32 with the same weights). A task with several
      outputs returns a dict; `expected_output_shape`, `labels` and `real_output_mask` are then
      dicts by output name, and `default_loss()` a dict of losses (summed).
    - Symbolic call: the task on `keras.Input`s, wrapped in a functional model, gives the eager
      outputs.
    - Training: with backbone `dropout` and `attention_dropout` > 0 (and the head's `dropout`
      when the task has one), each rate alone changes training outputs and leaves inference
      outputs equal; a few Adam steps on the task's `default_loss()` against `labels` give
      every weight (except `allow_unused_weights` path substrings) a finite gradient, under
      float32 and mixed precision, and lower the inference loss.
    - Padding: new tokens at padded positions leave the outputs unchanged where
      `real_output_mask` (a (B, T) mask, None for all outputs) is set.
    - A `.keras` round trip gives identical outputs.
    """
    keras.utils.set_random_seed(seed)
    name = cls.__name__
    backbone = init_kwargs["backbone"]
    backbone_config = backbone.get_config()
    task_kwargs = {k: v for k, v in init_kwargs.items() if k != "backbone"}

    def make(backbone_rates=None, task_rates=None, dtype=None):
        config = {**backbone_config, **(backbone_rates or {})}
        if dtype is not None:
            config["dtype"] = dtype
        return cls(type(backbone).from_config(config), **{**task_kwargs, **(task_rates or {})})

    model = cls(**init_kwargs)
    outputs = model(input_data)
    expected_shapes = (
        {k: tuple(v) for k, v in expected_output_shape.items()}
        if isinstance(expected_output_shape, dict)
        else {"0": tuple(expected_output_shape)}
    )
    assert _shapes(outputs) == expected_shapes, (
        f"{name} outputs {_shapes(outputs)}; expected {expected_shapes}"
    )
    assert set(_dtypes(outputs).values()) == {"float32"}, f"{name} outputs {_dtypes(outputs)}"

    config = _check_config(model, task_kwargs)
    clone = cls.from_config(config)
    assert clone.get_config() == config, f"{name}: from_config changes the config"
    clone.set_weights(model.get_weights())
    _assert_close(clone(input_data), outputs, f"{name} rebuilt from its config")

    _check_model_symbolic_call(model, input_data, outputs, name)

    changed = model(_pad_inputs(input_data, backbone.vocabulary_size, seed + 1))
    real_outputs = (
        real_output_mask
        if isinstance(real_output_mask, dict)
        else dict.fromkeys(_flat(outputs), real_output_mask)
    )
    _check_real_outputs(outputs, changed, real_outputs, f"{name} padding")

    # Training with dropout everywhere.
    backbone_rates = {"dropout": _DROPOUT, "attention_dropout": _ATTENTION_DROPOUT}
    head_rates = {"dropout": _DROPOUT} if "dropout" in _init_parameters(cls) else {}
    rates = {**backbone_rates, **{f"head_{k}": v for k, v in head_rates.items()}}

    def make_with(r):
        return make({k: r[k] for k in backbone_rates}, {k: r[f"head_{k}"] for k in head_rates})

    _check_dropout(
        make_with,
        lambda obj, training: obj(input_data, training=training),
        rates,
        (model, outputs),
    )
    loss = model.default_loss()
    if isinstance(loss, dict):  # one loss per output, summed
        losses = loss

        def loss(y, out):
            return sum(losses[k](y[k], out[k]) for k in losses)

    for dtype in (None, "mixed_bfloat16"):
        trainable = make(backbone_rates, head_rates, dtype=dtype)
        trainable.set_weights(model.get_weights())
        if dtype is not None:
            mixed_outputs = trainable(input_data)
            _check_mixed_dtypes(trainable.backbone, "bfloat16", trainable.backbone(input_data))
            # The task's own policy does not matter (its outputs are float32 logits by
            # design); its backbone's and head's layers must compute in bfloat16.
            _check_mixed_dtypes(trainable, "float32", mixed_outputs, include_self=False)
            _check_close_to_float32(mixed_outputs, outputs, f"{name} (mixed_bfloat16)")
        before, after = _train_steps(
            trainable,
            lambda training, m=trainable: m(input_data, training=training),
            lambda out: loss(labels, out),
            allow_unused=allow_unused_weights,
        )
        assert after < before, (
            f"{name} ({dtype or 'float32'}): the inference loss went {before:.5f} -> {after:.5f}"
        )

    _keras_round_trip(model, lambda m: m(input_data), name, outputs)


def run_preprocessor_test(
    preprocessor,
    input_data,
    *,
    labels=None,
    model=None,
    call_kwargs: dict | None = None,
    derived_arguments=(),
) -> None:
    """Checks a preprocessor instance the way every kerasllm preprocessor must behave.

    - Serialization: `get_config` names every constructor argument (except tokenizers, which
      travel as assets, and `derived_arguments`, defaults of other arguments that the config
      holds instead); `from_config` with the same tokenizer gives the same config and the
      same outputs on `input_data` (and `labels`; `call_kwargs` such as a masking `seed` go
      to every call).
    - Graphs: mapped over a batched `tf.data.Dataset` and inside a `tf.function`, it gives the
      eager outputs.
    - With a task `model`: attached as `model.preprocessor`, it survives a `.keras` round trip
      (same config, same tokenizer vocabulary, same outputs), and the reloaded model gives the
      same outputs on the preprocessed inputs.
    """
    cls = type(preprocessor)
    name = cls.__name__
    call_kwargs = dict(call_kwargs or {})
    args = (input_data,) if labels is None else (input_data, labels)
    outputs = preprocessor(*args, **call_kwargs)

    config = preprocessor.get_config()
    keys = [
        k
        for k in _init_parameters(cls)
        if not k.endswith("tokenizer") and k not in derived_arguments
    ]
    missing = [k for k in keys if k not in config]
    assert not missing, f"{name}.get_config() lacks constructor arguments {missing}"
    assert keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls
    clone = cls.from_config(config)
    assert clone.get_config() == config, f"{name}: from_config changes the config"
    # Tokenizers are assets, not config: give the clone the same ones.
    for attribute in ("tokenizer", "target_tokenizer"):
        if attribute in _init_parameters(cls):
            setattr(clone, attribute, getattr(preprocessor, attribute))
    _assert_close(clone(*args, **call_kwargs), outputs, f"{name} rebuilt from its config", atol=0)

    def as_tensor(value):
        if isinstance(value, tuple):
            return tuple(as_tensor(v) for v in value)
        if isinstance(value, (tf.Tensor, tf.RaggedTensor)):
            return value
        return tf.convert_to_tensor(np.asarray(value))

    dataset = tf.data.Dataset.from_tensor_slices(tuple(as_tensor(a) for a in args))
    batch = dataset.batch(len(_rows(input_data)))
    mapped = next(iter(batch.map(lambda *a: preprocessor(*a, **call_kwargs))))
    _assert_close(mapped, outputs, f"{name} mapped over tf.data", atol=0)
    graph = tf.function(lambda *a: preprocessor(*a, **call_kwargs))(*(as_tensor(a) for a in args))
    _assert_close(graph, outputs, f"{name} in a tf.function", atol=0)

    if model is not None:
        model.preprocessor = preprocessor
        x = outputs[0] if isinstance(outputs, tuple) else outputs
        expected = model(x)
        loaded = _keras_round_trip(
            model, lambda m: m(x), f"{name} in a {type(model).__name__}", expected
        )
        assert loaded.preprocessor.get_config() == config
        assert (
            loaded.preprocessor.tokenizer.get_vocabulary()
            == preprocessor.tokenizer.get_vocabulary()
        ), f"{name}: the tokenizer changed in the .keras round trip"
        reloaded = loaded.preprocessor(*args, **call_kwargs)
        _assert_close(reloaded, outputs, f"{name} reloaded", atol=0)


def _rows(input_data) -> list:
    """The examples of `input_data` (a batch, or a tuple of batches for sentence pairs)."""
    return list(input_data[0] if isinstance(input_data, tuple) else input_data)


# The words `synthetic_text_samples` draws from, one string per kind of text.
_SAMPLE_TEXTS = (
    "the council said on Tuesday that 42 new homes would be built near the river before "
    "winter, while critics argued it’s “too little, too late” — and asked why nobody had "
    "checked the costs of $3.5 million",
    "l’élève a déjà vu où le garçon naïf a mis son cœur à Noël ; ça doit être la forêt près "
    "de l’hôtel, là-bas en août, « dit-il » qu’il est très âgé",
    "@mia_22 #Monday lol :) 😂 🇫🇷 RT http://t.co/x1Yz omg!!! can't wait 4 the show @Sam #NLP "
    "🎉 ... gonna b late",
    "it's a dull, clumsy film -- but the cast doesn't care ; funny , warm and far too long "
    "... a gripping ride",
    "日本語 の 文章 Привет мир مرحبا بالعالم Ελληνικά नमस्ते 한국어",
)


def synthetic_text_samples(count: int = 120, seed: int = 0) -> dict[str, list[str]]:
    """Small made-up text samples of the kinds a tokenizer meets (no data package needed):
    English prose with typographic quotes and dashes, French with accents, ligatures and
    guillemets, tweets (mentions, hashtags, emoji, URLs), long news-like paragraphs, lower-case
    reviews, and a few other scripts. `count` texts of each kind, deterministic in `seed`.
    """
    rng = random.Random(seed)
    english, french, tweets, reviews, scripts = (text.split() for text in _SAMPLE_TEXTS)

    def sentence(words: list[str], low: int, high: int) -> str:
        text = " ".join(rng.choices(words, k=rng.randint(low, high)))
        return text[:1].upper() + text[1:] + rng.choice([".", "!", "?", ""])

    return {
        "english": [sentence(english, 4, 30) for _ in range(count)],
        "french": [sentence(french, 4, 30) for _ in range(count)],
        "tweets": [sentence(tweets + english[:10], 3, 20) for _ in range(count)],
        "news": [" ".join(sentence(english, 8, 30) for _ in range(12)) for _ in range(15)],
        "reviews": [sentence(reviews, 3, 25).lower() for _ in range(count)],
        "scripts": [sentence(scripts + english[:5], 2, 12) for _ in range(count // 4)],
    }


# Neutral, bad and good words of `synthetic_reviews`.
_REVIEW_WORDS = (
    "the film plot cast story ending music with and but its a very far too",
    "dull clumsy boring flat tedious",
    "gripping funny warm moving sharp",
)


def synthetic_reviews(count: int = 200, seed: int = 0) -> tuple[list[str], list[int]]:
    """`count` made-up review snippets and their labels (1 good, 0 bad): each snippet mixes
    neutral words with more words of its label's polarity than of the other, so a classifier
    can learn them. No data package needed."""
    rng = random.Random(seed)
    neutral, bad, good = (words.split() for words in _REVIEW_WORDS)
    polar = (bad, good)
    texts, labels = [], []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.choices(neutral, k=rng.randint(3, 12))
        words += rng.choices(polar[label], k=rng.randint(2, 4))
        words += rng.choices(polar[1 - label], k=rng.randint(0, 1))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def assert_round_trip(tokenizer, samples: dict[str, list[str]], what: str = "") -> None:
    """Asserts `detokenize(tokenize(text)) == normalize(text)` on every text of `samples`
    (named lists of strings), naming the sample and the first mismatch."""

    def strings(tensor) -> list[str]:
        return [s.decode("utf-8") for s in tensor.numpy()]

    for name, sample in samples.items():
        got = strings(tokenizer.detokenize(tokenizer.tokenize(sample)))
        want = strings(tokenizer.normalize(sample))
        bad = [(g, w) for g, w in zip(got, want) if g != w]
        assert not bad, f"{what or tokenizer.kind} on {name}: {len(bad)} mismatches, first {bad[0]}"


def tiny_translation_bundle(path) -> str:
    """Saves a tiny untrained seq2seq bundle (one SentencePiece tokenizer for both roles,
    source_length 12, target_length 6) to `path` and returns where it went: fast to build and
    to decode (nonsense), for tests of code that takes any translation bundle."""
    from kerasllm import bundle, tokenizers, zoo

    texts = ["the king said to the people", "le roi dit au peuple"] * 30
    tok = tokenizers.train_sentencepiece(texts, vocabulary_size=300)
    model = zoo.get(
        "transformer_tiny", task="seq2seq_lm", vocabulary_size=tok.vocabulary_size, weights=None
    )
    roles = {"source": tok, "target": tok}
    return bundle.Bundle(model, roles, {"source_length": 12, "target_length": 6}).save(path)
