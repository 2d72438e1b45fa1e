"""ToolPO tool-call credit (section 8) over real gRPC: hand-computed cases, properties, bad input."""

from __future__ import annotations


import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_credit as ref
import treecredit
from forests import random_forest


def centred(values, tree: ref.Tree) -> dict[int, float]:
    """Each leaf's value minus the mean over its group's leaves (section 8: no std), by plain Python."""
    return {leaf: ref.z(values[leaf], [values[m] for m in tree.leaves if tree.group[m] == tree.group[leaf]],
                        normalize_std=False) for leaf in tree.leaves}


def tree_of(forest) -> ref.Tree:
    return ref.Tree(forest.parent, [forest.groups[g] for g in forest.group], forest.reward)

# Group "q": root 0 (2 prompt tokens) -> leaves 1 (3 tokens) and 2 (2 tokens). Group "r": a lone chain 3 -> 4.
FOREST = treecredit.Forest.from_arrays(
    [-1, 0, 0, -1, 3], group=["q", "q", "q", "r", "r"], reward=[np.nan, 1.0, 0.0, np.nan, 1.0],
    num_tokens=[2, 3, 2, 0, 1], loss_mask=[0, 0, 1, 1, 1, 1, 1, 1],
)
ACTION = np.array([np.nan, 2.0, 0.0, np.nan, 5.0])
MASK = np.array([0, 0, 0, 1, 0, 1, 0, 1], bool)


def test_hand_computed(client):
    result = client.score(FOREST, "toolpo", tool_calls=treecredit.ToolCalls(ACTION, MASK))
    assert result.scope == "tool_call"
    np.testing.assert_allclose(result.leaf_advantages[[1, 2, 4]], [0.5, -0.5, 0.0])
    np.testing.assert_allclose(result.action_advantages[[1, 2, 4]], [1.0, -1.0, 0.0])
    # Leaf 1: prompt tokens (masked out), then 0.5, 0.5 + 1, 0.5.
    np.testing.assert_allclose(result.token_advantages(1), [0, 0, 0.5, 1.5, 0.5])
    # Leaf 2: prompt, then its own tokens: tool call on the first, -0.5 - 1.
    np.testing.assert_allclose(result.token_advantages(2), [0, 0, -1.5, -0.5])
    np.testing.assert_allclose(result.token_advantages(4), [0.0])
    advantages, mask, leaves = result.padded()
    assert advantages.shape == (3, 5) and list(leaves) == [1, 2, 4]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_zero_tool_mask_is_mean_centred_outcome(client, seed):
    rng = np.random.default_rng(seed)
    forest = random_forest(rng)
    action = np.where(forest.topology.is_leaf, rng.integers(0, 4, len(forest)), np.nan)
    no_calls = treecredit.ToolCalls(action, np.zeros(int(forest.num_tokens.sum()), bool))
    toolpo = client.score(forest, "toolpo", tool_calls=no_calls)
    tree = tree_of(forest)
    success = centred(tree.reward, tree)
    advantages, mask, leaves = toolpo.padded()
    expected = np.array([success[leaf] for leaf in leaves.tolist()])
    np.testing.assert_allclose(advantages, np.where(mask, expected[:, None], 0.0), atol=1e-6)
    np.testing.assert_allclose(toolpo.node_advantages,
                               [np.mean([success[leaf] for leaf in tree.leaves_below(n)]) for n in range(tree.n)],
                               atol=1e-12)
    act = centred(action, tree)
    np.testing.assert_allclose(toolpo.action_advantages[tree.leaves], [act[leaf] for leaf in tree.leaves],
                               atol=1e-12)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_all_tool_tokens_add_action_advantage(client, seed):
    """With every token a tool call, a trajectory's loss-masked tokens get A_succ + A_act; both sum to 0 per group."""
    rng = np.random.default_rng(seed)
    forest = random_forest(rng)
    action = np.where(forest.topology.is_leaf, rng.normal(size=len(forest)), np.nan)
    result = client.score(forest, "toolpo",
                          tool_calls=treecredit.ToolCalls(action, np.ones(int(forest.num_tokens.sum()), bool)))
    advantages, mask, leaves = result.padded()
    tree = tree_of(forest)
    success, act = centred(tree.reward, tree), centred(action, tree)
    np.testing.assert_allclose(result.leaf_advantages[leaves], [success[leaf] for leaf in leaves.tolist()], atol=1e-12)
    np.testing.assert_allclose(result.action_advantages[leaves], [act[leaf] for leaf in leaves.tolist()], atol=1e-12)
    expected = np.array([success[leaf] + act[leaf] for leaf in leaves.tolist()])
    np.testing.assert_allclose(advantages, np.where(mask, expected[:, None], 0.0), atol=1e-5)
    group = forest.group[leaves]
    for values in (result.leaf_advantages[leaves], result.action_advantages[leaves]):
        np.testing.assert_allclose(np.bincount(group, weights=values), 0.0, atol=1e-9)


BAD = {
    "no tool calls": (dict(), "tool_calls: is required"),
    "mask of the wrong length": (dict(tool_calls=treecredit.ToolCalls(ACTION, MASK[:5])), "tool_calls.tool_call_mask"),
    "action reward missing at a leaf": (
        dict(tool_calls=treecredit.ToolCalls(np.where(np.arange(5) == 2, np.nan, ACTION), MASK)),
        "tool_calls.action_reward[2]",
    ),
    "action rewards of the wrong length": (dict(tool_calls=treecredit.ToolCalls(ACTION[:3], MASK)),
                                           "tool_calls.action_reward"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input(client, case):
    options, field = BAD[case]
    with pytest.raises(grpc.RpcError) as error:
        client.score(FOREST, "toolpo", **options)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()


def test_tool_calls_with_another_estimator(client):
    with pytest.raises(grpc.RpcError) as error:
        client.score(FOREST, "grpo", tool_calls=treecredit.ToolCalls(ACTION, MASK))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tool_calls: is only read by ESTIMATOR_TOOLPO" in error.value.details()
    assert client.score(FOREST, "grpo").scope == "leaf"  # still serving
