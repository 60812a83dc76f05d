"""Task heads: behaviour the harness (test_harness_models.py) does not check: decoder pooling
on the last real token, clear errors on wrong backbones and class counts."""

import numpy as np
import pytest

from kerasllm.models import (
    CausalLM,
    Decoder,
    Encoder,
    SequenceClassifier,
)
from kerasllm.testing import decoder_inputs, tiny_config


def test_decoder_classifier_uses_last_real_token():
    model = SequenceClassifier(Decoder(**tiny_config()), num_classes=2)
    inputs = decoder_inputs(lengths=[8, 3])
    base = model(inputs).numpy()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][1, 3:] = 5  # padding content must not matter
    np.testing.assert_allclose(model(changed), base, atol=1e-5)


def test_task_rejects_wrong_backbone():
    with pytest.raises(ValueError, match="CausalLM needs a Decoder backbone"):
        CausalLM(Encoder(**tiny_config()))
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(Encoder(**tiny_config()), num_classes=1)
