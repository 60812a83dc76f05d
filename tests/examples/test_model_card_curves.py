"""The translation model card embeds the learning curves the training run drew (issue 25): the
picture is copied into the bundle next to the card, atomically, and linked relatively."""

import re

from card_helpers import parse_card

from kerasllm.training.actions import LEARNING_CURVES_FILENAME, plot_learning_curves

REPORTS = {
    "test": {"verses": 3, "bleu": 1.5, "chrf": 2.25, "translate_seconds": 0.1,
             "bleu_signature": "nrefs:1|case:mixed|tok:13a", "examples": []},
}  # fmt: skip
METADATA = {
    "steps": 4,
    "training_runs": [{"command": "x", "steps": [0, 4], "seconds": 1.0}],
    "train_seconds_total": 1.0,
}
IMAGE = re.compile(r"^!\[[^\]]+\]\(([^)]+)\)$", re.MULTILINE)


def draw(path):
    points = [{"step": 2, "loss": 3.0, "val_loss": 3.1, "val_bleu": 1.0},
              {"step": 4, "loss": 2.0, "val_loss": 2.5, "val_bleu": 2.0}]  # fmt: skip
    plot_learning_curves(points, title="run").savefig(path, format="png", dpi=30)
    return path


def test_the_card_embeds_the_runs_learning_curves(tmp_path):
    from translation import write_model_card

    model_dir, bundle = tmp_path / "run", tmp_path / "run" / "bundle"
    bundle.mkdir(parents=True)
    source = draw(model_dir / LEARNING_CURVES_FILENAME)
    card = write_model_card(bundle, METADATA, REPORTS, "x", learning_curves=source)
    text = card.read_text()
    [link] = IMAGE.findall(text)
    assert link == LEARNING_CURVES_FILENAME  # relative: the card and picture travel together
    assert (card.parent / link).read_bytes() == source.read_bytes()
    # No temporary file is left behind.
    written = sorted(p.name for p in bundle.iterdir())
    assert written == ["MODEL_CARD.md", "eval.json", LEARNING_CURVES_FILENAME]
    # The card still parses: the picture is no field of the Training section.
    assert parse_card(text)["training"]["Steps"].startswith("4")

    # --update-card rewrites the card of a bundle without its model directory: the picture
    # copied before stays embedded.
    source.unlink()
    text = write_model_card(bundle, METADATA, REPORTS, "x").read_text()
    assert IMAGE.findall(text) == [LEARNING_CURVES_FILENAME]


def test_a_run_without_curves_gets_no_picture(tmp_path):
    from translation import write_model_card

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    missing = tmp_path / LEARNING_CURVES_FILENAME  # one evaluation: nothing was drawn
    text = write_model_card(bundle, METADATA, REPORTS, "x", learning_curves=missing).read_text()
    assert not IMAGE.findall(text) and "learning_curves" not in text
    assert not (bundle / LEARNING_CURVES_FILENAME).exists()
