import numpy as np

from forests import random_forest


def test_random_forest_scores_over_grpc(client):
    forest = random_forest(np.random.default_rng(0))
    result = client.score(forest, "tree_grpo")
    assert result.node_advantages.shape == (len(forest),)
    assert np.isfinite(result.node_advantages).all()
