"""`Task`: a backbone plus a head (and optionally a preprocessor), serializable as a whole."""

from __future__ import annotations

import contextlib
import gc
import inspect
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasllm import _compat

#: Batch size `fit` / `evaluate` / `predict` use on raw text when none is given (as Keras).
DEFAULT_BATCH_SIZE = 32


class Task(keras.Model):
    """Base class of the task models: holds `self.backbone` (and `self.preprocessor`) and
    round-trips them through config.

    Task outputs are always float32 logits, whatever the dtype policy (mixed precision keeps the
    loss and the softmax in float32).

    With a `preprocessor` (a `kerasllm.preprocessors.Preprocessor`), `fit`, `evaluate` and
    `predict` take raw text: lists or numpy arrays of strings (with labels in `y`), or a
    batched `tf.data.Dataset` of `(text, label)` / `(text, label, sample_weight)` (or of texts
    alone for `predict`); the preprocessor is mapped over the batches. Sentence pairs are a
    tuple of two batches: `x=(texts_a, texts_b)`, or dataset elements `((a, b), label)`. With
    `preprocessor=None` the model takes token-id dicts, exactly as a plain `keras.Model`.

    A preprocessor that defines `predict_inputs(x) -> (inputs, context)` and
    `predict_outputs(outputs, context)` shapes what `predict` returns on text (a token
    classifier's per-word logits); `y` may then hold one label list per text.

    `compile()` without arguments picks the task's defaults (`default_loss`,
    `default_optimizer`, `default_metrics`; pass any of them explicitly to override it).
    """

    #: Learning rate of the default optimizer (fine-tuning a pretrained backbone).
    default_learning_rate: float = 1e-4

    def __init__(self, backbone, preprocessor=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocessor = preprocessor

    @property
    def preprocessor(self):
        """The `kerasllm.preprocessors.Preprocessor` that turns text into this model's inputs
        (None: the model takes token-id dicts)."""
        return self._preprocessor

    @preprocessor.setter
    def preprocessor(self, preprocessor) -> None:
        from kerasllm.preprocessors import Preprocessor

        if preprocessor is not None and not isinstance(preprocessor, Preprocessor):
            raise TypeError(
                "`preprocessor` must be a kerasllm.preprocessors.Preprocessor or None; got "
                f"{type(preprocessor).__name__}."
            )
        # Task models build their weights in the constructor (no `build()`), so their state is
        # not locked and a preprocessor (which has no weights) may be attached later, as
        # `zoo.get` does.
        self._preprocessor = preprocessor

    def get_config(self):
        preprocessor = self.preprocessor
        config = {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": (
                None if preprocessor is None else keras.saving.serialize_keras_object(preprocessor)
            ),
        }
        quantization = self.quantization_spec()
        if quantization:
            # Sub-layers are rebuilt from the task's and backbone's hyperparameters, which
            # say nothing of `quantize`: without this a quantized model would come back with
            # float layers that cannot hold its int8/int4 weights.
            config["quantization"] = quantization
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        quantization = config.pop("quantization", None)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        model = cls(**config)
        if quantization:
            model.apply_quantization_spec(quantization)
        return model

    # ------------------------------------------------------------------ compile defaults
    def default_loss(self) -> keras.losses.Loss:
        """The loss `compile()` uses: cross-entropy on the float32 logits every task returns."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_optimizer(self) -> keras.optimizers.Optimizer:
        """The optimizer `compile()` uses: AdamW at `default_learning_rate`, weight decay 0.01
        except on biases and layer-norm scales/offsets (as BERT fine-tuning does)."""
        optimizer = keras.optimizers.AdamW(
            learning_rate=self.default_learning_rate, weight_decay=0.01
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def default_metrics(self) -> list:
        """The metrics `compile()` uses (as `weighted_metrics`, so padding / unused positions
        that a preprocessor gives weight 0 do not count)."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile`, where "auto" (the default) picks the task's optimizer, loss
        and metrics (`default_optimizer`, `default_loss`, `default_metrics`)."""
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = self.default_optimizer()
        if isinstance(loss, str) and loss == "auto":
            loss = self.default_loss()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = None
            if kwargs.get("weighted_metrics") is None:
                kwargs["weighted_metrics"] = self.default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Compiles a model loaded from a `.keras` file as it was saved (Keras skips this for
        models that override `compile`, so the optimizer state would not come back)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------ quantization
    def quantization_spec(self) -> list[dict]:
        """How this model's layers are quantized (empty when none is): one entry per mode and
        Keras quantization config, `{"mode", "config" (serialized), "layers" (layer paths)}`.
        `get_config` records it and `from_config` re-applies it (`apply_quantization_spec`),
        so a quantized model saves and loads like any other.

        Example:
        >>> from kerasllm import zoo
        >>> model = zoo.get("bert_tiny", task="classifier", num_classes=2, num_layers=1)
        >>> model.quantization_spec()
        []
        """
        groups: dict[str, dict] = {}
        for layer in _compat.nested_layers(self):
            mode = layer.quantization_mode
            if mode is None:
                continue
            config = getattr(layer, "quantization_config", None)
            serialized = None if config is None else keras.saving.serialize_keras_object(config)
            key = repr((mode, serialized))
            group = groups.setdefault(key, {"mode": mode, "config": serialized, "layers": []})
            group["layers"].append(layer.path)
        return list(groups.values())

    def apply_quantization_spec(self, spec: list[dict]) -> None:
        """Quantizes the layers a `quantization_spec()` names, as they were (their weights are
        then whatever is loaded next: `load_weights` of the quantized model's file).

        Raises:
            ValueError: `spec` is malformed, or names a layer this model does not have (it was
                recorded on another architecture).
        """
        if not isinstance(spec, list) or not all(
            isinstance(g, dict) and isinstance(g.get("mode"), str) and g.get("layers") for g in spec
        ):
            raise ValueError(
                "`quantization` must be a list of {'mode', 'config', 'layers'} entries (what "
                f"`quantization_spec()` returns); got {spec!r:.200}."
            )
        by_path = {layer.path: layer for layer in _compat.nested_layers(self)}
        for group in spec:
            missing = set(group["layers"]) - set(by_path)
            if missing:
                raise ValueError(
                    f"The quantization spec names layers this {type(self).__name__} does not "
                    f"have: {sorted(missing)[:5]}."
                )
        for group in spec:
            config = group.get("config")
            if config is not None:
                config = keras.saving.deserialize_keras_object(config)
            with warnings.catch_warnings(), _one_garbage_collection():
                # Keras hands each float kernel to numpy with `copy=False`, which TensorFlow
                # variables refuse: numpy copies (as quantizing needs) and warns per layer.
                warnings.filterwarnings("ignore", message="__array__ implementation doesn't")
                for path in group["layers"]:
                    # Layer by layer rather than `self.quantize(...)`: Keras locks the state
                    # of the model `quantize` is called on, and a preprocessor (a layer) could
                    # then no longer be attached to it, as `zoo.get` does after building.
                    by_path[path].quantize(group["mode"], config=config)
        # As `keras.Model.quantize` does: compiled Keras functions hold the float variables.
        self.train_function = self.test_function = self.predict_function = None

    # ------------------------------------------------------------------ text in
    def fit(self, *args, **kwargs):
        """`keras.Model.fit` (same arguments); with a preprocessor, `x` may be raw text (see
        the class doc)."""
        if self.preprocessor is None:
            return super().fit(*args, **kwargs)
        arguments = _bind(keras.Model.fit, self, args, kwargs)
        x, y, sample_weight = (arguments.pop(k) for k in ("x", "y", "sample_weight"))
        batch_size = arguments.pop("batch_size")
        validation_split = arguments.pop("validation_split")
        validation_data = arguments.pop("validation_data")
        validation_batch_size = arguments.pop("validation_batch_size") or batch_size
        if validation_split:
            if isinstance(x, _tf().data.Dataset):
                raise ValueError(
                    "`validation_split` needs arrays or lists, not a tf.data.Dataset; pass "
                    "`validation_data` instead."
                )
            (x, y, sample_weight), validation_data = _split(
                x, y, sample_weight, validation_split, validation_data
            )
        data = self._text_dataset(x, y, sample_weight, batch_size, arguments.pop("shuffle"), "fit")
        if validation_data is not None:
            if isinstance(validation_data, _tf().data.Dataset):
                held = (validation_data, None, None)
            else:
                held = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
            validation_data = self._text_dataset(
                *held, validation_batch_size, False, "fit (validation_data)"
            )
        # Shuffled above (raw text) or by the caller (a dataset): Keras cannot shuffle batches.
        return super().fit(data, validation_data=validation_data, shuffle=False, **arguments)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate` (same arguments); with a preprocessor, `x` may be raw text."""
        # `fit` evaluates its validation data (already preprocessed) through this method.
        if self.preprocessor is None or kwargs.get("_use_cached_eval_dataset"):
            return super().evaluate(*args, **kwargs)
        arguments = _bind(keras.Model.evaluate, self, args, kwargs)
        x, y, sample_weight = (arguments.pop(k) for k in ("x", "y", "sample_weight"))
        data = self._text_dataset(
            x, y, sample_weight, arguments.pop("batch_size"), False, "evaluate"
        )
        return super().evaluate(data, **arguments)

    def predict(self, *args, **kwargs):
        """`keras.Model.predict` (same arguments); with a preprocessor, `x` may be raw text (an
        empty list gives an empty array)."""
        if self.preprocessor is None:
            return super().predict(*args, **kwargs)
        arguments = _bind(keras.Model.predict, self, args, kwargs)
        x = arguments.pop("x")
        tf = _tf()
        if not isinstance(x, tf.data.Dataset) and _num_examples(x) == 0:
            # Keras refuses a dataset without batches, and attention kernels refuse a batch
            # of zero rows: predict one blank text for the output's shape, keep no row of it.
            blank = tuple([""] for _ in x) if isinstance(x, tuple) else [""]
            outputs = self.predict_step(self._prediction_element(_texts(blank)))
            return keras.tree.map_structure(lambda t: ops.convert_to_numpy(t)[:0], outputs)
        data = self._text_dataset(x, None, None, arguments.pop("batch_size"), False, "predict")
        return super().predict(data, **arguments)

    def predict_step(self, data):
        """Keras' `predict_step`; on text, the preprocessor's `predict_outputs` hook (if it has
        one) turns the model's outputs into the per-text results (see the class doc)."""
        x, context, _ = keras.utils.unpack_x_y_sample_weight(data)
        finish = getattr(self.preprocessor, "predict_outputs", None)
        if finish is None or context is None:
            return super().predict_step(data)
        return finish(self(x, training=False), context)

    def _prediction_element(self, x):
        """What `predict` feeds `predict_step` for a batch of text: the preprocessed inputs, or
        `(inputs, context)` from the preprocessor's `predict_inputs` hook."""
        prepare = getattr(self.preprocessor, "predict_inputs", None)
        return self.preprocessor(x) if prepare is None else prepare(x)

    def _text_dataset(self, x, y, sample_weight, batch_size, shuffle, method: str):
        """Raw text (and labels) as a `tf.data.Dataset` of preprocessed batches."""
        tf = _tf()
        if isinstance(x, tf.data.Dataset):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    f"`{method}`: with a tf.data.Dataset `x`, put the labels (and sample "
                    "weights) in the dataset's elements, not in `y` / `sample_weight`."
                )
            if batch_size is not None:
                raise ValueError(
                    f"`{method}`: `batch_size` is not used with a tf.data.Dataset; batch the "
                    "dataset instead."
                )
            data = x
        else:
            count = _num_examples(x)
            labels = None if y is None else _as_array(y, "y", count)
            weights = (
                None if sample_weight is None else _as_array(sample_weight, "sample_weight", count)
            )
            data = tf.data.Dataset.from_tensor_slices(
                keras.utils.pack_x_y_sample_weight(_texts(x), labels, weights)
            )
            if shuffle:
                data = data.shuffle(max(count, 1), reshuffle_each_iteration=True)
            data = data.batch(batch_size or DEFAULT_BATCH_SIZE)
        preprocessor = self.preprocessor

        def preprocess(*element):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
            if method == "predict":
                # Labels in a dataset given to `predict` are ignored, as Keras does.
                return self._prediction_element(x)
            return preprocessor(x, y, sample_weight)

        return data.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _float32(logits):
        return ops.cast(logits, "float32")

    def _require_backbone(self, *classes):
        if not isinstance(self.backbone, classes):
            names = " or ".join(c.__name__ for c in classes)
            raise ValueError(
                f"{type(self).__name__} needs a {names} backbone; "
                f"got {type(self.backbone).__name__}."
            )


@contextlib.contextmanager
def _one_garbage_collection():
    """Runs the block with `gc.collect` a no-op, then collects once.

    Keras' `Layer.__delattr__` runs a full `gc.collect()` for every variable it drops, and
    quantizing drops each float kernel: with TensorFlow loaded each collection took 0.4 s,
    12 s to quantize (or load) a two-layer transformer and about 25 s for translate_en_fr.
    One collection at the end frees the same memory.
    """
    collect = gc.collect
    gc.collect = lambda *args, **kwargs: 0
    try:
        yield
    finally:
        gc.collect = collect
        gc.collect()


def _tf():
    import tensorflow as tf

    return tf


def _bind(method, model, args: tuple, kwargs: dict) -> dict:
    """The arguments of a call to Keras' `method` by name (defaults filled in), so that the
    overrides keep Keras' exact signatures (positional `epochs`, `verbose`, ...)."""
    bound = inspect.signature(method).bind(model, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["self"]
    arguments.update(arguments.pop("kwargs", {}))
    return arguments


def _texts(x: Any):
    """Text inputs as tf.string tensors: one batch, a tuple of batches (sentence pairs), or
    a batch of word lists (a list of lists of str, for token classification) as a ragged
    tensor (B, None)."""
    from kerasllm.preprocessors.preprocessor import as_strings
    from kerasllm.preprocessors.words import as_word_lists, is_word_lists

    if isinstance(x, tuple):
        return tuple(as_strings(part, f"x[{i}]") for i, part in enumerate(x))
    if is_word_lists(x):
        return as_word_lists(x, "x")
    return as_strings(x, "x")


def _num_examples(x: Any) -> int:
    """How many texts `x` holds (all parts of a sentence-pair tuple must agree)."""
    parts = x if isinstance(x, tuple) else (x,)
    if not parts:
        raise ValueError("`x` must hold texts; got an empty tuple.")
    if any(isinstance(p, (str, bytes)) for p in parts):
        raise TypeError(
            "`x` must be a batch of texts (a list or array of str), not one string: wrap it "
            "in a list."
        )
    counts = {len(p) for p in parts}
    if len(counts) != 1:
        raise ValueError(
            f"The parts of a sentence-pair `x` hold different numbers of texts: {sorted(counts)}."
        )
    return counts.pop()


def _as_array(values: Any, what: str, count: int):
    if isinstance(values, list) and _ragged_lists(values):
        # One list per text, of varying lengths (per-word labels): a ragged tensor, which
        # `tf.data` slices by text.
        if len(values) != count:
            raise ValueError(f"`{what}` has {len(values)} entries but `x` has {count} texts.")
        return _tf().ragged.constant([np.asarray(v).tolist() for v in values])
    array = np.asarray(values)
    if len(array) != count:
        raise ValueError(f"`{what}` has {len(array)} entries but `x` has {count} texts.")
    return array


def _ragged_lists(values: list) -> bool:
    """Whether `values` is a list of lists (or arrays) that do not all have the same length."""
    rows = [v for v in values if isinstance(v, (list, tuple, np.ndarray))]
    return len(rows) == len(values) > 0 and len({len(v) for v in rows}) > 1


def _split(x, y, sample_weight, validation_split: float, validation_data):
    """The last `validation_split` of the examples as validation data (as Keras does)."""
    if validation_data is not None:
        raise ValueError("Pass `validation_split` or `validation_data`, not both.")
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"`validation_split` must be in (0, 1); got {validation_split}.")
    count = _num_examples(x)
    cut = int(count * (1.0 - validation_split))

    def take(values, part):
        if values is None:
            return None
        if isinstance(values, tuple):
            return tuple(take(v, part) for v in values)
        return values[part]

    train = slice(0, cut)
    held = slice(cut, count)
    return (take(x, train), take(y, train), take(sample_weight, train)), (
        take(x, held),
        take(y, held),
        take(sample_weight, held),
    )
