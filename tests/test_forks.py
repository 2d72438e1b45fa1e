"""SuggestForks over real gRPC against a per-token reference (ALGORITHMS.md section 11)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import treecredit
from forests import random_forest
from test_filter import path


def reference_forks(forest, *, ranking, top_n, tail_guard, window):
    """Every candidate token by brute force: (root, node, offset, score), best first per tree."""
    offsets = np.concatenate(([0], np.cumsum(forest.num_tokens)))
    mask = forest.loss_mask
    confidence = -forest.topk_logprobs.astype(np.float64).mean(axis=1) if forest.topk_logprobs is not None else None
    candidates: dict[int, tuple] = {}  # token -> (root, node, offset, score)
    for leaf in forest.leaves.tolist():
        tokens = [t for n in path(forest, leaf) for t in range(offsets[n], offsets[n + 1])]
        for position, t in enumerate(tokens):
            if len(tokens) - position <= tail_guard:  # among the last tail_guard tokens of this trajectory
                candidates[t] = None
            elif t not in candidates and mask[t]:
                node = int(np.searchsorted(offsets, t, side="right") - 1)
                if ranking == "neg_logprob":
                    score = -float(forest.logprobs[t])
                else:
                    seen = [confidence[u] for u in tokens[:position + 1] if mask[u]]
                    score = float(np.mean(seen[-window:]))
                candidates[t] = (path(forest, leaf)[0], node, t - offsets[node], score)
    rows = [c for t, c in candidates.items() if c is not None and mask[t]]
    sign = -1 if ranking == "neg_logprob" else 1
    rows.sort(key=lambda r: (r[0], sign * r[3], offsets[r[1]] + r[2]))
    out, taken = [], {}
    for row in rows:
        taken[row[0]] = taken.get(row[0], 0) + 1
        if taken[row[0]] <= top_n:
            out.append(row)
    return out


@pytest.mark.parametrize("ranking", ["neg_logprob", "window_confidence"])
@pytest.mark.parametrize("seed", range(3))
def test_suggest_forks_matches_the_reference(client, seed, ranking):
    rng = np.random.default_rng(seed)
    base = random_forest(rng, groups=2, trees_per_group=2, max_tokens=8, topk=3)
    forest = treecredit.Forest.from_arrays(
        base.parent, group=np.array(base.groups)[base.group], reward=base.reward, num_tokens=base.num_tokens,
        loss_mask=base.loss_mask, topk_logprobs=base.topk_logprobs,
        logprobs=-rng.exponential(1.0, len(base.loss_mask)).round(3),  # ties between tokens happen
    )
    options = dict(ranking=ranking, top_n=3, tail_guard=2, window=3)
    got = client.suggest_forks(forest, **options)
    expected = reference_forks(forest, **options)
    assert list(zip(got.root.tolist(), got.node.tolist(), got.offset.tolist())) == [r[:3] for r in expected]
    np.testing.assert_allclose(got.score, [r[3] for r in expected], rtol=1e-6)  # kernel confidences are fp32
    ranks = [sum(1 for q in expected[:i] if q[0] == r[0]) for i, r in enumerate(expected)]
    assert got.rank.tolist() == ranks


def test_suggest_forks_needs_the_statistics_it_ranks_by(client):
    forest = random_forest(np.random.default_rng(1))
    with pytest.raises(grpc.RpcError) as caught:
        client.suggest_forks(forest)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("forest.logprobs:")
    with pytest.raises(grpc.RpcError) as caught:
        client.suggest_forks(forest, ranking="window_confidence")
    assert caught.value.details().startswith("forest.confidence:")
