"""Imported checkpoints in the rest of kerasllm: an imported T5 fine-tuned with LoRA through
the `Trainer` (the loss falls, only the adapters change), and an imported decoder generating
with every sampler over the KV cache (the SavedModel export and the imported Llama's LoRA run
are in `test_hf_export.py`, slow)."""

import numpy as np
import pytest
from hf_parity import FIXTURES, reference

from kerasllm import zoo
from kerasllm.generation import SAMPLERS, generate


def test_imported_t5_fine_tunes_with_lora_through_the_trainer(tmp_path):
    from kerasllm.data import seq2seq_dataset
    from kerasllm.training import Trainer, TrainerConfig

    folder = FIXTURES / "hf_t5_v1_1"
    tokenizer = zoo.get_tokenizer(folder)
    pairs = [
        ("The lazy fox reads tokens.", "Hello again, world."),
        ("Hello world!", "A tiny model."),
    ]
    data, _ = seq2seq_dataset(
        pairs * 2, tokenizer, source_length=16, target_length=12, batch_size=4, shuffle=False
    )
    config = TrainerConfig(str(tmp_path), steps=6, lora_rank=2, learning_rate=3e-2, verbose=0)
    trainer = Trainer(lambda: zoo.get(folder, dropout=0.0), "seq2seq", config)
    model = trainer.model
    frozen = {v.path: v.numpy() for v in model.weights if not v.trainable}
    adapters = {v.path: v.numpy() for v in model.trainable_weights}
    assert frozen and adapters and all("lora" in path for path in adapters)
    before = trainer.evaluate(data)["loss"]
    trainer.fit(data)
    after = trainer.evaluate(data)["loss"]
    assert after < before - 0.1, (before, after)
    for variable in model.weights:
        if variable.path in frozen:
            np.testing.assert_array_equal(variable.numpy(), frozen[variable.path], variable.path)
    assert any(
        (v.numpy() != adapters[v.path]).any() for v in model.trainable_weights if "lora" in v.path
    )


@pytest.mark.slow  # ~40 s on 2 cores: each sampler compiles its own decoding loop
def test_imported_decoder_generates_with_every_sampler():
    model = zoo.get(FIXTURES / "hf_llama")
    ref = reference("hf_llama")
    prompts = [ref["ids_0"].tolist(), ref["ids_1"].tolist()]
    vocabulary = model.backbone.vocabulary_size
    outputs = {}
    for name in sorted(SAMPLERS):
        out = generate(model, prompts, max_new_tokens=4, sampler=name, seed=0, stop_token_ids=None)
        out = np.asarray(out)
        for i, prompt in enumerate(prompts):
            assert out[i, : len(prompt)].tolist() == prompt, name
            new = out[i, len(prompt) : len(prompt) + 4]
            assert len(new) == 4 and ((new >= 0) & (new < vocabulary)).all(), name
        outputs[name] = out
    # Greedy is transformers' greedy continuation.
    greedy = outputs["greedy"]
    assert greedy[0, len(prompts[0]) : len(prompts[0]) + 4].tolist() == ref["greedy_0"][:4].tolist()
    # A seeded sampler repeats itself.
    again = generate(model, prompts, max_new_tokens=4, sampler="top_k", seed=0, stop_token_ids=None)
    np.testing.assert_array_equal(np.asarray(again), outputs["top_k"])


@pytest.mark.slow
def test_imported_decoder_generates_text_with_every_sampler():
    model = zoo.get(FIXTURES / "hf_llama_spm")
    for name in sorted(SAMPLERS):
        text = model.generate("Hello world", max_new_tokens=3, sampler=name, seed=0)
        assert isinstance(text, str) and text.startswith("Hello world"), name
