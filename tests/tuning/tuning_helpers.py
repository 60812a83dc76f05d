"""The tiny real search the tuning tests share: bert_tiny classifiers on 400 Rotten Tomatoes
snippets with a 600-piece SentencePiece tokenizer, scored on validation accuracy."""

from kerasllm.tuning import run_search

TINY_SEARCH = dict(
    metric="accuracy",
    batch_size=16,
    sequence_length=32,
    vocabulary_size=600,
    max_train_examples=400,
    max_eval_examples=64,
)


def tiny_search(search_dir, space, **kwargs) -> dict:
    """`run_search` of bert_tiny on Rotten Tomatoes with `TINY_SEARCH`, updated by `kwargs`."""
    return run_search(
        "bert_tiny",
        "classification",
        "rotten_tomatoes",
        str(search_dir),
        space,
        **{**TINY_SEARCH, **kwargs},
    )
