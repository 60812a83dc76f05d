"""Every objective lowers its loss in a short run on real data, through the same corpus and
pipeline code as `kerasllm pretrain` / `kerasllm finetune` (`kerasllm.training.inputs`)."""

import pytest
from training_helpers import SMALL

from kerasllm import zoo
from kerasllm.training import Trainer, TrainerConfig, inputs, objectives

CASES = {
    # objective: (corpus, preset, examples kept, sequence length)
    "causal_lm": ("news", "gpt_tiny", 60, 32),
    "masked_lm": ("news", "bert_tiny", 60, 32),
    "seq2seq": ("bible", "transformer_tiny", 400, 24),
    "classification": ("rotten_tomatoes", "bert_tiny", 64, 32),
    "token_classification": ("wnut", "bert_tiny", 400, 32),
}


def head(split, count):
    if isinstance(split, tuple):
        return tuple(column[:count] for column in split)
    return split[:count]


@pytest.fixture(scope="module")
def tokenizers():
    cache = {}

    def get(corpus):
        if corpus.name not in cache:
            cache[corpus.name] = inputs.train_tokenizer(corpus, vocabulary_size=800)
        return cache[corpus.name]

    return get


@pytest.mark.slow  # five short trainings on real corpora: ~40 s of CPU, over a minute when shared
@pytest.mark.parametrize("objective", list(CASES))
def test_objective_lowers_the_loss_on_real_data(tmp_path, tokenizers, objective):
    name, preset, count, length = CASES[objective]
    corpus = inputs.load_corpus(objective, name)
    corpus.train = head(corpus.train, count)
    tokenizer = tokenizers(corpus)
    extra = {"num_classes": len(corpus.labels)} if corpus.labels else {}
    task = objectives.get(objective).task

    def build():
        overrides = {**SMALL, "vocabulary_size": tokenizer.vocabulary_size, "hidden_dim": 32}
        return zoo.get(preset, task=task, weights=None, **overrides, **extra)

    def data(training):
        return inputs.dataset_fn(
            objective, corpus.train, tokenizer, 16, length, training=training, labels=corpus.labels
        )

    trainer = Trainer(
        build,
        objective,
        TrainerConfig(str(tmp_path), steps=40, learning_rate=1e-2, warmup_steps=4, verbose=0),
        strategy="one_device",
    )
    before = trainer.evaluate(data(False), steps=4)["loss"]
    after = trainer.fit(data(True), data(False))
    assert trainer.step == 40
    assert trainer.evaluate(data(False), steps=4)["loss"] < 0.9 * before, (before, after)
