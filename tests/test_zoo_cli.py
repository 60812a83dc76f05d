import json

from kerasllm.cli import main


def test_zoo_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "bert_small" in out and "28,763,648" in out


def test_zoo_show(capsys):
    assert main(["zoo", "show", "gpt_base"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["num_params"] == 124_439_808
    assert shown["config"]["num_layers"] == 12
    assert shown["weights"] is None and shown["weights_loader"] is None  # random init


def test_zoo_show_names_where_pretrained_weights_come_from(capsys):
    assert main(["zoo", "show", "minilm_l6"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["weights_loader"] == "kerasllm.zoo.pretrained:load_minilm_l6_weights"


def test_zoo_show_unknown_is_a_clear_error(capsys):
    assert main(["zoo", "show", "gpt_bas"]) == 2
    assert "Did you mean 'gpt_base'" in capsys.readouterr().err
