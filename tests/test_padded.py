"""ScoreResult.padded() and the trajectory layout under it, against a slow loop over each trajectory's path: long
nodes (the copy windows up to 512 tokens), token-less nodes, chains whose tokens follow each other (merged copies),
with and without a loss mask, for every advantage scope, scored over real gRPC."""

from __future__ import annotations

import numpy as np
import pytest

import treecredit
from treecredit.topology import Topology, TrajectoryLayout

nan = np.nan


def random_arrays(rng, nodes: int, chain_share: float) -> dict[str, np.ndarray]:
    """One group of random trees; a share of nodes hang under the node just before them (their tokens follow)."""
    parent = np.full(nodes, -1)
    for n in range(1, nodes):
        if rng.random() < 0.1:
            continue  # a new root
        parent[n] = n - 1 if rng.random() < chain_share else rng.integers(0, n)
    is_leaf = np.bincount(parent[parent >= 0], minlength=nodes) == 0
    num_tokens = np.where(rng.random(nodes) < 0.15, 0, rng.integers(1, 700, nodes))
    return {"parent": parent, "group": np.zeros(nodes, int), "num_tokens": num_tokens,
            "reward": np.where(is_leaf, rng.integers(0, 2, nodes), nan).astype(float)}


def path(parent, leaf) -> list[int]:
    nodes = [leaf]
    while parent[nodes[-1]] >= 0:
        nodes.append(parent[nodes[-1]])
    return nodes[::-1]


def expected_rows(arrays, per_node_token, trailing=()) -> list[np.ndarray]:
    """Per leaf ascending: `per_node_token(node, token)` (of shape `trailing`) along its path, one at a time."""
    parent, num_tokens = arrays["parent"], arrays["num_tokens"]
    start = np.concatenate(([0], np.cumsum(num_tokens)))
    leaves = [n for n in range(len(parent)) if n not in set(parent.tolist())]
    return [np.array([per_node_token(n, t) for n in path(parent, leaf) for t in range(start[n], start[n + 1])])
            .reshape(-1, *trailing) for leaf in leaves]


def assert_rows(padded: np.ndarray, rows: list[np.ndarray], fill) -> None:
    assert padded.shape[0] == len(rows) and padded.shape[1] == max(map(len, rows))
    for got, want in zip(padded, rows):
        np.testing.assert_array_equal(got[:len(want)], want)
        assert (got[len(want):] == fill).all()


@pytest.mark.parametrize("seed, chain_share", [(0, 0.0), (1, 0.5), (2, 0.9), (3, 1.0)])
def test_layout_expands_per_token_values_along_each_path(seed, chain_share):
    rng = np.random.default_rng(seed)
    arrays = random_arrays(rng, 120, chain_share)
    tokens = int(arrays["num_tokens"].sum())
    topology = Topology.of(arrays["parent"])
    layout = TrajectoryLayout.of(topology, arrays["num_tokens"], topology.leaves)
    values = rng.standard_normal((tokens, 3)).astype(np.float32)  # e.g. top-k rows: trailing dimensions follow
    expected = expected_rows(arrays, lambda n, t: values[t], trailing=(3,))
    assert_rows(layout.expand(values, fill=7.0), expected, 7.0)
    assert layout.lengths.tolist() == [len(row) for row in expected]
    with pytest.raises(ValueError, match=f"^{tokens - 1} values for a forest of {tokens} tokens$"):
        layout.expand(values[1:])


def test_layout_of_a_forest_without_tokens():
    topology = Topology.of([-1, 0, 0])
    layout = TrajectoryLayout.of(topology, [0, 0, 0], topology.leaves)
    assert layout.expand(np.zeros(0)).shape == layout.valid().shape == layout.per_row([1.0, 2.0]).shape == (2, 0)


def test_valid_cells_and_per_row_values():
    topology = Topology.of([-1, 0, 0, 2])  # paths: 0 1 (2 + 1 tokens), 0 2 3 (2 + 0 + 3 tokens)
    layout = TrajectoryLayout.of(topology, [2, 1, 0, 3], topology.leaves)
    assert layout.valid().tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert layout.per_row(np.array([1.5, -2.0], np.float32)).tolist() == [[1.5] * 3 + [0.0] * 2, [-2.0] * 5]


@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("estimator", ["grpo", "treerl", "toolpo"])
def test_padded_matches_a_loop_over_each_path(client, estimator, with_mask):
    rng = np.random.default_rng(11)
    arrays = random_arrays(rng, 150, 0.5)
    tokens = int(arrays["num_tokens"].sum())
    loss_mask = rng.random(tokens) < 0.8 if with_mask else None
    forest = treecredit.Forest.from_arrays(**arrays, loss_mask=loss_mask)
    options = {}
    if estimator == "toolpo":
        action = np.where(np.isnan(arrays["reward"]), nan, rng.random(len(arrays["parent"])))
        options["tool_calls"] = treecredit.ToolCalls(action, rng.random(tokens) < 0.3)
    result = client.score(forest, estimator, **options)
    advantages, mask, leaves = result.padded()

    parent = arrays["parent"]
    start = np.concatenate(([0], np.cumsum(arrays["num_tokens"])))
    adv_rows, mask_rows = [], []
    for leaf in leaves.tolist():
        values, masks = [], []
        for n in path(parent, leaf):
            for t in range(start[n], start[n + 1]):
                kept = True if loss_mask is None else bool(loss_mask[t])
                if result.scope == "node":
                    value = result.node_advantages[n]
                elif result.scope == "tool_call":
                    value = result.leaf_advantages[leaf] + options["tool_calls"].tool_call_mask[t] * result.action_advantages[leaf]
                else:
                    value = result.leaf_advantages[leaf]
                values.append(np.float32(value) if kept else 0.0)
                masks.append(kept)
        adv_rows.append(np.array(values, np.float32))
        mask_rows.append(np.array(masks, bool))
    assert result.scope == {"grpo": "leaf", "treerl": "node", "toolpo": "tool_call"}[estimator]
    assert advantages.dtype == np.float32 and mask.dtype == np.bool_
    assert advantages.shape == mask.shape == (len(adv_rows), max(map(len, adv_rows)))
    for got, want in zip(advantages, adv_rows):
        np.testing.assert_allclose(got[:len(want)], want, rtol=1e-6, atol=1e-7)
        assert not got[len(want):].any()
    assert_rows(mask, mask_rows, False)
    for leaf, want in zip(leaves.tolist(), adv_rows):
        np.testing.assert_allclose(result.token_advantages(leaf), want, rtol=1e-6, atol=1e-7)
