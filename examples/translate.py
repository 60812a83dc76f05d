"""Translate English to French with the model this project trained and ships.

    python examples/translate.py                          # a few built-in sentences
    python examples/translate.py --text "Hello." --text "Where is the house?"
    echo "The Lord is my shepherd." | python examples/translate.py   # one line out per line in
    python examples/translate.py --beams 4 --max-length 64
    python examples/translate.py --eval --model saved_models/translate_en_fr   # BLEU/chrF JSON
    python examples/translate.py --train --model-dir runs/translate_en_fr      # train (resumes)

Logs and progress go to standard error. With text piped or redirected into standard input,
standard output carries exactly one translation per input line and nothing else: an empty line
gives an empty line, an empty input gives no output, and bytes that are not UTF-8 are replaced
by U+FFFD (with one warning on standard error). Standard output is always UTF-8, whatever the
locale. A terminal or /dev/null on standard input translates the built-in sentences.

Translation runs through the library's `kerasllm.text_to_text.TextToText`; training, the Bible
evaluation and the model card are this application's own, in examples/translation/.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import stat  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags, logging  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The application (recipe, evaluation, model card) is the package examples/translation/, next to
# this script. `python examples/translate.py` puts this folder first on sys.path already; `-I`
# or `-P` (no script folder on the path) would not, so it is added here.
if str(REPO / "examples") not in sys.path:
    sys.path.insert(0, str(REPO / "examples"))
DEFAULT_MODEL = REPO / "saved_models" / "translate_en_fr"
EXAMPLES = [
    "In the beginning God created the heavens and the earth.",
    "The Lord is my shepherd; I shall not want.",
    "Love your neighbor as yourself.",
    "The king sent messengers to the city.",
    "And the light shines in the darkness.",
]

FLAGS = flags.FLAGS
_ABSL_FLAGS = set(FLAGS)  # absl's own (--verbosity, --logtostderr, ...), defined on import
flags.DEFINE_multi_string(
    "text",
    None,
    "Text to translate (repeatable). Default: the lines piped into standard input, else a "
    "few built-in sentences.",
)
flags.DEFINE_string("model", str(DEFAULT_MODEL), "Translation bundle directory.")
flags.DEFINE_integer("beams", 1, "Beam width; 1 decodes with --sampler.", lower_bound=1)
flags.DEFINE_float(
    "length_penalty", 1.0, "Beam search ranks by log-probability / length ** this (0: raw)."
)
flags.DEFINE_enum("sampler", "greedy", ["greedy", "top_k", "top_p", "random"], "Sampler.")
flags.DEFINE_integer(
    "max_length",
    None,
    "Most target tokens per sentence. Default: what the bundle's target length allows.",
    lower_bound=1,
)
flags.DEFINE_integer("batch_size", 64, "Sentences decoded together.", lower_bound=1)
flags.DEFINE_bool("eval", False, "Evaluate --model on the test and validation verses (JSON).")
flags.DEFINE_string(
    "eval_output", None, "Also write the evaluation JSON to this file. Default: none."
)
flags.DEFINE_bool(
    "update_card",
    False,
    "--eval: also rewrite --model's MODEL_CARD.md and eval.json with these figures (e.g. to time "
    "decoding in a process of its own, not the training process; the card's table gives the "
    "number of verses, so --eval-limit shows).",
)
flags.DEFINE_integer(
    "eval_limit", None, "Evaluate only the first N verses of each split. Default: all."
)
flags.DEFINE_integer(
    "eval_beams", 4, "--eval/--train also score beam search of this width (1: only --beams)."
)
flags.DEFINE_bool("train", False, "Train a model with the recipe below, then evaluate it.")
flags.DEFINE_string("model_dir", "runs/translate_en_fr", "Training directory (resumes).")
flags.DEFINE_string("preset", "transformer_small", "Zoo preset to train.")
flags.DEFINE_integer("encoder_layers", 4, "Encoder depth (0: the preset's).")
flags.DEFINE_integer("decoder_layers", 2, "Decoder depth (0: the preset's).")
flags.DEFINE_float("dropout", 0.0, "Dropout rate.")
flags.DEFINE_float(
    "attention_dropout", None, "Dropout on attention probabilities (default: --dropout)."
)
flags.DEFINE_integer("steps", 20000, "Training steps (optimizer updates).")
flags.DEFINE_float(
    "time_budget_minutes",
    None,
    "Stop training after this many minutes; --decay linear/cosine then ends when they run out. "
    "Default: no limit.",
)
flags.DEFINE_list(
    "extra_sources",
    [],
    "More English versions of the training verses, each paired with the same French verses "
    "(e.g. k,3: King James 1611 and Basic English 1949).",
)
flags.DEFINE_integer("batch_sentences", 24, "Sentences per batch at full length.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate.")
flags.DEFINE_integer("warmup_steps", 400, "Linear warmup steps.")
flags.DEFINE_enum(
    "decay",
    "inverse_sqrt",
    ["inverse_sqrt", "linear", "cosine", "constant"],  # kerasllm.training.config.DECAYS
    "Learning-rate decay after warmup; linear and cosine reach 0 at --steps.",
)
flags.DEFINE_integer("vocabulary_size", 8000, "Joint SentencePiece vocabulary size.")
flags.DEFINE_float(
    "subword_alpha",
    None,
    "Subword regularization: tokenize training pairs with segmentations sampled at this "
    "inverse temperature (e.g. 0.1); default: the most likely segmentation.",
)
flags.DEFINE_integer(
    "subword_nbest", 64, "With --subword-alpha: sample among this many best segmentations."
)
flags.DEFINE_bool(
    "jit_compile",
    None,
    "Compile training steps with XLA, one compilation per length bucket (--nojit-compile: graph "
    "mode); a resumed run may switch it. Default: what --precision auto decides for the "
    "hardware (off with bfloat16 on CPUs, on otherwise).",
)
flags.DEFINE_enum(
    "precision",
    "auto",
    ["auto", "float32", "mixed_bfloat16", "mixed_float16"],
    "Training precision; auto (the default): the fastest for the hardware (kerasllm.hardware): "
    "mixed_bfloat16 on CPUs with AMX or AVX-512 BF16 and on bf16 GPUs, float32 on other CPUs. "
    "The published runs before r5 used float32 (docs/translation.md).",
)
flags.DEFINE_string(
    "init_from",
    None,
    "--train: start from this translation bundle's weights and tokenizer (a fresh optimizer "
    "and schedule) instead of random weights; its architecture must match the recipe's, except "
    "deeper --encoder-layers/--decoder-layers, which grow it (new layers start as the identity). "
    "Default: none (random weights).",
)
flags.DEFINE_integer(
    "seed", 0, "Seed of the training data order and initialization (vary it for a continuation)."
)
flags.DEFINE_integer("eval_every", 1000, "Validation loss, BLEU and chrF every N steps.")
flags.DEFINE_string(
    "bundle_weights",
    None,
    "--train: bundle this checkpoint instead of the last step: 'best' (validation BLEU), a "
    "step number, a checkpoint path, or 'average:N' (mean weights of the N newest checkpoints; "
    "the run keeps max(3, N)). Default: the last step.",
)


#: The flags this program defines, by their absl names (with underscores).
OWN_FLAGS = sorted(set(FLAGS) - _ABSL_FLAGS)
HELP_FLAGS = ("-h", "-?", "--help", "--helpshort")


def hyphenated(name: str) -> str:
    """A flag's documented spelling: `model_dir` -> `model-dir` (the `kerasllm` CLI's style)."""
    return name.replace("_", "-")


def normalize_flags(argv: list[str]) -> list[str]:
    """`argv` with every flag spelled as absl defines it: `--model-dir x` -> `--model_dir x`,
    `--no-jit-compile` and `--nojit-compile` -> `--nojit_compile`.

    The hyphenated spelling is the documented one (as in the `kerasllm` commands); the
    underscore spelling still works, so older commands run unchanged. A value that follows a
    flag (`--text --not-a-flag`) and everything after `--` are left as they are.

    Example:
    >>> normalize_flags(["translate.py", "--model-dir", "runs/a-b", "--no-jit-compile"])
    ['translate.py', '--model_dir', 'runs/a-b', '--nojit_compile']
    """
    result, expects_value = list(argv[:1]), False
    for index, arg in enumerate(argv[1:], start=1):
        if expects_value or not arg.startswith("--") or arg == "--":
            if arg == "--" and not expects_value:
                return result + list(argv[index:])
            result.append(arg)
            expects_value = False
            continue
        name, equals, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name.startswith("no_") and name[3:] in FLAGS and FLAGS[name[3:]].boolean:
            name = "no" + name[3:]
        result.append(f"--{name}{equals}{value}")
        negated = name.startswith("no") and name[2:] in FLAGS and FLAGS[name[2:]].boolean
        if not equals and not negated and name in FLAGS and not FLAGS[name].boolean:
            expects_value = True
    return result


def hyphenate_names(text: str) -> str:
    """`text` (absl's help or error message) with this program's flags spelled hyphenated:
    `--model_dir` -> `--model-dir`, `--[no]jit_compile` -> `--[no]jit-compile`."""
    for name in sorted(OWN_FLAGS, key=len, reverse=True):  # longest first: no partial match
        pattern = rf"--(\[no\]|no)?{re.escape(name)}\b"
        text = re.sub(pattern, lambda m, name=name: f"--{m.group(1) or ''}{hyphenated(name)}", text)
    return text


def help_text() -> str:
    """`--help`: the description and this program's flags (absl's list, with each default),
    every flag name in its documented, hyphenated spelling."""
    text = FLAGS.module_help(sys.argv[0] if sys.argv and sys.argv[0] else __file__)
    text = hyphenate_names(text)
    flags_list = text.split("\n", 2)[-1] if text.startswith("\n") else text
    return f"{__doc__.strip()}\n\nflags (each with its default):\n{flags_list.rstrip()}\n"


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, after `normalize_flags`; `--help` prints `help_text()`."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        sys.stdout.write(help_text())
        sys.exit(0)
    try:
        return FLAGS(normalize_flags(argv))
    except flags.Error as error:
        message = hyphenate_names(str(error))
        sys.stderr.write(f"FATAL Flags parsing error: {message}\nPass --help for the flags.\n")
        sys.exit(1)


def _translator(path: str):
    from kerasllm.text_to_text import TextToText

    if not Path(path, "bundle.json").exists():
        raise app.UsageError(
            f"No translation model at {path}. Train one with --train, or pass --model."
        )
    return TextToText(path)


def _piped_lines() -> list[str] | None:
    """The lines of a pipe or file on standard input, or None when there is none to read.

    A pipe or regular file is read even when empty (0 lines in, 0 lines out), while a terminal,
    a closed standard input or a device such as /dev/null (what cron, nohup and
    `subprocess.DEVNULL` give) means "no input": the built-in sentences are translated.

    The input is read as bytes and decoded as UTF-8 with undecodable bytes replaced by U+FFFD,
    whatever the locale says (a strict decoder raised UnicodeDecodeError on the first bad byte
    and no line came out); one warning on standard error says that bytes were replaced. Lines
    end at "\\n" only, as `wc -l` and line-oriented tools count them (`str.splitlines` would
    also split at form feeds, U+2028 and the like, so more lines would come out than went in);
    a "\\r" before it (Windows line ends) is dropped, and a last line without "\\n" counts.
    """
    stream = sys.stdin
    if stream is None or stream.isatty():
        return None
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):  # no file descriptor (e.g. replaced by a test harness)
        mode = None
    if mode is not None and not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)):
        return None
    data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        # U+FFFD already in the input is kept by both decodings; the difference is what was
        # replaced.
        replaced = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
        print(
            f"WARNING: standard input is not valid UTF-8 (first bad byte at offset "
            f"{error.start}); {replaced} undecodable byte sequence(s) replaced by U+FFFD.",
            file=sys.stderr,
            flush=True,
        )
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line starts no new one
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _one_line(text: str) -> str:
    """`text` with every line break (including "\\r", U+2028, U+0085) made a space, so that
    each translation is exactly one line of output."""
    return " ".join(text.splitlines())


def _decode_settings(beams: int | None = None) -> dict:
    """`TextToText.generate` settings from the flags (`beams` overrides --beams); the length penalty
    only where beam search uses it, so that evaluation reports record what applied."""
    beams = FLAGS.beams if beams is None else beams
    settings = dict(
        beams=beams, sampler=FLAGS.sampler, max_length=FLAGS.max_length, batch_size=FLAGS.batch_size
    )
    if beams > 1:
        settings["length_penalty"] = FLAGS.length_penalty
    return settings


def _evaluate(path: str) -> dict:
    """`{"test": ..., "validation": ...}` with the decode flags, then `"test, beam N"` and
    `"validation, beam N"` for `--eval-beams N`."""
    from translation import evaluate

    translator = _translator(path)
    settings = {"": _decode_settings()}
    if FLAGS.eval_beams > 1 and FLAGS.eval_beams != FLAGS.beams:
        label = f", beam {FLAGS.eval_beams}"
        if FLAGS.length_penalty != 1.0:
            label += f", length penalty {FLAGS.length_penalty:g}"
        settings[label] = _decode_settings(FLAGS.eval_beams)
    reports = {}
    for suffix, decode in settings.items():
        for split in ("test", "validation"):
            logging.info("Evaluating on the %s verses%s ...", split, suffix)
            reports[split + suffix] = evaluate(
                translator.generate, split, limit=FLAGS.eval_limit, **decode
            )
    return reports


def _train() -> None:
    from translation import Recipe, train, write_model_card

    from kerasllm.training.actions import LEARNING_CURVES_FILENAME

    recipe = Recipe(
        preset=FLAGS.preset,
        encoder_layers=FLAGS.encoder_layers or None,
        decoder_layers=FLAGS.decoder_layers or None,
        dropout=FLAGS.dropout,
        attention_dropout=FLAGS.attention_dropout,
        extra_sources=tuple(FLAGS.extra_sources),
        steps=FLAGS.steps,
        max_train_seconds=None
        if FLAGS.time_budget_minutes is None
        else 60 * FLAGS.time_budget_minutes,
        batch_size=FLAGS.batch_sentences,
        learning_rate=FLAGS.learning_rate,
        warmup_steps=FLAGS.warmup_steps,
        decay=FLAGS.decay,
        vocabulary_size=FLAGS.vocabulary_size,
        subword_alpha=FLAGS.subword_alpha,
        subword_nbest=FLAGS.subword_nbest,
        jit_compile="auto" if FLAGS.jit_compile is None else FLAGS.jit_compile,
        precision=FLAGS.precision,
        eval_every=FLAGS.eval_every,
        seed=FLAGS.seed,
        init_from=FLAGS.init_from,
    )
    logging.info("Recipe: %s", json.dumps(dataclasses.asdict(recipe)))
    command = "python examples/translate.py " + shlex.join(sys.argv[1:])
    bundle = train(recipe, FLAGS.model_dir, command=command, bundle_weights=FLAGS.bundle_weights)
    bundle_dir = Path(FLAGS.model_dir) / "bundle"
    reports = _evaluate(str(bundle_dir))
    # The trainer drew the run's learning curves into the model directory (when it evaluated
    # at least twice); the card shows them.
    curves = Path(FLAGS.model_dir) / LEARNING_CURVES_FILENAME
    write_model_card(bundle_dir, bundle.metadata, reports, command, learning_curves=curves)
    print(json.dumps({s: {k: r[k] for k in ("bleu", "chrf")} for s, r in reports.items()}))
    logging.info("Bundle and model card written to %s", bundle_dir)


def _update_card(model: str, reports: dict) -> None:
    from translation import write_model_card

    from kerasllm import bundle

    metadata = bundle.load_metadata(model)
    runs = metadata.get("training_runs") or [{}]
    write_model_card(model, metadata, reports, runs[-1].get("command") or "unknown")
    logging.info("Model card and eval.json of %s rewritten", model)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}; text goes in --text.")
    from kerasllm.cli import import_tensorflow_quietly

    # TensorFlow's C++ start-up lines (oneDNN, CUDA stub) ignore TF_CPP_MIN_LOG_LEVEL; the
    # command line's filter drops them here too, leaving this program's own absl logging alone.
    import_tensorflow_quietly(quiet_absl=False)
    logging.set_stderrthreshold("info")
    # Translations are French: under LANG=C or PYTHONIOENCODING=ascii, printing them raised
    # UnicodeEncodeError. A pipeline reading this program's output gets UTF-8 in every locale.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    if FLAGS.train:
        from kerasllm.cli import exit_when_interrupted

        # Ctrl-C or `kill`: the trainer saves a checkpoint, then the process ends at once.
        # A full disk or no readable checkpoint: one line and status 1, no traceback.
        exit_when_interrupted(_train, where=FLAGS.model_dir)
        return
    if FLAGS.update_card and not FLAGS.eval:
        raise app.UsageError("--update-card rewrites a card from --eval's figures; add --eval.")
    if FLAGS.eval:
        reports = _evaluate(FLAGS.model)
        text = json.dumps(reports, indent=2, ensure_ascii=False)
        if FLAGS.eval_output:
            Path(FLAGS.eval_output).write_text(text + "\n", encoding="utf-8")
        if FLAGS.update_card:
            _update_card(FLAGS.model, reports)
        print(text)
        return
    lines = None if FLAGS.text else _piped_lines()
    # The model is loaded even for an empty input, so that a wrong --model still fails.
    translator = _translator(FLAGS.model)
    if lines is not None:
        if lines:
            for translation in translator.generate(lines, **_decode_settings()):
                print(_one_line(translation), flush=True)
        return
    texts = FLAGS.text or EXAMPLES
    for source, translation in zip(texts, translator.generate(texts, **_decode_settings())):
        print(f"EN: {source}\nFR: {translation}\n")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
