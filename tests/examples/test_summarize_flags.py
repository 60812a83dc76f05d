"""examples/summarize.py's command line: hyphenated flags (the documented spelling, as the
`kerasllm` commands and the other examples), underscore spellings as hidden aliases."""

import pytest
import summarize


def test_hyphenated_flags_parse():
    args = summarize.parse_args(
        ["--model-dir", "runs/s", "--pretrain-steps", "5", "--finetune-steps=7"]
        + ["--sequence-length", "64", "--target-length", "24", "--batch-size", "8"]
    )
    assert (args.model_dir, args.pretrain_steps, args.finetune_steps) == ("runs/s", 5, 7)
    assert (args.sequence_length, args.target_length, args.batch_size) == (64, 24, 8)
    assert (args.beams, args.no_repeat_ngram_size) == (1, 0)
    assert args.pretrain_objective == "denoising"
    args = summarize.parse_args(["--model-dir", "r", "--beams", "4", "--no-repeat-ngram-size=3"])
    assert (args.beams, args.no_repeat_ngram_size) == (4, 3)
    args = summarize.parse_args(["--model-dir", "r", "--pretrain_objective", "span_corruption"])
    assert (args.pretrain_objective, args.eval_split) == ("span_corruption", "test")
    args = summarize.parse_args(["--model-dir", "r", "--eval-split", "validation", "--seed=3"])
    assert (args.eval_split, args.seed) == ("validation", 3)
    assert summarize._config(args, "d", 10, None).seed == 3  # reaches the trainer


def test_underscore_spellings_still_work_and_values_are_left_alone():
    args = summarize.parse_args(["--model_dir", "runs/a_b", "--learning_rate=0.5"])
    assert args.model_dir == "runs/a_b" and args.learning_rate == 0.5


def test_help_shows_only_the_hyphenated_spelling(capsys):
    with pytest.raises(SystemExit):
        summarize.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--model-dir" in text and "--finetune-steps" in text
    assert "--model_dir" not in text and "_steps" not in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model-dir", "r", "--finetune-steps", "0"], "--finetune-steps must be"),
        (["--model-dir", "r", "--target-length", "1"], "--target-length must be"),
        (["--model-dir", "r", "--pretrain-steps", "3", "--tokenizer", "t"], "--tokenizer is"),
        (["--model-dir", "r", "--beams", "0"], "--beams must be"),
        (["--model-dir", "r", "--no-repeat-ngram-size", "-2"], "--no-repeat-ngram-size must"),
        (["--model-dir", "r", "--pretrain-objective", "masked_lm"], "--pretrain-objective"),
        (["--model-dir", "r", "--eval-split", "train"], "--eval-split"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit):
        summarize.parse_args(argv)
    assert message in capsys.readouterr().err
