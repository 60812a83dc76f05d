"""Uncached reference decoders and a stand-in tokenizer for the generation tests."""

import numpy as np
import tensorflow as tf

START, END = 1, 2


class WordTokenizer(tf.Module):
    """Whitespace word tokenizer with the `kerasllm.tokenizers` contract (pure TF ops)."""

    def __init__(self, words):
        super().__init__()
        self.vocabulary = ["[PAD]", "[START]", "[END]", "[UNK]", *words]
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary), tf.range(len(self.vocabulary), dtype=tf.int32)
            ),
            default_value=3,
        )
        self.pad_id, self.start_id, self.end_id = 0, START, END

    def tokenize(self, strings):
        words = tf.strings.split(tf.convert_to_tensor(strings))
        return tf.ragged.map_flat_values(self.table.lookup, words)

    def detokenize(self, ids):
        words = tf.gather(tf.constant(self.vocabulary), ids)
        return tf.strings.reduce_join(words, axis=-1, separator=" ")


# Four special tokens + 93 words: the tiny test models' 97-token vocabulary.
WORDS = [f"w{i}" for i in range(93)]


def prompts_of_lengths(lengths, seed=0, vocabulary_size=97):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocabulary_size, size=n).tolist() for n in lengths]


def greedy_without_cache(model, prompt, new_tokens, stop_ids=()):
    """Greedy decoding that recomputes the whole sequence at every step (no KV cache)."""
    ids = list(prompt)
    for _ in range(new_tokens):
        x = np.asarray([ids], "int32")
        logits = model({"token_ids": x, "padding_mask": np.ones_like(x)}).numpy()
        ids.append(int(logits[0, -1].argmax()))
        if ids[-1] in stop_ids:
            break
    return ids


def seq2seq_greedy_without_cache(model, source, start_id, new_tokens, stop_ids=()):
    """Greedy target for one source, recomputing encoder and decoder at every step."""
    source = np.asarray([source], "int32")
    target = [start_id]
    for _ in range(new_tokens):
        x = np.asarray([target], "int32")
        logits = model(
            {
                "encoder_token_ids": source,
                "encoder_padding_mask": np.ones_like(source),
                "decoder_token_ids": x,
                "decoder_padding_mask": np.ones_like(x),
            }
        ).numpy()
        target.append(int(logits[0, -1].argmax()))
        if target[-1] in stop_ids:
            break
    return target[1:]


def continuation_log_prob(model, sequence, prompt_length):
    """Sum of the model's log-probabilities of `sequence[prompt_length:]` (full forward)."""
    x = np.asarray([sequence[:-1]], "int32")
    logits = model({"token_ids": x, "padding_mask": np.ones_like(x)})
    log_probs = tf.nn.log_softmax(logits[0]).numpy()
    targets = np.asarray(sequence[1:])
    picked = log_probs[np.arange(len(targets)), targets]
    return float(picked[prompt_length - 1 :].sum())
