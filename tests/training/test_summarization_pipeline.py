"""Summarization end to end on tiny synthetic data: `kerasllm pretrain --objective
span_corruption` (and `denoising`), `kerasllm finetune --init-from` for (text -> headline),
`kerasllm evaluate` with ROUGE, and (slow: export tracing and a second TensorFlow process)
the exported bundle served from a fresh process (TensorFlow and tensorflow-text only) on a
fuzz batch."""

import json
import subprocess
import sys

import pytest
import tensorflow as tf

import kerasllm.tokenizers as kt
from kerasllm.cli import main
from kerasllm.data.span_corruption import raw_length_for
from kerasllm.export import export
from kerasllm.testing import synthetic_text_samples
from kerasllm.training import inputs

TINY_MODEL = ["--set", "num_layers=1", "--set", "hidden_dim=16", "--set", "intermediate_dim=32"]
TINY_RUN = ["--batch-size", "4", "--steps", "1", "--verbose", "0"]

SERVE = r"""
import json, sys
for blocked in ("kerasllm", "keras_hub"):
    sys.modules[blocked] = None  # the export must not need them
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

path, texts = sys.argv[1], json.loads(sys.argv[2])
fn = tf.saved_model.load(path).signatures["serving_default"]
out = fn(text=tf.constant(texts))["translation"].numpy()
print(json.dumps([value.decode("utf-8") for value in out]))
"""

FUZZ = ["", "  \n\t", "word " * 2000, "Économie : 東京の株価が上昇 😀", "the market rose"]


@pytest.fixture(scope="module")
def headline_bundle(tmp_path_factory):
    """Span-corruption pretraining then headline fine-tuning through the CLI (one step each);
    returns (run folder, the pairs file, the number of pairs)."""
    tmp_path = tmp_path_factory.mktemp("summarization")
    texts = synthetic_text_samples()["news"]
    corpus = tmp_path / "news.txt"
    corpus.write_text("\n".join(texts) + "\n")
    pairs = tmp_path / "headlines.tsv"
    pairs.write_text("".join(f"{t}\t{' '.join(t.split()[:4])}\n" for t in texts))
    pre, fine = tmp_path / "pre", tmp_path / "fine"

    args = ["pretrain", "--model", "transformer_tiny", "--objective", "span_corruption"]
    args += ["--data", str(corpus), "--model-dir", str(pre), "--sequence-length", "24"]
    assert main(args + ["--vocabulary-size", "500", *TINY_MODEL, *TINY_RUN]) == 0

    args = ["finetune", "--model", "transformer_tiny", "--objective", "seq2seq"]
    args += ["--data", str(pairs), "--model-dir", str(fine), "--sequence-length", "24"]
    args += ["--target-length", "8", "--init-from", str(pre), "--tokenizer", str(pre / "tokenizer")]
    assert main(args + TINY_MODEL + TINY_RUN) == 0
    return tmp_path, pairs, len(texts)


def test_denoising_pretraining_writes_the_whole_text_through_the_cli(tmp_path):
    """`--objective denoising`: the recipe's batches have decoders that write the original
    chunk (no sentinel among the labels, the chunk's length), and one CLI step trains and
    saves a tokenizer with the 100 sentinels its encoder inputs need."""
    texts = synthetic_text_samples()["news"]
    tokenizer = kt.train_sentencepiece(texts, 500, extra_tokens=kt.sentinel_tokens(100))
    sentinels = set(kt.sentinel_ids(tokenizer))
    build = inputs.dataset_fn("denoising", texts[:8], tokenizer, 4, 24, training=False)
    x, y, w = next(iter(build(tf.distribute.InputContext())))
    assert y.shape[1] == raw_length_for(24) + 1
    assert sentinels & set(x["encoder_token_ids"].numpy().ravel().tolist())
    assert not sentinels & set(y.numpy()[w.numpy() > 0].tolist())

    corpus = tmp_path / "news.txt"
    corpus.write_text("\n".join(texts) + "\n")
    args = ["pretrain", "--model", "transformer_tiny", "--objective", "denoising"]
    args += ["--data", str(corpus), "--model-dir", str(tmp_path / "pre")]
    args += ["--sequence-length", "24", "--vocabulary-size", "500"]
    assert main(args + TINY_MODEL + TINY_RUN) == 0
    assert len(kt.sentinel_ids(kt.load(tmp_path / "pre" / "tokenizer"))) == 100
    results = json.loads((tmp_path / "pre" / "results.json").read_text())
    assert results["step"] == 1 and results["eval"]["loss"] > 0


@pytest.mark.slow  # minutes of CPU on 2 cores; keeps the default suite under ~20 min
def test_pretrain_span_corruption_then_finetune_and_evaluate(headline_bundle):
    tmp_path, pairs, count = headline_bundle
    pre, fine = tmp_path / "pre", tmp_path / "fine"
    tokenizer = kt.load(pre / "tokenizer")
    assert len(kt.sentinel_ids(tokenizer)) == 100  # reserved by the recipe's tokenizer
    results = json.loads((pre / "results.json").read_text())
    assert results["step"] == 1 and results["eval"]["loss"] > 0
    start = json.loads((fine / "start.json").read_text())
    assert start["kind"] == "checkpoint" and start["weights"] == str(pre)
    metadata = json.loads((fine / "bundle" / "bundle.json").read_text())["metadata"]
    assert metadata["source_length"] == 24 and metadata["target_length"] == 8

    out = tmp_path / "eval.json"
    args = ["evaluate", "--model", str(fine / "bundle"), "--data", str(pairs)]
    assert main(args + ["--output", str(out), "--max-examples", "8"]) == 0
    scores = json.loads(out.read_text())
    assert scores["examples"] == 8
    assert {"bleu", "chrf", "rouge1", "rouge2", "rougeL"} <= set(scores)


@pytest.mark.slow
def test_exported_headline_bundle_serves_a_fuzz_batch_in_a_fresh_process(headline_bundle):
    from kerasllm import bundle

    tmp_path = headline_bundle[0]
    version = export(bundle.load(tmp_path / "fine" / "bundle"), tmp_path / "served" / "headlines")
    served = subprocess.run(
        [sys.executable, "-c", SERVE, str(version), json.dumps(FUZZ)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    outputs = json.loads(served.stdout.strip().splitlines()[-1])
    assert len(outputs) == len(FUZZ) and all(isinstance(o, str) for o in outputs)
    assert outputs[:2] == ["", ""]  # blank text, blank headline
    assert all(len(o.split()) <= 8 for o in outputs)  # bounded by the bundle's target_length
