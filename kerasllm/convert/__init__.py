"""Hugging Face BERT-family checkpoints <-> kerasllm's `Encoder` and `WordPieceTokenizer`.

Reads `config.json`, `model.safetensors` or `pytorch_model.bin` (no torch needed) and
`vocab.txt`; writes the same format back. Every tensor is mapped by name and checked by shape
before anything is assigned, so a checkpoint that does not fit raises `CheckpointMismatchError`
naming the first offending tensor and nothing is half-loaded.

Example:
>>> import tempfile
>>> from kerasllm import convert
>>> from kerasllm.models import Encoder
>>> encoder = Encoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
...                   intermediate_dim=16, max_sequence_length=16)
>>> folder = convert.save_bert_checkpoint(encoder, tempfile.mkdtemp())
>>> sorted(p.name for p in folder.iterdir())
['config.json', 'model.safetensors']
>>> restored = convert.load_bert_checkpoint(folder)
>>> all((a == b).all() for a, b in zip(restored.get_weights(), encoder.get_weights()))
True
"""

from kerasllm.convert.bart import encoder_decoder_config_from_bart, load_bart_checkpoint
from kerasllm.convert.bert import (
    CheckpointMismatchError,
    TensorMapping,
    bert_state_dict,
    bert_tensor_mappings,
    check_bert_shaped,
    encoder_config_from_hf,
    hf_config_from_encoder,
    load_bert_weights,
    split_backbone_tensors,
)
from kerasllm.convert.checkpoint import (
    load_bert_checkpoint,
    load_bert_tokenizer,
    read_checkpoint_tensors,
    read_hf_config,
    save_bert_checkpoint,
)
from kerasllm.convert.gpt2 import (
    decoder_config_from_gpt2,
    load_gpt2_checkpoint,
    save_gpt2_checkpoint,
)
from kerasllm.convert.hf_decoder import (
    hf_framing,
    hf_id_swap,
    hf_model_types,
    hf_task,
    load_hf_checkpoint,
    load_hf_tokenizer,
)
from kerasllm.convert.llama import (
    decoder_config_from_llama,
    load_llama_checkpoint,
    save_llama_checkpoint,
)
from kerasllm.convert.sentence_embeddings import (
    POOLING_MODES,
    read_pooling_config,
    sentence_embeddings,
)
from kerasllm.convert.t5 import encoder_decoder_config_from_t5, load_t5_checkpoint
from kerasllm.convert.tensor_files import read_tensors, write_safetensors
from kerasllm.convert.torch_pickle import load_torch_state_dict

__all__ = [
    "POOLING_MODES",
    "CheckpointMismatchError",
    "TensorMapping",
    "bert_state_dict",
    "bert_tensor_mappings",
    "check_bert_shaped",
    "decoder_config_from_gpt2",
    "decoder_config_from_llama",
    "encoder_config_from_hf",
    "encoder_decoder_config_from_bart",
    "encoder_decoder_config_from_t5",
    "hf_config_from_encoder",
    "hf_framing",
    "hf_id_swap",
    "hf_model_types",
    "hf_task",
    "load_bart_checkpoint",
    "load_bert_checkpoint",
    "load_bert_tokenizer",
    "load_bert_weights",
    "load_gpt2_checkpoint",
    "load_hf_checkpoint",
    "load_hf_tokenizer",
    "load_llama_checkpoint",
    "load_t5_checkpoint",
    "load_torch_state_dict",
    "read_checkpoint_tensors",
    "read_hf_config",
    "read_pooling_config",
    "read_tensors",
    "save_bert_checkpoint",
    "save_gpt2_checkpoint",
    "save_llama_checkpoint",
    "sentence_embeddings",
    "split_backbone_tensors",
    "write_safetensors",
]
