"""Generation throughput: kerasllm `CausalLM.generate` vs KerasHub `LlamaCausalLM.generate`.

The same tiny Llama-family decoder in both (RMSNorm, rotary positions, SwiGLU, grouped-query
attention, untied output), KerasHub's weights copied into ours (same order and sizes; KerasHub
splits heads), so both generate the same tokens: the script checks that first. Greedy, 16-token
prompts, 112 new tokens, no early stop, compilation excluded, rounds alternating between the
models and the median round counted. KerasHub is timed with its default `compile()` and with
`jit_compile=True`.

    python benchmarks/generate_llama_throughput.py [--rounds 5] [--batch-sizes 1 8]
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from kerasllm.models import CausalLM, Decoder  # noqa: E402

CONFIG = dict(vocabulary_size=8000, num_layers=4, hidden_dim=256, intermediate_dim=688)
HEADS, KV_HEADS, THETA, EPSILON = 8, 4, 10000.0, 1e-5
PROMPT_LENGTH = 16
NEW_TOKENS = 112


def build_models():
    backbone = keras_hub.models.LlamaBackbone(
        **CONFIG,
        num_query_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        rope_max_wavelength=THETA,
        layer_norm_epsilon=EPSILON,
        dropout=0.0,
        tie_word_embeddings=False,
    )
    theirs = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    theirs.compile(sampler="greedy")  # KerasHub's default loop
    theirs_xla = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    theirs_xla.compile(sampler="greedy", jit_compile=True)
    ours = CausalLM(
        Decoder(
            **CONFIG,
            num_heads=HEADS,
            num_key_value_heads=KV_HEADS,
            max_sequence_length=PROMPT_LENGTH + NEW_TOKENS,
            position_embedding="rotary",
            rotary_max_wavelength=THETA,
            activation="swiglu",
            norm_first=True,
            norm_type="rms",
            layer_norm_epsilon=EPSILON,
            use_bias=False,
            embedding_norm=False,
            tie_embeddings=False,
            scale_tied_logits=False,
            dropout=0.0,
        )
    )
    pairs = list(zip(ours.backbone.weights, backbone.weights, strict=True))
    for mine, their in pairs:
        mine.assign(np.reshape(their.numpy(), mine.shape))
    return ours, theirs, theirs_xla


def runners(ours, theirs, theirs_xla, batch_size):
    prompts = np.random.default_rng(batch_size).integers(
        1, CONFIG["vocabulary_size"], size=(batch_size, PROMPT_LENGTH)
    )
    total = PROMPT_LENGTH + NEW_TOKENS
    padded = np.zeros((batch_size, total), "int32")
    padded[:, :PROMPT_LENGTH] = prompts
    mask = np.repeat(np.arange(total)[None, :] < PROMPT_LENGTH, batch_size, 0)

    def run_ours():
        return ours.generate(prompts, max_new_tokens=NEW_TOKENS, stop_token_ids=None)

    def keras_hub_runner(model):
        def run():
            inputs = {"token_ids": padded, "padding_mask": mask}
            return np.asarray(model.generate(inputs, stop_token_ids=None)["token_ids"])

        return run

    return {
        "ours": run_ours,
        "keras_hub": keras_hub_runner(theirs),
        "keras_hub_xla": keras_hub_runner(theirs_xla),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    ours, theirs, theirs_xla = build_models()
    print(
        f"parameters: ours {ours.count_params():,}, keras_hub {theirs.count_params():,}; "
        f"prompt {PROMPT_LENGTH}, new tokens {NEW_TOKENS}, greedy"
    )
    results = {}
    for batch_size in args.batch_sizes:
        fns = runners(ours, theirs, theirs_xla, batch_size)
        outputs = {name: fn() for name, fn in fns.items()}  # trace + compile
        same = (outputs["ours"] == outputs["keras_hub"])[:, PROMPT_LENGTH:].mean()
        print(f"batch {batch_size}: generated tokens identical to KerasHub's: {same:.1%}")
        times = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        tokens = batch_size * NEW_TOKENS
        row = {name: round(tokens / statistics.median(t), 1) for name, t in times.items()}
        row["ratio"] = round(row["ours"] / row["keras_hub"], 2)
        row["ratio_xla"] = round(row["ours"] / row["keras_hub_xla"], 2)
        results[f"batch_{batch_size}"] = row
        line = ", ".join(
            f"{name} {statistics.median(t) / NEW_TOKENS * 1e3:.2f} ms/step"
            for name, t in times.items()
        )
        print(f"batch {batch_size}: {line}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
