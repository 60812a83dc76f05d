"""Memory is released between trials: resident memory stops growing over 10 trials."""

import pytest
from tuning_helpers import tiny_search

from kerasllm.tuning import SearchSpace


@pytest.mark.slow
def test_rss_does_not_keep_growing_over_ten_trials(tmp_path):
    space = SearchSpace(
        num_layers=[1, 2],
        num_heads=[2],
        hidden_dim=[16, 32],
        learning_rate=[1e-3, 2e-3, 3e-3, 4e-3, 5e-3],
    )
    result = tiny_search(tmp_path / "search", space, max_trials=10, steps=3, max_eval_examples=32)
    log = result["tuner"].memory_log()
    assert len(log) == 10
    rss = [row["rss_kib"] for row in log]
    # Allow 64 MiB of allocator noise between the 3rd and the 10th trial (a leak of one tiny
    # model with its traced functions per trial shows up as ~15-30 MiB per trial).
    assert rss[-1] - rss[2] < 64 * 1024, rss
