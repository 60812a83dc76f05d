"""Tiny bundles of each exportable family, each exported once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from export_helpers import (
    BAD_INPUTS,
    BEAMS,
    CAUSAL_MAX_LENGTH,
    CORPUS,
    GOOD_INPUTS,
    SEQ2SEQ_MAX_LENGTH,
    SERVE_SCRIPT,
    TAGS,
    tiny,
)

from kerasllm import bundle, tokenizers
from kerasllm.export import export
from kerasllm.models import (
    CausalLM,
    Decoder,
    Encoder,
    EncoderDecoder,
    Seq2SeqLM,
    SequenceClassifier,
    TokenClassifier,
)


@pytest.fixture(scope="session")
def families(tmp_path_factory):
    """`{family: (bundle, version folder)}` for seq2seq, causal LM, classifier and tagger
    exports."""
    base = tmp_path_factory.mktemp("exports")
    sentencepiece = tokenizers.train_sentencepiece(CORPUS, vocabulary_size=300)
    byte_bpe = tokenizers.train_byte_bpe(CORPUS, vocabulary_size=300)
    wordpiece = tokenizers.train_wordpiece(CORPUS, vocabulary_size=80)
    bundles = {
        "seq2seq": bundle.Bundle(
            Seq2SeqLM(EncoderDecoder(**tiny(vocabulary_size=sentencepiece.vocabulary_size))),
            {"source": sentencepiece, "target": sentencepiece},
            {"source_length": 12, "target_length": SEQ2SEQ_MAX_LENGTH + 1},
        ),
        "causal": bundle.Bundle(
            CausalLM(Decoder(**tiny(vocabulary_size=byte_bpe.vocabulary_size))),
            {"text": byte_bpe},
        ),
        "classifier": bundle.Bundle(
            SequenceClassifier(
                Encoder(**tiny(vocabulary_size=wordpiece.vocabulary_size, pooler=True)),
                num_classes=3,
                dropout=0.0,
            ),
            {"text": wordpiece},
            {"sequence_length": 10, "label_names": ["negative", "neutral", "positive"]},
        ),
        # Byte BPE: words after the first are tokenized with a leading space, as in training.
        "tagger": bundle.Bundle(
            TokenClassifier(
                Encoder(**tiny(vocabulary_size=byte_bpe.vocabulary_size)), len(TAGS), dropout=0.0
            ),
            {"text": byte_bpe},
            {"sequence_length": 10, "label_names": TAGS},
        ),
    }
    out = {}
    for name, item in bundles.items():
        path = export(
            item,
            base / name,
            max_length=None if name == "seq2seq" else CAUSAL_MAX_LENGTH,
            beams=BEAMS,
        )
        out[name] = (item, path)
    return out


@pytest.fixture(scope="session")
def served(families):
    """Every signature's outputs, computed by a process that imports only TF + TF Text."""
    exports = {name: str(path) for name, (_, path) in families.items()}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_SCRIPT,
            json.dumps(exports),
            json.dumps(GOOD_INPUTS),
            json.dumps(BAD_INPUTS),
            str(CAUSAL_MAX_LENGTH),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=Path(exports["seq2seq"]).anchor,  # away from the repository: no kerasllm on path
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][0]
    return json.loads(line[len("RESULT") :])
