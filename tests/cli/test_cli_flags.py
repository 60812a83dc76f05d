"""The command line's flags: every flag's help states its default, `tune`'s flags are all
explained, a malformed `--space` is a one-line usage error, and a missing path is reported
as a path, not as an unknown preset."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kerasllm.cli import HelpFormatter, build_parser, main

REPO = Path(__file__).resolve().parents[2]
TUNE = ["tune", "--model", "bert_tiny", "--objective", "classification", "--data", "x"]
TUNE += ["--search-dir", "unused"]


def command_parsers(parser=None, prefix=()):
    """(command words, parser) of every command and nested command (`zoo list`)."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield (*prefix, name), subparser
                yield from command_parsers(subparser, (*prefix, name))


def options(parser):
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def help_of(parser, action) -> str:
    """The help text `--help` prints for `action`, on one line."""
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    return " ".join(text.split())


def test_every_command_uses_the_shared_help_formatter():
    assert build_parser().formatter_class is HelpFormatter
    for words, parser in command_parsers():
        assert parser.formatter_class is HelpFormatter, words


def test_every_optional_flag_states_its_default_in_its_help():
    # On/off switches are off unless given and required flags have no default; every other
    # flag says what leaving it out does: its value, appended by the formatter, or in words.
    for words, parser in command_parsers():
        for action in options(parser):
            if action.required or isinstance(action.default, bool):
                continue
            assert "default:" in help_of(parser, action).lower(), (words, action.option_strings)


def test_defaults_appear_in_the_help_once():
    pretrain = dict(command_parsers())[("pretrain",)]
    text = " ".join(pretrain.format_help().split())
    assert "global batch size over all replicas. (default: 32)" in text
    assert "tokens per example. (default: 128)" in text
    assert "(default: validation)" in text and text.count("(default: val_loss)") == 1
    # None and empty defaults are explained in words, not printed as "None" or "[]".
    assert "default: None" not in text and "default: []" not in text


def test_every_tune_flag_is_explained():
    parsers = dict(command_parsers())
    tune = parsers[("tune",)]
    for action in options(tune):
        assert action.help and len(action.help) > 20, action.option_strings
    text = " ".join(tune.format_help().split())
    for words in ("Gaussian-process", "--max-trials is then its max epochs", "(default: 8000)"):
        assert words in text, words


def test_help_of_every_command_imports_no_tensorflow():
    code = (
        "import sys\nfrom kerasllm.cli import main\n"
        "for command in ('zoo', 'pretrain', 'finetune', 'export', 'tune', 'predict', "
        "'generate', 'evaluate'):\n"
        "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass\n"
        "print('LOADED', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED False False" in result.stdout
    assert "kerasllm predict --model runs/sentiment/bundle" in result.stdout  # an epilog example


@pytest.mark.parametrize(
    "space, problem",
    [
        ('{"num_layers": [1, 2', "not valid JSON: Expecting ',' delimiter: line 1 column"),
        ("[1, 2]", "no file '[1, 2]'"),
        ('{"num_layers": 2}', "'num_layers' must be a list of choices"),
    ],
)
def test_a_malformed_space_is_a_one_line_usage_error(capsys, space, problem):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*TUNE, "--space", space])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"kerasllm tune: error: argument --space: {problem}")


def test_a_space_file_that_is_not_json_is_named(tmp_path, capsys):
    path = tmp_path / "space.json"
    path.write_text('{"num_layers": ')
    with pytest.raises(SystemExit):
        build_parser().parse_args([*TUNE, "--space", str(path)])
    last = capsys.readouterr().err.splitlines()[-1]
    assert "argument --space: file" in last and str(path) in last and "not valid JSON" in last
    path.write_text('{"num_layers": [1, 2]}')
    assert build_parser().parse_args([*TUNE, "--space", str(path)]).space == {"num_layers": [1, 2]}


def test_search_space_errors_name_the_flag():
    from kerasllm.cli.tune import _space

    with pytest.raises(ValueError, match=r"^--space: Unknown search-space hyperparameters"):
        _space({"layers": [1]}, "bert_tiny")
    with pytest.raises(ValueError, match=r"^--space: Search space `num_layers` must hold"):
        _space({"num_layers": [0]}, "bert_tiny")
    with pytest.raises(ValueError, match=r"^Unknown preset 'bert_tinyy'"):
        _space({"num_layers": [1]}, "bert_tinyy")
    assert _space({"num_layers": [1, 2]}, "bert_tiny").num_layers == [1, 2]


@pytest.mark.parametrize(
    "model, message",
    [
        ("./no/such/dir", "no directory './no/such/dir'"),
        ("no/such/dir", "no directory 'no/such/dir'"),
        (".hidden_run", "no directory '.hidden_run'"),
        ("runs/x/preset.json", "no preset file 'runs/x/preset.json'"),
        ("bert_tinyy", "Unknown preset 'bert_tinyy'. Did you mean 'bert_tiny'"),
    ],
)
def test_a_missing_path_is_not_reported_as_an_unknown_preset(tmp_path, capsys, model, message):
    out = str(tmp_path / "served")
    assert main(["export", "--model", model, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kerasllm export: error: {message}"), err
    assert "Traceback" not in err and not os.path.exists(out)


@pytest.mark.parametrize("flag", ["--batch-size", "--steps", "--max-trials", "--vocabulary-size"])
def test_tune_counts_below_one_are_refused_naming_the_flag(capsys, flag):
    # Before, `--batch-size 0` reached the trainer's settings and was reported as
    # "`global_batch_size` must be ...", a name the user never typed.
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*TUNE, flag, "0"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"kerasllm tune: error: argument {flag}: must be a positive integer, got 0."


def test_a_path_to_a_file_that_is_no_preset_is_named_as_such(tmp_path):
    from kerasllm import zoo

    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a file but not a preset \.json file"):
        zoo.get_preset(str(weights))


# ---------------------------------------------------------------------------- the examples
EXAMPLES = REPO / "examples"
ARGPARSE_EXAMPLES = ["finetune_sentiment.py", "sentiment_from_strings.py", "tune.py"]


def run_translate(*args):
    """`examples/translate.py` with `args`; only its flags are parsed (absl; no TensorFlow)."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "translate.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_translate_help_spells_flags_as_the_cli_with_each_default():
    result = run_translate("--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    flags_part = text.split("flags (each with its default):\n", 1)[1]
    blocks = re.split(r"\n(?=  --)", flags_part.strip("\n"))
    assert len(blocks) > 30
    for block in blocks:
        name = block.split(":")[0].strip()
        assert "_" not in name, name  # --model-dir, not --model_dir
        assert "default" in block.lower(), block
    # Underscored names are gone from the help texts and the usage lines too.
    assert not re.search(r"--(\[no\])?[a-z]+_[a-z_]+", text), text
    for documented in ("--model-dir", "--max-length", "--[no]jit-compile", "--eval-limit"):
        assert documented in text, documented


@pytest.mark.parametrize("spelling", ["--update-card", "--update_card", "--update-card=true"])
def test_translate_accepts_both_spellings(spelling):
    # --update-card without --eval is a usage error raised once the flags are parsed: a cheap
    # way to see the flag was understood, whatever its spelling.
    result = run_translate(spelling)
    assert result.returncode == 1
    assert "--update-card rewrites a card from --eval's figures; add --eval." in result.stderr


@pytest.mark.parametrize("spelling", ["--max-length", "--max_length"])
def test_translate_flag_errors_use_the_documented_spelling(spelling):
    result = run_translate(spelling, "0")
    assert result.returncode == 1
    assert "flag --max-length=0: 0 is not a positive integer" in result.stderr, result.stderr


def test_normalize_flags_leaves_values_and_the_rest_alone():
    code = (
        "import runpy, sys; sys.argv = ['translate.py']; "
        f"ns = runpy.run_path({str(EXAMPLES / 'translate.py')!r}); "
        "print(ns['normalize_flags'](['t', '--text', '--not-a-flag', '--no-jit-compile', "
        "'--max-length=4', '--', '--model-dir']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == str(
        ["t", "--text", "--not-a-flag", "--nojit_compile", "--max_length=4", "--", "--model-dir"]
    ), result.stderr


def _example_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # defines functions; runs nothing (a __main__ guard)
    return module


@pytest.mark.parametrize("name", ARGPARSE_EXAMPLES)
def test_argparse_examples_use_hyphens_and_state_every_default(name):
    parser = _example_module(name).build_parser()
    assert parser.formatter_class is HelpFormatter
    for action in parser._actions:
        if action.dest == "help":
            continue
        for option in action.option_strings:
            assert "_" not in option, (name, option)
        assert "default" in help_of(parser, action).lower(), (name, action.dest)


@pytest.mark.parametrize(
    "command",
    [
        ["pretrain", "--model", "bert_tiny", "--data", "news"],
        ["finetune", "--model", "bert_tiny", "--data", "rotten_tomatoes"],
        ["compress", "distill", "--teacher", "t", "--student", "s", "--output", "o", "--data", "d"],
    ],
)
def test_set_and_override_are_one_flag_in_every_training_command(command):
    """`pretrain`/`finetune` document `--set`, `compress distill` `--override`: either
    spelling gives each command the same hyperparameter changes, in order, values as JSON."""
    parser = build_parser()
    mixed = parser.parse_args([*command, "--set", "norm_first=true", "--override", "num_layers=3"])
    assert mixed.overrides == [("norm_first", True), ("num_layers", 3)]
    for spelling in ("--set", "--override"):
        args = parser.parse_args([*command, spelling, "activation=gelu"])
        assert args.overrides == [("activation", "gelu")]
