"""Backbones (`Encoder`, `Decoder`, `EncoderDecoder`) and the task models built on them."""

from kerasllm.models.backbone import Backbone
from kerasllm.models.classifiers import SequenceClassifier, TokenClassifier
from kerasllm.models.decoder import Decoder
from kerasllm.models.encoder import Encoder
from kerasllm.models.encoder_decoder import EncoderDecoder
from kerasllm.models.language_models import CausalLM, MaskedLM, Seq2SeqLM
from kerasllm.models.question_answering import QuestionAnswerer, SpanCrossEntropy
from kerasllm.models.task import Task

__all__ = [
    "Backbone",
    "CausalLM",
    "Decoder",
    "Encoder",
    "EncoderDecoder",
    "MaskedLM",
    "QuestionAnswerer",
    "Seq2SeqLM",
    "SequenceClassifier",
    "SpanCrossEntropy",
    "Task",
    "TokenClassifier",
]
