"""Pruning: the polynomial schedule, magnitude pruning through the Trainer (target sparsity,
pruned weights staying zero), `strip`, structured pruning of heads and feed-forward units (exact
equality with the zeroed original, GQA, tied embeddings, config round trip) and
`kerasllm compress prune` (bundle, load, export served from a fresh process)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from compression_helpers import run_fresh

from kerasllm import bundle, compression, testing
from kerasllm.cli import main
from kerasllm.compression import pruning
from kerasllm.export import export
from kerasllm.generation import generate
from kerasllm.models import CausalLM, Decoder, EncoderDecoder, Seq2SeqLM
from kerasllm.training import Trainer, TrainerConfig
from kerasllm.training.controller import Action


def _seq2seq(variant: str = "learned_postnorm", **overrides) -> Seq2SeqLM:
    config = testing.tiny_config(variant, num_layers=1, **overrides)
    return Seq2SeqLM(EncoderDecoder(**config, num_decoder_layers=2))


def _outputs(model, inputs) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def test_polynomial_schedule_matches_tf_mot_values():
    schedule = pruning.PolynomialDecay(0.1, 0.8, begin_step=10, end_step=110, power=3, frequency=25)
    # TF-MOT: final + (initial - final) * (1 - (step - begin) / (end - begin)) ** power.
    for step, expected in ((0, 0.1), (10, 0.1), (35, 0.8 - 0.7 * 0.75**3), (60, 0.8 - 0.7 / 8)):
        assert schedule.sparsity(step) == pytest.approx(expected)
    assert schedule.sparsity(110) == pytest.approx(0.8)
    assert schedule.sparsity(500) == pytest.approx(0.8)
    updates = [step for step in range(200) if schedule.should_update(step)]
    assert updates == [10, 35, 60, 85, 110]
    assert [schedule.next_update(s) for s in (0, 10, 36, 110)] == [10, 35, 60, None]
    assert schedule.last_update(50) == 35 and schedule.last_update(5) is None
    linear = pruning.PolynomialDecay(0.0, 0.5, 0, 100, power=1, frequency=1)
    assert linear.sparsity(50) == pytest.approx(0.25)
    for kwargs, match in (
        ({"final_sparsity": 1.0}, "final_sparsity"),
        ({"begin_step": 5, "end_step": 4}, "end_step"),
        ({"frequency": 0}, "frequency"),
        ({"power": 0}, "power"),
    ):
        with pytest.raises(ValueError, match=match):
            pruning.PolynomialDecay(**kwargs)


class _Snapshots(Action):
    """Records one pruned kernel after every training-loop call."""

    def __init__(self, variable):
        self.variable = variable
        self.seen: dict[int, np.ndarray] = {}

    def after_loop(self, state, output):
        self.seen[state.step] = keras.ops.convert_to_numpy(self.variable.value).copy()


def test_magnitude_pruning_through_the_trainer_keeps_pruned_weights_zero(tmp_path):
    model = _seq2seq("rotary_gqa_swiglu")
    x = testing.seq2seq_inputs(batch=8)
    y = x["decoder_token_ids"]
    data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(y.shape, "float32"))).batch(4)
    config = TrainerConfig(
        str(tmp_path / "run"),
        steps=8,
        steps_per_loop=100,
        seconds_per_loop=None,
        verbose=0,
        learning_rate=1e-2,
    )
    # A built model, default "auto" strategy: it trains where it was built (one device).
    trainer = Trainer(model, "seq2seq", config)
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4, frequency=2)
    pruner = pruning.MagnitudePruning(trainer.model, schedule, strategy=trainer.strategy)
    kernel = model.backbone.layer_blocks[0].self_attention.query_dense.kernel
    snapshots = _Snapshots(kernel)
    trainer.fit(data, callbacks=[pruner, snapshots])
    # The loop calls end at the mask updates (2, 4) although steps_per_loop is 100.
    assert sorted(snapshots.seen) == [2, 4, 8]
    assert (snapshots.seen[2] == 0).mean() == 0.0  # step 0's sparsity is 0
    assert (snapshots.seen[4] == 0).mean() == pytest.approx(schedule.sparsity(2))
    measured = pruning.sparsity(model)
    assert len(measured["per_weight"]) == 5 * 4 + 3 * 3  # 5 attention layers, 3 gated FFNs
    for fraction in measured["per_weight"].values():
        assert fraction == pytest.approx(0.5, abs=1e-9)
    # Four more optimizer updates after the last mask update (at step 4): pruned weights stay
    # exactly zero while the others keep training.
    final = snapshots.seen[8]
    mask = keras.ops.convert_to_numpy(
        pruner.masks[[w is kernel for w in pruner.weights].index(True)]
    )
    assert np.all(final[mask == 0] == 0)
    assert np.all(final[mask == 1] != 0)
    assert not np.allclose(final[mask == 1], snapshots.seen[4][mask == 1])


def test_strip_leaves_plain_weights_that_predict_identically(tmp_path):
    model = _seq2seq()
    fresh = _seq2seq()
    inputs = testing.seq2seq_inputs()
    pruner = pruning.MagnitudePruning(model, pruning.PolynomialDecay(0.0, 0.6, 0, 0))
    assert pruner.update_masks(0) == 0.6
    before = _outputs(model, inputs)
    pruning.strip(model)
    assert all(getattr(w, "constraint", None) is None for w in model.weights)
    assert [w.path for w in model.weights] == [w.path for w in fresh.weights]
    np.testing.assert_array_equal(_outputs(model, inputs), before)
    assert pruning.sparsity(model)["sparsity"] == pytest.approx(0.6, abs=1e-3)
    path = model.backbone.layer_blocks[0].self_attention.query_dense.kernel.path
    model.save(tmp_path / "sparse.keras")
    loaded = keras.saving.load_model(tmp_path / "sparse.keras")
    np.testing.assert_array_equal(_outputs(loaded, inputs), before)
    # Each kernel loses exactly round(0.6 * size) weights (here 154 of 256).
    assert pruning.sparsity(loaded)["per_weight"][path] == 154 / 256


def test_embeddings_are_pruned_only_when_asked():
    model = CausalLM(Decoder(**testing.tiny_config(num_layers=1)))
    paths = [w.path for w in pruning.prunable_weights(model)]
    assert not any("token_embedding" in p for p in paths)
    with_embeddings = pruning.prunable_weights(model, include_embeddings=True)
    assert any("token_embedding" in w.path for w in with_embeddings)
    pruning.MagnitudePruning(model, pruning.PolynomialDecay(0.0, 0.5, 0, 0), True).update_masks(0)
    assert pruning.sparsity(model, include_embeddings=True)["sparsity"] == pytest.approx(0.5, 1e-3)


@pytest.mark.parametrize("variant", ["learned_postnorm", "rotary_gqa_swiglu"])
def test_structured_pruning_equals_the_original_with_removed_parts_zeroed(variant):
    model = _seq2seq(variant)
    inputs = testing.seq2seq_inputs()
    blocks = model.backbone.layer_blocks
    gqa = variant == "rotary_gqa_swiglu"  # 4 query heads over 2 key/value heads
    # Non-contiguous, uneven choices: wrong head or unit slicing changes the outputs.
    self_heads = [[0, 3], [1, 2], [0, 3]] if gqa else [[0, 2, 3], [1], [1, 2, 3]]
    keep = [
        {"self_attention": heads, "feed_forward": sorted({1, 4, 5, 9, 30, 31} | {i})}
        for i, heads in enumerate(self_heads)
    ]
    for entry in keep[1:]:
        entry["cross_attention"] = [1, 2] if gqa else [2]
    smaller = pruning.prune_structured(model, keep=keep)
    assert smaller.count_params() < model.count_params()
    shapes = smaller.backbone.layer_shapes
    assert [s["num_heads"] for s in shapes] == [len(h) for h in self_heads]
    if gqa:
        assert all(s["num_key_value_heads"] == 2 for s in shapes)
    assert shapes[1]["cross_attention_heads"] == (2 if gqa else 1)
    assert (
        smaller.backbone.layer_blocks[1].self_attention.head_dim
        == blocks[1].self_attention.head_dim
    )
    # Tied embeddings stay tied: one table, no separate output projection.
    embedding = smaller.backbone.token_embedding
    assert embedding.tie_weights and len(embedding.weights) == 1
    expected = _outputs(pruning.zero_removed(model, keep), inputs)
    np.testing.assert_allclose(_outputs(smaller, inputs), expected, atol=2e-5)
    # The smaller model's config round trips and rebuilds the same model.
    config = json.loads(json.dumps(smaller.get_config()))
    rebuilt = Seq2SeqLM.from_config(config)
    rebuilt.set_weights(smaller.get_weights())
    assert rebuilt.backbone.layer_shapes == shapes
    np.testing.assert_allclose(_outputs(rebuilt, inputs), expected, atol=2e-5)


def test_importance_and_fractions():
    model = _seq2seq()
    scores = pruning.importance(model)
    assert [sorted(s) for s in scores] == [
        ["feed_forward", "self_attention"],
        ["cross_attention", "feed_forward", "self_attention"],
        ["cross_attention", "feed_forward", "self_attention"],
    ]
    x = testing.seq2seq_inputs(batch=4)
    batches = [(x, x["decoder_token_ids"], np.ones((4, 7), "float32"))]
    taylor = pruning.importance(model, "taylor", batches, "seq2seq", batches=1)
    assert taylor[0]["self_attention"].shape == (4,) and np.all(taylor[0]["feed_forward"] >= 0)
    plan = pruning.plan(model, heads_fraction=0.25, ffn_fraction=0.5, scores=taylor)
    for entry, block_scores in zip(plan, taylor):
        assert len(entry["self_attention"]) == 3 and len(entry["feed_forward"]) == 16
        removed = set(range(4)) - set(entry["self_attention"])
        assert block_scores["self_attention"][list(removed)].max() <= min(
            block_scores["self_attention"][entry["self_attention"]]
        )
    with pytest.raises(ValueError, match="heads_fraction"):
        pruning.plan(model, heads_fraction=1.0)
    with pytest.raises(ValueError, match="taylor"):
        pruning.importance(model, "taylor")
    t5 = Seq2SeqLM(EncoderDecoder(**testing.tiny_config("relative_t5", num_layers=1)))
    with pytest.raises(ValueError, match="relative position"):
        pruning.prune_structured(t5, heads_fraction=0.5)
    assert pruning.prune_structured(t5, 0.0, 0.5).count_params() < t5.count_params()


SERVE = r"""
import json, sys
sys.modules["kerasllm"] = None  # the export must serve without kerasllm
import tensorflow as tf
import tensorflow_text  # noqa: F401
paths, ids = json.loads(sys.argv[1]), json.loads(sys.argv[2])
result = {}
for name, path in paths.items():
    seq = tf.saved_model.load(path).signatures["translate_token_ids"]
    ragged = tf.ragged.constant(ids)
    out = seq(token_ids=ragged.to_tensor(), padding_mask=tf.ones_like(ragged).to_tensor())
    result[name] = {k: out[k].numpy().tolist() for k in ("token_ids", "lengths")}
print("RESULT" + json.dumps(result))
"""
SOURCES = [[5, 6, 7, 8, 9], [10, 11, 12]]
MAX_LENGTH = 5


def _prune_cli(capsys, folder, method, out, *extra) -> tuple[dict, bundle.Bundle]:
    argv = ["compress", "prune", "--model", folder, "--method", method, "--output", str(out)]
    assert main([*argv, *extra, "--benchmark-size", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compression"]["method"] == "pruning"
    assert (out / "compression_report.md").is_file()
    assert "pruning" in (out / "MODEL_CARD.md").read_text("utf-8")
    return report, bundle.load(out)


def test_cli_prune_writes_bundles_that_load_export_and_serve(tmp_path, capsys):
    folder = str(testing.tiny_translation_bundle(tmp_path / "float"))
    # No data: magnitude prunes at once, structured scores by weight magnitude.
    _, sparse = _prune_cli(capsys, folder, "magnitude", tmp_path / "sparse", "--sparsity", "0.5")
    assert sparse.metadata["compression"][-1]["measured_sparsity"] == pytest.approx(0.5, 1e-3)
    assert pruning.sparsity(sparse.model)["sparsity"] == pytest.approx(0.5, 1e-3)
    report, smaller = _prune_cli(
        capsys, folder, "structured", tmp_path / "smaller", "--heads-fraction", "0.5"
    )
    assert report["compression"]["importance"] == "magnitude"
    original = bundle.load(folder).model
    assert smaller.model.count_params() < original.count_params()
    heads = original.backbone.num_heads
    assert all(s["num_heads"] == heads // 2 for s in smaller.model.backbone.layer_shapes)
    # The sparse bundle is a plain float model (`strip`): exporting the smaller model, whose
    # config differs from its original's, is the case that can break.
    path = str(export(smaller, tmp_path / "export", max_length=MAX_LENGTH, beams=1))
    served = run_fresh(SERVE, json.dumps({"structured": path}), json.dumps(SOURCES), cwd=tmp_path)[
        "structured"
    ]
    tok = smaller.tokenizers["source"]
    ids = generate(
        smaller.model,
        SOURCES,
        max_new_tokens=MAX_LENGTH,
        stop_token_ids=[tok.end_id],
        start_id=tok.start_id,
    )
    for row, got, length in zip(ids, served["token_ids"], served["lengths"]):
        assert got[:length] == [int(t) for t in row if t != 0][:length]


@pytest.mark.slow
def test_cli_prune_fine_tunes_and_reports_quality(tmp_path, capsys):
    folder = str(testing.tiny_translation_bundle(tmp_path / "float"))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "".join(f"the king said to the people {i}\tle roi dit au peuple {i}\n" for i in range(12)),
        encoding="utf-8",
    )
    common = ["--data", str(pairs), "--train-batch-size", "4", "--max-examples", "2"]
    report, sparse = _prune_cli(
        capsys, folder, "magnitude", tmp_path / "sparse", *common, "--steps", "4",
        "--frequency", "2",
    )  # fmt: skip
    assert report["compression"]["fine_tuning"]["steps"] == 4
    assert report["compression"]["final_masks_after_training"] is False
    assert pruning.sparsity(sparse.model)["sparsity"] == pytest.approx(0.5, 1e-3)
    report, smaller = _prune_cli(
        capsys, folder, "structured", tmp_path / "smaller", *common, "--steps", "2",
        "--importance-batches", "1",
    )  # fmt: skip
    assert report["compression"]["importance"] == "taylor"
    assert report["compression"]["fine_tuning"]["steps"] == 2
    assert set(report["quality"]) == {"original", "compressed"}
    assert report["evaluation_seconds"]["speedup"] > 0


def test_cli_prune_errors(tmp_path, capsys):
    folder = str(testing.tiny_translation_bundle(tmp_path / "float"))
    base = ["compress", "prune", "--model", folder, "--output", str(tmp_path / "o")]
    for extra, message in (
        (["--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
        (["--steps", "3"], "--steps needs --data"),
        (["--frequency", "0"], "--frequency must be an integer >= 1"),
    ):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["compress", "prune", "--model", folder, "--output", folder]) == 2
    assert "--output must differ" in capsys.readouterr().err
    assert compression.prune_structured is pruning.prune_structured


MIRRORED = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasllm import testing
from kerasllm.compression import pruning
from kerasllm.models import EncoderDecoder, Seq2SeqLM
from kerasllm.training import Trainer, TrainerConfig
config = testing.tiny_config("learned_postnorm", num_layers=1)
x = testing.seq2seq_inputs(batch=8)
y = x["decoder_token_ids"]
data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(y.shape, "float32"))).batch(4)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
trainer = Trainer(
    lambda: Seq2SeqLM(EncoderDecoder(**config)), "seq2seq",
    TrainerConfig("run", steps=6, verbose=0, learning_rate=1e-2, global_batch_size=4),
    strategy=strategy,
)
schedule = pruning.PolynomialDecay(0.0, 0.5, 0, 2, frequency=2)
pruner = pruning.MagnitudePruning(trainer.model, schedule, strategy=trainer.strategy)
trainer.fit(data, callbacks=[pruner])
kernel = trainer.model.backbone.layer_blocks[0].self_attention.query_dense.kernel
replicas = [v.numpy() for v in kernel.value.values]
print("RESULT" + json.dumps({
    "replicas": len(replicas),
    "zeros": [float((v == 0).mean()) for v in replicas],
    "same": bool(np.array_equal(replicas[0], replicas[1])),
}))
"""


@pytest.mark.slow
def test_magnitude_pruning_under_a_mirrored_strategy(tmp_path):
    result = run_fresh(MIRRORED, cwd=tmp_path)
    # Four updates after the last mask update: both replicas still hold the same weights, half
    # of them zero (the constraint ran in every replica's step).
    assert result == {"replicas": 2, "zeros": [0.5, 0.5], "same": True}
