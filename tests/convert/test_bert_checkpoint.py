import json

import numpy as np
import pytest

from kerasllm import convert
from kerasllm.models import Encoder
from kerasllm.testing import encoder_inputs, tiny_config
from kerasllm.tokenizers import WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "grand", "##ly", "!"]


def _tiny_encoder(seed=0, **overrides):
    config = tiny_config("learned_postnorm", vocabulary_size=len(VOCAB), **overrides)
    encoder = Encoder(**config)
    # Random (not initializer-default) norms and biases, so a swapped mapping cannot pass.
    rng = np.random.default_rng(seed)
    for variable in encoder.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return encoder


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_export_then_import_gives_identical_weights_and_outputs(tmp_path):
    encoder = _tiny_encoder(activation="gelu_approximate", num_segments=3, attention_dropout=0.0)
    tokenizer = WordPieceTokenizer(VOCAB)
    folder = convert.save_bert_checkpoint(encoder, tmp_path / "ckpt", tokenizer=tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    hf_config = json.loads((folder / "config.json").read_text())
    assert hf_config["hidden_act"] == "gelu_new" and hf_config["type_vocab_size"] == 3
    tensors = convert.read_tensors(folder / "model.safetensors")
    # Linear weights are stored (out, in), as torch.nn.Linear does.
    assert tensors["encoder.layer.0.intermediate.dense.weight"].shape == (32, 16)

    restored = convert.load_bert_checkpoint(folder)
    assert restored.get_config() == {**encoder.get_config(), "name": restored.name}
    for ours, theirs in zip(_weights(restored), _weights(encoder)):
        np.testing.assert_array_equal(ours, theirs)
    inputs = encoder_inputs(length=6, lengths=[6, 3], vocabulary_size=len(VOCAB))
    for key, value in encoder(inputs).items():
        np.testing.assert_array_equal(restored(inputs)[key], value)

    restored_tokenizer = convert.load_bert_tokenizer(folder)
    text = ["The film was GRANDLY!", "the films"]
    assert restored_tokenizer.tokenize(text).to_list() == tokenizer.tokenize(text).to_list()
    assert restored_tokenizer.tokenize(text).to_list()[0] == [5, 6, 7, 8, 9, 10]


def test_mapping_covers_every_weight_once():
    encoder = _tiny_encoder()
    mappings = convert.bert_tensor_mappings(encoder)
    assert sorted(id(m.variable) for m in mappings) == sorted(id(v) for v in encoder.weights)
    assert len({m.hf_name for m in mappings}) == len(mappings)
    kernels = [m for m in mappings if m.variable.path.endswith("/kernel")]
    assert kernels and all(m.transpose for m in kernels)


def test_shape_mismatch_names_both_tensors_and_loads_nothing(tmp_path):
    folder = convert.save_bert_checkpoint(_tiny_encoder(), tmp_path / "ckpt")
    tensors = convert.read_tensors(folder / "model.safetensors")
    target = _tiny_encoder(seed=1, intermediate_dim=48)
    before = _weights(target)
    with pytest.raises(convert.CheckpointMismatchError) as error:
        convert.load_bert_weights(target, tensors)
    message = str(error.value)
    assert "'encoder.layer.0.intermediate.dense.weight' has shape (32, 16)" in message
    assert "(16, 32) as an (in, out) kernel" in message
    assert "encoder_layer_0/feed_forward/intermediate/kernel has shape (16, 48)" in message
    # The embeddings and attention tensors before it fitted, yet nothing was assigned.
    for ours, original in zip(_weights(target), before):
        np.testing.assert_array_equal(ours, original)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    folder = convert.save_bert_checkpoint(_tiny_encoder(), tmp_path / "ckpt")
    tensors = convert.read_tensors(folder / "model.safetensors")
    target = _tiny_encoder(seed=1)
    before = _weights(target)

    missing = {k: v for k, v in tensors.items() if k != "encoder.layer.1.attention.self.key.bias"}
    with pytest.raises(convert.CheckpointMismatchError, match="no tensor 'encoder.layer.1.atte"):
        convert.load_bert_weights(target, missing)

    extra = {**tensors, "encoder.layer.2.output.dense.bias": np.zeros(16, "float32")}
    with pytest.raises(convert.CheckpointMismatchError, match="'encoder.layer.2.output.dense.bias"):
        convert.load_bert_weights(target, extra)

    no_pooler = _tiny_encoder(seed=1, pooler=False)
    unused_pooler = r"'pooler\.dense\.\w+'.*pooler=False"
    with pytest.raises(convert.CheckpointMismatchError, match=unused_pooler):
        convert.load_bert_weights(no_pooler, tensors)
    for ours, original in zip(_weights(target), before):
        np.testing.assert_array_equal(ours, original)


def test_task_checkpoints_and_legacy_layer_norm_names(tmp_path):
    encoder = _tiny_encoder()
    tensors = convert.bert_state_dict(encoder)
    legacy = {
        "bert."
        + name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): value
        for name, value in tensors.items()
    }
    legacy["bert.embeddings.position_ids"] = np.arange(32)[None]
    legacy["cls.predictions.bias"] = np.zeros(len(VOCAB), "float32")
    target = _tiny_encoder(seed=1)
    assert convert.load_bert_weights(target, legacy) == ["cls.predictions.bias"]
    for ours, theirs in zip(_weights(target), _weights(encoder)):
        np.testing.assert_array_equal(ours, theirs)


def test_tiny_bert_torch_checkpoint_matches_transformers(fixtures_dir):
    # A BertForMaskedLM saved with torch.save: backbone under "bert.", MLM head tied to the
    # word embeddings, read without torch.
    encoder = convert.load_bert_checkpoint(fixtures_dir / "tiny_bert", dropout=0.0)
    assert (encoder.num_layers, encoder.hidden_dim, encoder.pooler) == (2, 32, True)
    reference = np.load(fixtures_dir / "tiny_bert_reference.npz")
    out = encoder(
        {
            "token_ids": reference["token_ids"],
            "padding_mask": reference["padding_mask"],
            "segment_ids": reference["segment_ids"],
        }
    )
    real = reference["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(out["sequence_output"])[real], reference["sequence_output"][real], atol=1e-5
    )
    np.testing.assert_allclose(out["pooled_output"], reference["pooled_output"], atol=1e-5)


def test_config_translation_rejects_what_the_encoder_cannot_represent():
    base = {
        "model_type": "bert",
        "vocab_size": 10,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
    }
    config = convert.encoder_config_from_hf(base, pooler=False)
    assert Encoder(**config).count_params() > 0 and config["pooler"] is False
    for change, match in [
        ({"model_type": "gpt2"}, "Unsupported model_type 'gpt2'"),
        ({"position_embedding_type": "relative_key"}, "relative_key"),
        ({"hidden_act": "mish"}, "Unsupported hidden_act 'mish'"),
        ({"is_decoder": True}, "is_decoder=True"),
    ]:
        with pytest.raises(ValueError, match=match):
            convert.encoder_config_from_hf({**base, **change})
    with pytest.raises(ValueError, match="lacks the required fields \\['intermediate_size'\\]"):
        convert.encoder_config_from_hf({k: v for k, v in base.items() if k != "intermediate_size"})


def test_export_rejects_non_bert_encoders_and_mismatched_tokenizers(tmp_path):
    prenorm = Encoder(**tiny_config("rotary_gqa_swiglu"))
    with pytest.raises(ValueError, match="not BERT-shaped: position_embedding='rotary'"):
        convert.save_bert_checkpoint(prenorm, tmp_path / "a")
    with pytest.raises(ValueError, match="11 tokens but the encoder's vocabulary_size is 97"):
        convert.save_bert_checkpoint(
            Encoder(**tiny_config()), tmp_path / "b", tokenizer=WordPieceTokenizer(VOCAB)
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_checkpoint_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert.load_bert_checkpoint(tmp_path / "absent")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(FileNotFoundError, match="no weights file"):
        convert.load_bert_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no vocab.txt"):
        convert.load_bert_tokenizer(tmp_path)
