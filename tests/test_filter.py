"""Filter over real gRPC against a straightforward reference: metrics, thresholds, verdicts, query filters, vote."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

import treecredit
from forests import random_forest


def path(forest: treecredit.Forest, leaf: int) -> list[int]:
    nodes = []
    while leaf >= 0:
        nodes.append(leaf)
        leaf = int(forest.parent[leaf])
    return nodes[::-1]


def reference_metrics(forest, metric: str, window: int, tail: int) -> dict[int, float]:
    """Section 5 per leaf, from each trajectory's own list of loss-masked confidences (NaN when empty)."""
    offsets = np.concatenate(([0], np.cumsum(forest.num_tokens)))
    if forest.confidence is not None:
        confidence = forest.confidence.astype(np.float64)
    else:
        confidence = -forest.topk_logprobs.astype(np.float64).mean(axis=1)
    mask = np.ones(len(confidence), bool) if forest.loss_mask is None else forest.loss_mask
    out = {}
    for leaf in forest.leaves.tolist():
        c = [x for n in path(forest, leaf) for x, m in zip(confidence[offsets[n]:offsets[n + 1]],
                                                            mask[offsets[n]:offsets[n + 1]]) if m]
        if not c:
            out[leaf] = math.nan
            continue
        groups = [sum(c[i - window:i]) / window for i in range(window, len(c) + 1)] if len(c) >= window else [np.mean(c)]
        out[leaf] = {
            "lowest": min(groups),
            "bottom10": float(np.mean(sorted(groups)[:max(1, len(groups) // 10)])),
            "tail": float(np.mean(c[-min(len(c), tail):])),
            "mean": float(np.mean(c)),
        }[metric]
    return out


def group_of_leaves(forest) -> dict[int, int]:
    """The service numbers groups by ascending group id at the roots (forest.proto): each leaf's number."""
    ids = sorted({int(forest.group[n]) for n in range(len(forest)) if forest.parent[n] < 0})
    return {leaf: ids.index(int(forest.group[path(forest, leaf)[0]])) for leaf in forest.leaves.tolist()}


@pytest.mark.parametrize("metric", ["lowest", "bottom10", "tail", "mean"])
@pytest.mark.parametrize("seed", range(3))
def test_filter_matches_the_reference_on_random_forests(client, seed, metric):
    rng = np.random.default_rng(seed)
    forest = random_forest(rng, groups=3, trees_per_group=2, max_tokens=6, topk=4)
    keep_percent = float(rng.choice([10, 50, 90]))
    leaves = forest.leaves.tolist()
    answers = [None if rng.random() < 0.3 else str(rng.integers(3)) for _ in leaves]
    result = client.filter(forest, metric=metric, keep_percent=keep_percent, window=4, tail=3, answers=answers)

    expected = reference_metrics(forest, metric, window=4, tail=3)
    np.testing.assert_allclose(result.metric[leaves], [expected[l] for l in leaves], rtol=1e-6, equal_nan=True)
    inner = np.setdiff1d(np.arange(len(forest)), leaves)
    assert np.isnan(result.metric[inner]).all() and not result.keep[inner].any()

    # Verdicts: the percentile rule applied to the returned metrics, group by group.
    group = group_of_leaves(forest)
    assert result.groups == [f"prompt-{g}" for g in range(3)]  # random_forest's labels, in id order
    for g in range(len(result.groups)):
        members = [l for l in leaves if group[l] == g]
        values = [result.metric[l] for l in members if not math.isnan(result.metric[l])]
        threshold = np.percentile(values, 100 - keep_percent) if values else math.nan
        assert (math.isnan(threshold) and math.isnan(result.threshold[g])) or result.threshold[g] == threshold
        for leaf in members:
            empty = math.isnan(result.metric[leaf])
            kept = not empty and result.metric[leaf] >= threshold
            assert result.keep[leaf] == kept
            assert result.reason[leaf] == ("empty" if empty else "confident" if kept else "low_confidence")

        votes: dict[str, float] = {}
        for leaf, answer in zip(leaves, answers):
            if group[leaf] == g and result.keep[leaf] and answer is not None:
                votes[answer] = votes.get(answer, 0.0) + result.metric[leaf]
        assert result.votes[g].keys() == votes.keys()
        for answer, weight in votes.items():
            assert result.votes[g][answer] == pytest.approx(weight)
        if votes:
            best = min(votes, key=lambda a: (-votes[a], a))
            assert result.answer[g] == best
            assert result.consensus[g] == pytest.approx(votes[best] / sum(votes.values()))
        else:
            assert result.answer[g] is None and math.isnan(result.consensus[g])


def test_ties_are_kept_and_short_and_empty_trajectories_get_their_own_verdicts(client):
    # One group: four trajectories from one root. Confidences are multiples of 1/2 (exact sums).
    forest = treecredit.Forest()
    root = forest.add(None, 0, group="q")
    for values in ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0], [1.5], []):
        forest.add(root, len(values), reward=1.0, confidence=values)
    result = client.filter(forest, keep_percent=25, window=2, zero_variance=True,
                           answers={1: "x", 2: "x", 3: "y", 4: None})
    assert result.metric[1:5].tolist() == [2.0, 2.0, 1.0, 1.5]  # T < W: the mean of all
    assert result.threshold[0] == 2.0
    assert result.keep[1:].tolist() == [True, True, False, False, False]
    assert result.reason[1:].tolist() == ["confident", "confident", "low_confidence", "low_confidence", "empty"]
    assert result.answer == ["x"] and result.consensus[0] == 1.0 and result.votes == [{"x": 4.0}]
    assert result.zero_variance.tolist() == [True] and result.query_reason.tolist() == ["zero_variance"]


def test_query_filters_zero_variance_and_reflection(client):
    forest = treecredit.Forest()
    for group, rewards in (("flat", [1, 1]), ("mixed", [0, 1]), ("single", [1])):
        root = forest.add(None, 0, group=group)
        for r in rewards:
            forest.add(root, 2, reward=r, confidence=[1.0, 2.0])
    flat_only = client.filter(forest, zero_variance=True)
    assert flat_only.groups == ["flat", "mixed", "single"]
    assert flat_only.zero_variance.tolist() == [True, False, False]
    assert flat_only.query_keep.tolist() == [False, True, True]
    assert flat_only.reflection_spread is None

    ell = [[[0.0, -1.0], [0.0, -3.0]], [[-1.0, -1.0], [-1.0, -1.2]], [[-2.0, 0.0]]]  # flat, mixed, single
    result = client.filter(forest, reflection=treecredit.Reflection(ell, min_spread=0.5))
    np.testing.assert_allclose(result.reflection_spread, [1.0, 0.1, 0.0])
    assert result.query_reason.tolist() == ["informative", "low_reflection", "low_reflection"]
    by_percent = client.filter(forest, reflection=treecredit.Reflection(ell, drop_percent=50))  # floor(3 / 2) = 1
    assert by_percent.query_keep.tolist() == [True, True, False]


def test_filter_refuses_bad_input(client):
    forest = random_forest(np.random.default_rng(0))  # no confidences, no top-k
    with pytest.raises(grpc.RpcError) as caught:
        client.filter(forest)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("forest.confidence:")
    forest = random_forest(np.random.default_rng(0), topk=3)
    for options, field in (({"keep_percent": 0}, "keep_percent"), ({"window": 0}, "window"),
                           ({"reflection": treecredit.Reflection([[[0.0]]] * len(forest.groups))}, "reflection.ell")):
        if field == "reflection.ell":
            request = treecredit.confidence.filter_request(forest, **options)
            request.reflection.rows.data = np.array([2] * len(forest.groups), np.int64).tobytes()
            with pytest.raises(grpc.RpcError) as caught:
                client._stub.Filter(request)
        else:
            with pytest.raises(grpc.RpcError) as caught:
                client.filter(forest, **options)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field + ":")
