"""`kerasllm.metrics`: sacrebleu's corpus BLEU and chrF, with clear errors on bad input."""

import pytest
import sacrebleu

from kerasllm import metrics

REFERENCES = ["Le chat est sur le tapis.", "Il pleut."]


def test_score_matches_sacrebleu_on_identity_and_rejects_misaligned():
    perfect = metrics.score(REFERENCES, REFERENCES)
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0
    assert "13a" in perfect["bleu_signature"] and "case:mixed" in perfect["bleu_signature"]
    assert metrics.score(["Il neige.", "Bonjour."], REFERENCES)["bleu"] < 20
    with pytest.raises(ValueError, match="must match"):
        metrics.score(["a"], REFERENCES)


def test_bleu_and_chrf_are_sacrebleus_corpus_scores():
    hypotheses = ["Le chat dort sur le tapis.", "Il pleut fort."]
    want_bleu = sacrebleu.corpus_bleu(hypotheses, [REFERENCES]).score
    want_chrf = sacrebleu.corpus_chrf(hypotheses, [REFERENCES]).score
    assert metrics.bleu(hypotheses, REFERENCES) == round(want_bleu, 2)
    assert metrics.chrf(hypotheses, REFERENCES) == round(want_chrf, 2)
    assert 0 < metrics.bleu(hypotheses, REFERENCES) < 100


@pytest.mark.parametrize(
    ("hypotheses", "references", "message"),
    [
        # A str is a sequence of characters: sacrebleu would score each character as a text.
        ("Il pleut.", ["Il pleut."], "`hypotheses` must be a list of str; got str"),
        (["Il pleut."], "Il pleut.", "`references` must be a list of str; got str"),
        ([None], ["Il pleut."], r"`hypotheses\[0\]` must be a str; got NoneType"),
        (["Il pleut."], [b"Il pleut."], r"`references\[0\]` must be a str; got bytes"),
    ],
)
def test_score_refuses_what_is_not_a_list_of_str(hypotheses, references, message):
    with pytest.raises(TypeError, match=message):
        metrics.score(hypotheses, references)
