"""A tuning trial shows its progress on standard error (issue 25: trials ran silently for as long
as they trained). One trial of a tiny classifier on synthetic reviews; no data package."""

from kerasllm import tokenizers
from kerasllm.testing import synthetic_reviews
from kerasllm.training import TrainerConfig
from kerasllm.tuning import SearchSpace
from kerasllm.tuning.hypermodel import ZooHyperModel
from kerasllm.tuning.tuners import RandomSearch, TrialData


def test_a_trial_shows_its_steps_loss_and_validation_metrics(tmp_path, capsys):
    texts, labels = synthetic_reviews(count=48)
    tokenizer = tokenizers.train_wordpiece(texts, vocabulary_size=120)
    tokenizer_dir = str(tmp_path / "tokenizer")
    tokenizer.save(tokenizer_dir)
    space = SearchSpace(num_layers=[1], num_heads=[2], hidden_dim=[16], intermediate_dim=[32])
    hypermodel = ZooHyperModel(
        "bert_tiny", "classification", space, tokenizer.vocabulary_size, num_classes=2
    )
    data = TrialData(
        "classification", (texts[:32], labels[:32]), (texts[32:], labels[32:]), tokenizer_dir,
        sequence_length=16, labels=["bad", "good"],
    )  # fmt: skip
    base = TrainerConfig(str(tmp_path / "unused"), steps=1, global_batch_size=8, verbose=0)
    tuner = RandomSearch(
        hypermodel, data, base, metric="accuracy", steps=3, search_dir=tmp_path / "search",
        max_trials=1, strategy="one_device",
    )  # fmt: skip
    tuner.search(verbose=0)
    out, err = capsys.readouterr()
    assert "trial" not in out  # results only on standard output
    lines = [line for line in err.splitlines() if line.startswith("trial 0 step")]
    assert lines, err
    assert lines[-1].startswith("trial 0 step 3/3 [====================] 100% loss=")
    assert "val_accuracy=" in lines[-1] and "val_loss=" in lines[-1]
    assert not {"\r", "\b", "\x1b"} & set(err)
