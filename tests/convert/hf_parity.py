"""Shared checks of the Hugging Face decoder parity tests (`test_hf_gpt2.py`, `test_hf_llama.py`).

The fixtures (`tests/fixtures/hf_<name>/` and `hf_<name>_reference.npz`) were written by
`scripts/make_hf_reference.py` with torch 2.13.0 (CPU) and transformers 5.25.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasllm.convert.hf_decoder import swap_ids
from kerasllm.generation import generate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOLERANCE = 1e-4


def reference(name: str, swap: int = 0) -> dict:
    """The fixture's reference with every Hugging Face id (and logit column) in kerasllm's
    numbering: ids 0 and `swap` exchanged (see `kerasllm.convert.hf_decoder.pad_swap`)."""
    with np.load(FIXTURES / f"{name}_reference.npz") as data:
        ref = {key: data[key] for key in data.files}
    for key, value in ref.items():
        if key.startswith(("ids_", "greedy_")):
            ref[key] = swap_ids(value, swap)
        elif key.startswith("logits_"):
            ref[key] = value[:, swap_ids(np.arange(value.shape[1]), swap)]
    return ref


def check_logits(model, ref: dict) -> None:
    """Each sentence's logits (one unpadded row each, as the reference ran them), then all of
    them in one right-padded batch: padding must not change the real positions."""
    rows = [ref[f"ids_{i}"] for i in range(len(ref["sentences"]))]
    for i, ids in enumerate(rows):
        inputs = {"token_ids": ids[None], "padding_mask": np.ones((1, len(ids)), "int32")}
        logits = np.asarray(model(inputs))[0]
        np.testing.assert_allclose(logits, ref[f"logits_{i}"], atol=TOLERANCE, rtol=0)
    length = max(map(len, rows))
    token_ids = np.zeros((len(rows), length), "int32")
    mask = np.zeros_like(token_ids)
    for i, ids in enumerate(rows):
        token_ids[i, : len(ids)], mask[i, : len(ids)] = ids, 1
    batch = np.asarray(model({"token_ids": token_ids, "padding_mask": mask}))
    for i, ids in enumerate(rows):
        np.testing.assert_allclose(batch[i, : len(ids)], ref[f"logits_{i}"], atol=TOLERANCE, rtol=0)


def check_token_ids(tokenizer, ref: dict) -> None:
    sentences = [str(s) for s in ref["sentences"]]
    ours = tokenizer.tokenize(sentences).to_list()
    assert ours == [ref[f"ids_{i}"].tolist() for i in range(len(sentences))]
    # Byte-level BPE is lossless: the ids decode back to the text.
    assert [t.decode() for t in tokenizer.detokenize(ours).numpy()] == sentences


def check_greedy(model, ref: dict) -> None:
    """Greedy continuations of all prompts in one batch (prompts of different lengths)."""
    prompts = [ref[f"ids_{i}"].tolist() for i in range(len(ref["sentences"]))]
    steps = len(ref["greedy_0"])
    out = generate(model, prompts, max_new_tokens=steps, stop_token_ids=None)
    for i, prompt in enumerate(prompts):
        assert out[i, : len(prompt)].tolist() == prompt
        assert out[i, len(prompt) : len(prompt) + steps].tolist() == ref[f"greedy_{i}"].tolist()
