"""End to end on imported Hugging Face checkpoints: exported to a SavedModel whose signatures,
loaded in a fresh process with only TensorFlow, reproduce transformers' greedy continuations;
fine-tuned with LoRA through the `Trainer` (only the adapters change).

Slow (tracing and saving take ~25 s per model on 2 cores).
"""

import json
import subprocess
import sys
import textwrap

import pytest
from hf_parity import FIXTURES, reference

from kerasllm import bundle, zoo
from kerasllm.export import export

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter: no kerasllm, no Keras model, only the SavedModel.
SERVE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (the tokenizers' ops)

    path, rows, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    served = tf.saved_model.load(path)
    length = max(map(len, rows))
    ids = np.zeros((len(rows), length), "int32")
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    out = served.signatures["generate_token_ids"](
        token_ids=tf.constant(ids), padding_mask=tf.constant(mask),
        max_new_tokens=tf.constant(steps),
    )
    text = served.signatures["serving_default"](prompt=tf.constant(["Hello world"]))
    print(json.dumps({
        "ids": out["token_ids"].numpy()[:, :steps].tolist(),
        "text": [t.decode("utf-8", "replace") for t in text["completion"].numpy()],
    }))
    """
)


@pytest.mark.parametrize("name, swap", [("hf_gpt2", 319), ("hf_llama", 0)])
def test_exported_causal_lm_serves_transformers_greedy_from_a_fresh_process(tmp_path, name, swap):
    folder = FIXTURES / name
    model = zoo.get(folder)
    path = export(bundle.Bundle(model, {"text": zoo.get_tokenizer(folder)}), tmp_path / name)
    ref = reference(name, swap)
    rows = [ref[f"ids_{i}"].tolist() for i in range(len(ref["sentences"]))]
    steps = len(ref["greedy_0"])
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(path), json.dumps(rows), str(steps)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["ids"] == [ref[f"greedy_{i}"].tolist() for i in range(len(rows))]
    assert len(served["text"]) == 1 and isinstance(served["text"][0], str)


def test_imported_llama_fine_tunes_with_lora_through_the_trainer(tmp_path):
    from kerasllm.data import causal_lm_dataset
    from kerasllm.testing import synthetic_text_samples
    from kerasllm.training import Trainer, TrainerConfig

    folder = FIXTURES / "hf_llama"
    tokenizer = zoo.get_tokenizer(folder)
    texts = synthetic_text_samples(count=8)["english"]
    data, _ = causal_lm_dataset(texts, tokenizer, sequence_length=32, batch_size=4, seed=0)
    trainer = Trainer(
        lambda: zoo.get(folder),
        "causal_lm",
        TrainerConfig(str(tmp_path), steps=4, lora_rank=2, learning_rate=1e-2, verbose=0),
        strategy="one_device",
    )
    model = trainer.model
    frozen = {v.path: v.numpy() for v in model.weights if not v.trainable}
    adapters = {v.path: v.numpy() for v in model.trainable_weights}
    assert frozen and adapters and all("lora" in path for path in adapters)
    trainer.fit(data)
    for variable in model.weights:
        if variable.path in frozen:
            assert (variable.numpy() == frozen[variable.path]).all()
    changed = [
        v.path
        for v in model.trainable_weights
        if v.path.endswith("lora_kernel_b") and (v.numpy() != adapters[v.path]).any()
    ]
    assert len(changed) == 2 * model.backbone.num_layers  # query and value of every layer
