"""`MaskedLM(next_sentence_prediction=True)`: outputs, configs saved before the option existed,
and the joint loss of `objectives.MaskedLM` on its outputs."""

import numpy as np
import pytest

from kerasllm.models import Encoder, MaskedLM
from kerasllm.testing import encoder_inputs, tiny_config
from kerasllm.training import objectives

INPUTS = {**encoder_inputs(lengths=[8, 5]), "mask_positions": np.array([[1, 6], [0, 3]], "int32")}


def test_a_config_without_the_option_loads_as_a_plain_masked_lm():
    config = MaskedLM(Encoder(**tiny_config())).get_config()
    assert config["next_sentence_prediction"] is False
    del config["next_sentence_prediction"]  # as saved before the option existed
    model = MaskedLM.from_config(config)
    assert model.nsp_head is None and tuple(model(INPUTS).shape) == (2, 2, 97)


def test_the_next_sentence_head_reads_the_pooled_output_and_feeds_the_objective():
    model = MaskedLM(Encoder(**tiny_config()), next_sentence_prediction=True)
    outputs = model(INPUTS)
    assert [v.path for v in model.nsp_head.weights] == ["nsp/kernel", "nsp/bias"]
    # The head is one dense layer on the encoder's pooled output (BERT's pooler on [CLS]).
    pooled = model.backbone(INPUTS)["pooled_output"]
    np.testing.assert_allclose(outputs["nsp"], model.nsp_head(pooled), rtol=1e-5, atol=1e-6)
    objective = objectives.MaskedLM(next_sentence_prediction=True)
    labels = {"mask_ids": np.array([[5, 9], [7, 0]]), "next_sentence_label": np.array([1, 0])}
    weights = np.array([[1.0, 1.0], [1.0, 0.0]], "float32")
    mlm_sum, nsp_sum = objective.loss_sums(labels, outputs, weights)
    assert [float(n) for n in objective.normalizers(labels, weights)] == [3.0, 2.0]
    assert float(nsp_sum) == pytest.approx(2 * np.log(2), abs=0.2)  # near-uniform at init
    assert "nsp_accuracy" in objective.results(objective.metric_sums(labels, outputs, weights))


def test_the_option_must_be_a_bool():
    with pytest.raises(TypeError, match="next_sentence_prediction"):
        MaskedLM(Encoder(**tiny_config()), next_sentence_prediction="yes")
