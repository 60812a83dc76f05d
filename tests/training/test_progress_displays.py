"""Progress for work that used to run silently: the trainer's evaluation passes and tokenizer
training (issue 25). Both use `kerasllm.utils.progress.Progress` after a delay, so quick work
prints nothing; the tests set the delay to 0."""

import pytest
from training_helpers import causal_batches, tiny_causal_lm

from kerasllm.testing import synthetic_reviews
from kerasllm.training import Trainer, TrainerConfig, inputs
from kerasllm.training import trainer as trainer_module

CONTROL = {"\r", "\b", "\x1b"}


def test_the_trainers_evaluation_shows_its_batches(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(trainer_module, "EVAL_PROGRESS_DELAY", 0.0)
    config = TrainerConfig(str(tmp_path), steps=2, eval_every=1, steps_per_loop=1, verbose=1)
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, strategy="one_device")
    trainer.fit(causal_batches(num_examples=16), causal_batches(num_examples=24))
    out = capsys.readouterr().out
    assert not CONTROL & set(out)
    evaluations = [line for line in out.splitlines() if line.startswith("eval batch")]
    # Three batches of eight, at each of the two evaluations: first and last batch shown.
    assert [line.split()[2] for line in evaluations] == ["1/3", "3/3"] * 2, out
    assert evaluations[-1].startswith("eval batch 3/3 [====================] 100%")
    # The standalone evaluation of a function's dataset: no known total, then no bar.
    capsys.readouterr()
    trainer.evaluate(lambda context: causal_batches(num_examples=16))
    assert capsys.readouterr().out.splitlines()[-1] == "eval batch 2"


def test_an_evaluation_shorter_than_the_delay_shows_nothing(tmp_path, capsys):
    config = TrainerConfig(str(tmp_path), steps=1, verbose=1)
    trainer = Trainer(tiny_causal_lm, "causal_lm", config, strategy="one_device")
    trainer.evaluate(causal_batches(num_examples=8))
    assert "eval batch" not in capsys.readouterr().out


@pytest.mark.parametrize("delay", [0.0, 60.0])
def test_tokenizer_training_shows_progress_on_standard_error(capsys, monkeypatch, delay):
    monkeypatch.setattr(inputs, "TOKENIZER_PROGRESS_DELAY", delay)
    texts = synthetic_reviews(count=30)[0]
    corpus = inputs.Corpus("causal_lm", "own", texts, texts[:5])
    tokenizer = inputs.train_tokenizer(corpus, vocabulary_size=300)
    assert tokenizer.vocabulary_size == 300
    out, err = capsys.readouterr()
    assert "tokenizer" not in out
    if delay:  # a quick one prints nothing
        assert "tokenizer texts" not in err
        return
    lines = [line for line in err.splitlines() if line.startswith("tokenizer texts")]
    assert lines[0].startswith("tokenizer texts 1: reading (")
    assert lines[-1].startswith("tokenizer texts 30: learning 300 SentencePiece pieces")
    assert lines[-1].endswith("elapsed") and not CONTROL & set(err)
