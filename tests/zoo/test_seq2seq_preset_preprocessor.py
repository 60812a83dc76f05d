"""A seq2seq preset with one tokenizer per side gets a preprocessor built from both."""

import numpy as np

from kerasllm import bundle, zoo
from kerasllm.models import EncoderDecoder, Seq2SeqLM
from kerasllm.testing import tiny_config
from kerasllm.tokenizers import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The same size (a Seq2SeqLM has one vocabulary), different pieces at the same ids.
SOURCE = WordPieceTokenizer([*SPECIALS, "good", "film", "dull"])
TARGET = WordPieceTokenizer([*SPECIALS, "bon", "film", "ennuyeux"])


def test_seq2seq_preset_attaches_a_preprocessor_with_both_tokenizers(tmp_path):
    model = Seq2SeqLM(
        EncoderDecoder(**tiny_config(num_layers=1, vocabulary_size=SOURCE.vocabulary_size))
    )
    path = zoo.save_preset(model, tmp_path / "translator", {"source": SOURCE, "target": TARGET})
    assert zoo.get_preset(path).tokenizer["roles"] == {
        "source": "tokenizers/source",
        "target": "tokenizers/target",
    }
    for loaded in (zoo.get(path), zoo.get(path, task="seq2seq_lm")):
        preprocessor = loaded.preprocessor
        # Sources are tokenized with the source vocabulary...
        x = preprocessor.generate_preprocess(["good film"])
        assert x["encoder_token_ids"].numpy().tolist() == [[5, 6]]
        # ...and generated ids read with the target one (the source alone read "good film").
        text = preprocessor.generate_postprocess(np.array([[5, 6, 3]], np.int32))
        assert [t.decode() for t in text.numpy()] == ["bon film"]
    # The same sides `bundle.load` attaches from the same folder.
    for preprocessor in (bundle.load(path).model.preprocessor, zoo.get(path).preprocessor):
        assert preprocessor.tokenizer.tokenize(["good"]).to_list() == [[5]]
        assert preprocessor.target_tokenizer.tokenize(["bon"]).to_list() == [[5]]
