"""Score's trace confidence (ALGORITHMS.md section 5) over real gRPC, against a per-trajectory reference that
walks every root-to-leaf path in plain Python."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from forests import random_forest

import treecredit


def reference(forest: treecredit.Forest, confidence: np.ndarray, *, window: int, tail: int) -> np.ndarray:
    """`[P, 5]`: lowest, bottom10, tail, mean, num_tokens of each trajectory (leaves ascending), from the
    definitions: the path's loss-mask-1 token confidences, root first."""
    offsets = np.concatenate(([0], np.cumsum(forest.num_tokens)))
    mask = np.ones(len(confidence), bool) if forest.loss_mask is None else forest.loss_mask
    rows = []
    for leaf in forest.leaves:
        path, node = [], int(leaf)
        while node >= 0:
            path.append(node)
            node = int(forest.parent[node])
        c = np.concatenate([confidence[offsets[n]:offsets[n + 1]][mask[offsets[n]:offsets[n + 1]]]
                            for n in reversed(path)])
        if len(c) == 0:
            rows.append([np.nan] * 4 + [0])
            continue
        groups = [c.mean()] if len(c) < window else [c[i - window:i].mean() for i in range(window, len(c) + 1)]
        lowest10 = np.sort(groups)[:max(1, len(groups) // 10)]
        rows.append([min(groups), lowest10.mean(), c[-tail:].mean(), c.mean(), len(c)])
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def assert_trace(trace: treecredit.TraceConfidence, forest, confidence, *, window, tail, rtol):
    expected = reference(forest, confidence, window=window, tail=tail)
    np.testing.assert_array_equal(trace.leaf, forest.leaves)
    np.testing.assert_array_equal(trace.num_tokens, expected[:, 4])
    for column, name in enumerate(("lowest", "bottom10", "tail", "mean")):
        np.testing.assert_allclose(getattr(trace, name), expected[:, column], rtol=rtol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
def test_topk_logprobs_give_the_reference_trace_confidence(client, seed):
    rng = np.random.default_rng(seed)
    forest = random_forest(rng, groups=2, trees_per_group=2, max_depth=5, max_tokens=6, topk=5)
    window, tail = [(3, 2), (1, 1), (5, 40), (2048, 2048)][seed]
    result = client.score(forest, "tree_grpo", window=window, tail=tail)
    confidence = -forest.topk_logprobs.astype(np.float64).mean(axis=1)
    assert_trace(result.trace_confidence, forest, confidence, window=window, tail=tail, rtol=1e-6)


def test_confidences_given_directly_and_empty_trajectories(client):
    # 0 -> 1 -> {2, 3}; node 3's tokens are all masked out and node 1 has none, so leaf 3 sees only node 0's.
    forest = treecredit.Forest.from_arrays(
        [-1, 0, 1, 1, -1], group=["a", "a", "a", "a", "b"], reward=[np.nan, np.nan, 1.0, 0.0, 0.5],
        num_tokens=[3, 0, 4, 2, 2], loss_mask=[1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0],
        confidence=np.arange(11, dtype=np.float64) + 1,
    )
    trace = client.score(forest, "grpo", window=2, tail=3).trace_confidence
    assert_trace(trace, forest, np.arange(11, dtype=np.float64) + 1, window=2, tail=3, rtol=1e-12)
    assert trace.num_tokens.tolist() == [5, 2, 0] and np.isnan(trace.lowest[2])


def test_no_confidences_no_trace_confidence(client):
    forest = random_forest(np.random.default_rng(5))
    assert client.score(forest, "treerl").trace_confidence is None


def test_bad_inputs_name_the_field(client):
    forest = treecredit.Forest.from_arrays([-1], group=[0], reward=[1.0], num_tokens=[2], confidence=[0.5, np.nan])
    for call, field in (
        (lambda: client.score(forest, "grpo"), "forest.confidence[1]"),
        (lambda: client.score(random_forest(np.random.default_rng(6), topk=3), "grpo", window=0), "options.window"),
        (lambda: client.score(random_forest(np.random.default_rng(6), topk=3), "grpo", tail=-2), "options.tail"),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith(field), raised.value.details()
