"""`kerasllm generate`: a causal or seq2seq language model's text for each input, as JSON Lines."""

from __future__ import annotations

from kerasllm.cli import _inference

DESCRIPTION = """\
Generate text with a causal LM (continues each prompt) or a seq2seq LM (e.g. translates each
source): one input per line in, one JSON object per line out, {"text": input, "generated":
output}, in the same order; the same as `model.generate(texts, ...)` in Python. Inputs come
from --text (repeatable), --input FILE, or standard input; results go to standard output (or
--output), logs and progress to standard error.

A causal LM's output starts with the prompt unless --strip-prompt is given. Sampling with
--seed is reproducible for the same --batch-size (each batch is one `generate` call with that
seed). For classifiers and taggers use `kerasllm predict`.
"""

EPILOG = """\
examples:
  kerasllm generate --model translate_en_fr --text "The cat sleeps."
  kerasllm generate --model translate_en_fr --input english.txt --sampler beam --num-beams 4
  echo "Once upon a time" | kerasllm generate --model runs/lm/bundle --sampler top_p \\
      --top-p 0.9 --temperature 0.8 --seed 1 --max-new-tokens 40
"""

SAMPLERS = ("greedy", "beam", "random", "top_k", "top_p")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="Text from a causal LM (continuations) or a seq2seq LM (e.g. translations), as "
        "JSON Lines.",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _inference.add_model_argument(parser)
    _inference.add_input_arguments(parser)
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=32,
        metavar="N",
        help="Most tokens generated per input.",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="greedy",
        help="How the next token is chosen: the most likely (greedy), beam search (beam, "
        "--num-beams wide), or sampled from all tokens (random), the --top-k most likely "
        "(top_k) or the smallest set holding --top-p of the probability (top_p).",
    )
    parser.add_argument(
        "--num-beams", type=int, default=4, metavar="N", help="Beam width (--sampler beam)."
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="Divides the logits before sampling (random, top_k, top_p); < 1 sharpens.",
    )
    parser.add_argument(
        "--top-k", type=int, default=5, metavar="K", help="Tokens sampled from (--sampler top_k)."
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=0.9,
        metavar="P",
        help="Probability mass sampled from (--sampler top_p).",
    )
    parser.add_argument(
        "--no-repeat-ngram-size",
        type=int,
        default=0,
        metavar="N",
        help="Never produce an N-gram an output already holds (any sampler; 0: off). "
        "Stops the repetition loops of greedy and beam decoding, e.g. 3 for summaries.",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="Seed of the sampling samplers. Default: none (different outputs on each run).",
    )
    parser.add_argument(
        "--strip-prompt",
        action="store_true",
        help="Causal LM: output only the generated continuation, without the prompt.",
    )
    parser.set_defaults(func=_generate)


def build_sampler(args):
    """The `kerasllm.generation.Sampler` the flags describe; a bad value is reported with its
    flag (the sampler's own message names its argument, which the user did not type)."""
    from kerasllm import generation

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be a positive integer; got {args.max_new_tokens}.")
    if args.no_repeat_ngram_size < 0:
        raise ValueError(
            f"--no-repeat-ngram-size must be 0 (off) or positive; got {args.no_repeat_ngram_size}."
        )
    constraints = {"no_repeat_ngram_size": args.no_repeat_ngram_size}
    if args.sampler == "beam":
        if args.num_beams < 1:
            raise ValueError(f"--num-beams must be a positive integer; got {args.num_beams}.")
        return generation.BeamSampler(num_beams=args.num_beams, **constraints)
    if args.sampler == "greedy":
        return generation.GreedySampler(**constraints)
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be a positive number; got {args.temperature}.")
    if args.sampler == "random":
        return generation.RandomSampler(temperature=args.temperature, **constraints)
    if args.sampler == "top_k":
        if args.top_k < 1:
            raise ValueError(f"--top-k must be a positive integer; got {args.top_k}.")
        return generation.TopKSampler(k=args.top_k, temperature=args.temperature, **constraints)
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1]; got {args.top_p}.")
    return generation.TopPSampler(p=args.top_p, temperature=args.temperature, **constraints)


def generator(loaded: _inference.Loaded, name: str, args, sampler):
    """`run(texts) -> [record, ...]`: one `model.generate` call per batch.

    Raises:
        ValueError: the model is not a causal or seq2seq LM (naming the command that serves
            it), or --strip-prompt with a seq2seq LM.
    """
    from kerasllm import models

    model = loaded.model
    if not isinstance(model, (models.CausalLM, models.Seq2SeqLM)):
        hint = (
            " use `kerasllm predict` for it."
            if isinstance(model, (models.SequenceClassifier, models.TokenClassifier))
            else ""
        )
        raise ValueError(
            f"--model {name!r} is a {type(model).__name__}; `kerasllm generate` runs a CausalLM "
            f"or a Seq2SeqLM.{hint}"
        )
    options = {"max_new_tokens": args.max_new_tokens, "sampler": sampler, "seed": args.seed}
    if getattr(args, "strip_prompt", False):
        if not isinstance(model, models.CausalLM):
            raise ValueError(
                "--strip-prompt applies to a causal LM only (a seq2seq LM's output never "
                "holds its source)."
            )
        options["strip_prompt"] = True

    def run(texts: list[str]) -> list[dict]:
        outputs = model.generate(texts, **options)
        return [{"text": t, "generated": o} for t, o in zip(texts, outputs)]

    return run


def _generate(args) -> int:
    batch_size = _inference.check_batch_size(args)
    sampler = build_sampler(args)
    texts = _inference.read_texts(args)
    loaded = _inference.load_model(args.model, "generate")
    run = generator(loaded, args.model, args, sampler)
    with _inference.output_stream(args.output) as out:
        _inference.in_batches(
            texts, batch_size, run, lambda record: _inference.write_json_line(out, record)
        )
    return 0
