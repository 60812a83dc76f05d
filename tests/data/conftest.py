import random

import pytest

import kerasllm.tokenizers as kt


def synthetic_pairs(count: int = 313, seed: int = 0) -> list[tuple[str, str]]:
    """`count` (source, target) sentence pairs of made-up words, 2 to 60 words long (mostly
    short, a long tail, like verses), the target a word-by-word "translation" of the source
    with an extra word now and then. Enough distinct words for an 800-piece vocabulary; no
    data package needed."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(1500)})
    lexicon = {word: word[::-1] + rng.choice(["", "e", "s", "ent"]) for word in words}
    pairs = []
    for _ in range(count):
        length = min(60, 2 + int(rng.expovariate(1 / 12)))
        source = rng.choices(words, k=length)
        target = [lexicon[word] for word in source]
        if rng.random() < 0.3:
            target.insert(rng.randrange(len(target)), "le")
        pairs.append(
            (" ".join(source).capitalize() + ".", " ".join(target).capitalize() + ", dit-il.")
        )
    return pairs


@pytest.fixture(scope="session")
def text_pairs():
    return synthetic_pairs()


@pytest.fixture(scope="session")
def sp_tokenizer(text_pairs):
    texts = [t for pair in text_pairs for t in pair]
    return kt.train_sentencepiece(texts, 800)


@pytest.fixture(scope="session")
def wp_tokenizer(text_pairs):
    return kt.train_wordpiece([s for s, _ in text_pairs], 800)


@pytest.fixture(scope="session")
def toy_wordpiece():
    vocab = ["[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]", "a", "b", "c", "play", "##ing", "x"]
    return kt.WordPieceTokenizer(vocab)
