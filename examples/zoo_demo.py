"""Builds a few zoo presets and runs each on a short batch: a smoke test of the install.

python examples/zoo_demo.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from kerasllm import zoo  # noqa: E402


def main() -> None:
    ids = np.random.default_rng(0).integers(1, 1000, size=(2, 16)).astype("int32")
    mask = np.ones_like(ids)
    for name, task in (("bert_tiny", "masked_lm"), ("gpt_tiny", "causal_lm")):
        model = zoo.get(name, task=task)
        inputs = {"token_ids": ids, "padding_mask": mask}
        if task == "masked_lm":
            inputs["mask_positions"] = np.array([[1, 5], [2, 9]], "int32")
        logits = model(inputs)
        print(f"{name:>10} {task:<10} params={model.count_params():>11,} logits={logits.shape}")


if __name__ == "__main__":
    main()
