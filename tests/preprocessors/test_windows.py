"""`kerasllm.preprocessors.windows`: texts longer than the model, read in overlapping windows by
a `SequenceClassifier` (mean of the windows' probabilities) and a `TokenClassifier` (each word
from its max-context window), through `predict(..., stride=N)`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasllm.tokenizers as kt
from kerasllm.models import Encoder, SequenceClassifier, TokenClassifier
from kerasllm.preprocessors import (
    TextClassifierPreprocessor,
    TokenClassifierPreprocessor,
    windows,
)
from kerasllm.testing import tiny_config

VOCABULARY = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "eps",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lamda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
]
SEQUENCE_LENGTH = 8  # 6 words per window after [cls] and [sep]


@pytest.fixture(scope="module")
def tokenizer():
    tok = kt.train_wordpiece([" ".join(VOCABULARY)] * 20, vocabulary_size=80)
    # Every word is one token, so token windows are word windows (what the checks below use).
    for word in VOCABULARY:
        assert len(tok.tokenize(word).numpy()) == 1, word
    return tok


def _long_text(words: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(VOCABULARY, size=words))


def _encoder(tokenizer):
    return Encoder(**tiny_config(num_layers=1, vocabulary_size=tokenizer.vocabulary_size))


@pytest.fixture(scope="module")
def tagger(tokenizer):
    keras.utils.set_random_seed(0)
    pre = TokenClassifierPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH)
    return TokenClassifier(_encoder(tokenizer), num_classes=3, dropout=0.0, preprocessor=pre)


@pytest.fixture(scope="module")
def classifier(tokenizer):
    keras.utils.set_random_seed(1)
    pre = TextClassifierPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH)
    model = SequenceClassifier(
        _encoder(tokenizer), num_classes=3, dropout=0.0, pooling="mean", preprocessor=pre
    )
    # A random tiny model is near uniform; a larger head makes the windows' outputs differ.
    kernel = model.classifier.kernel
    kernel.assign(kernel * 200.0)
    return model


@pytest.mark.parametrize("length", [0, 1, 5, 6, 7, 12, 13, 31])
@pytest.mark.parametrize(("size", "stride"), [(6, 6), (6, 4), (6, 1), (1, 1)])
def test_windows_cover_every_token_with_starts_stride_apart(length, size, stride):
    spans = windows.window_spans(length, size, stride)
    covered = set()
    for i, (start, end) in enumerate(spans):
        assert 0 <= start <= end <= length and end - start <= size
        assert start == i * stride
        covered.update(range(start, end))
    assert covered == set(range(length))
    assert spans[-1][1] == length and (len(spans) == 1 or spans[-2][1] < length)


def test_window_errors_name_the_stride():
    with pytest.raises(ValueError, match="`stride` 7 is larger than the window"):
        windows.window_spans(10, 6, 7)
    with pytest.raises(ValueError, match="`stride` must be a positive integer"):
        windows.window_spans(10, 6, 0)
    with pytest.raises(ValueError, match="No window contains token 9"):
        windows.best_window([(0, 4)], 9)


def test_best_window_maximizes_the_smaller_side_of_context():
    spans = windows.window_spans(20, 6, 2)
    for position in range(20):
        chosen = windows.best_window(spans, position)
        start, end = spans[chosen]
        context = min(position - start, end - 1 - position)
        for other_start, other_end in spans:
            if other_start <= position < other_end:
                assert context >= min(position - other_start, other_end - 1 - position)


def test_tagger_reads_each_word_from_its_max_context_window(tagger):
    words = _long_text(20).split()
    text = " ".join(words)
    merged = tagger.predict([text], stride=2)
    assert merged.shape == (1, 20, 3) and not np.isnan(merged).any()
    # Without windows, the words past the 6 that fit are not classified.
    assert np.isnan(tagger.predict([text], verbose=0)[0, 6:20]).all()
    spans = windows.window_spans(20, 6, 2)
    pieces = [" ".join(words[s:e]) for s, e in spans]
    by_window = tagger.predict(pieces, verbose=0)
    for i in range(20):
        chosen = windows.best_window(spans, i)
        np.testing.assert_allclose(
            merged[0, i], by_window[chosen, i - spans[chosen][0]], rtol=1e-5, atol=1e-5
        )


def test_tagger_windows_equal_plain_predict_on_short_texts_and_keep_one_row_per_text(tagger):
    texts = ["alpha beta gamma", "", _long_text(9, seed=3), "delta"]
    merged = tagger.predict(texts, stride=3, batch_size=2)
    assert merged.shape == (4, 9, 3)
    plain = tagger.predict(texts, verbose=0)
    for row, count in ((0, 3), (3, 1)):
        np.testing.assert_allclose(merged[row, :count], plain[row, :count], rtol=1e-5, atol=1e-5)
        assert np.isnan(merged[row, count:]).all()
    assert np.isnan(merged[1]).all()  # no word, nothing classified
    assert not np.isnan(merged[2]).any()
    # Word lists are windowed the same way.
    from_lists = tagger.predict([t.split() for t in texts if t], stride=3)
    np.testing.assert_allclose(from_lists[1], merged[2], rtol=1e-5, atol=1e-5)
    assert tagger.predict([], stride=3).shape[0] == 0


def test_classifier_averages_the_probabilities_of_the_windows(classifier):
    words = _long_text(15, seed=2).split()
    texts = [" ".join(words), "alpha beta"]
    merged = classifier.predict(texts, stride=4)
    assert merged.shape == (2, 3)
    spans = windows.window_spans(15, 6, 4)
    assert len(spans) == 4
    pieces = classifier.predict([" ".join(words[s:e]) for s, e in spans], verbose=0)
    probabilities = np.exp(pieces - pieces.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(merged[0]), probabilities.mean(0), rtol=1e-5, atol=1e-6)
    # Not the max or the first window's: the mean is what is returned.
    assert np.ptp(probabilities[:, 0]) > 0.05
    assert not np.allclose(np.exp(merged[0]), probabilities[0], atol=1e-3)
    maxima = probabilities.max(0) / probabilities.max(0).sum()
    assert not np.allclose(np.exp(merged[0]), maxima, atol=1e-3)
    # A text that fits gives the plain prediction's probabilities.
    plain = classifier.predict(["alpha beta"], verbose=0)[0]
    plain = np.exp(plain - plain.max()) / np.exp(plain - plain.max()).sum()
    np.testing.assert_allclose(np.exp(merged[1]), plain, rtol=1e-5, atol=1e-6)
    assert classifier.predict(["", "pi"], stride=6).shape == (2, 3)
    assert classifier.predict([], stride=6).shape == (0, 3)


def test_stride_errors(classifier, tagger):
    with pytest.raises(ValueError, match="`stride` 7 is larger than the window"):
        classifier.predict(["alpha"], stride=7)
    with pytest.raises(ValueError, match="sentence pairs"):
        classifier.predict((["alpha"], ["beta"]), stride=2)
    with pytest.raises(TypeError, match="does not take `steps`"):
        tagger.predict(["alpha"], stride=2, steps=1)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        tagger.predict(["alpha"], stride=2, batch_size=0)
