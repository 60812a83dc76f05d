"""The search space is checked before anything is built."""

import keras_tuner
import pytest

from kerasllm.tuning import SearchSpace, ZooHyperModel


def test_no_hidden_size_divisible_by_any_head_count_fails_fast():
    space = SearchSpace(num_heads=[3, 5], hidden_dim=[16, 32])
    with pytest.raises(
        ValueError,
        match=r"No valid \(num_heads, hidden_dim\).*num_heads=5 with "
        r"hidden_dim=32.*divisible",
    ):
        ZooHyperModel("bert_tiny", "classification", space, vocabulary_size=100, num_classes=2)


def test_out_of_range_values_name_the_offender():
    with pytest.raises(ValueError, match="dropout.*1.5"):
        SearchSpace(dropout=[0.1, 1.5]).validate("bert_tiny")
    with pytest.raises(ValueError, match="num_layers.*0"):
        SearchSpace(num_layers=[0, 2]).validate("bert_tiny")
    with pytest.raises(ValueError, match="Unknown search-space.*num_head"):
        SearchSpace.from_dict({"num_head": [2]})


def test_each_head_count_only_draws_compatible_hidden_sizes():
    space = SearchSpace(num_heads=[2, 3], hidden_dim=[16, 24, 32])
    assert space.validate("bert_tiny") == {2: [16, 24, 32], 3: [24]}
    hypermodel = ZooHyperModel(
        "bert_tiny", "classification", space, vocabulary_size=100, num_classes=2
    )
    # The 3-head branch offers only 24; a hand-set pair outside it is refused, never built.
    hp = keras_tuner.HyperParameters()
    hp.values.update(num_heads=3, hidden_dim=32)
    with pytest.raises(ValueError, match="hidden_dim=32 is not valid with num_heads=3"):
        hypermodel.build(hp)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    oracle_values = [h for h in hp.space if h.name == "hidden_dim"]
    assert [h.values for h in oracle_values] == [[16, 24, 32], [24]]
    hp.values.update(num_heads=3, hidden_dim=24)
    model = hypermodel.build(hp)
    assert (model.backbone.num_heads, model.backbone.hidden_dim) == (3, 24)
