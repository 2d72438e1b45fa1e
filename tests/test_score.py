"""Score over real gRPC: hand-computed trees, a slow reference on random forests, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_credit as ref
import treecredit
from forests import random_forest

ESTIMATORS = ["grpo", "tree_grpo", "treerl", "value_diff"]
S3 = 1 / math.sqrt(3)  # sample std of {0, 1, 0} and of {1, 0, 0, 1}


def build(parents, rewards, groups=None, tokens=None) -> treecredit.Forest:
    forest = treecredit.Forest()
    for node, (parent, reward) in enumerate(zip(parents, rewards)):
        group = (groups[node] if groups else "q") if parent is None else None
        forest.add(parent, tokens[node] if tokens else 1, reward=reward, group=group)
    return forest


# 0 -> 1 -> {2 -> 4 -> {5: 1, 6: 0}, 3: 0}: forks at depth 1 and at depth 3, leaves at depths 2 and 4.
DEEP = build([None, 0, 1, 1, 2, 4, 4], [None, None, None, 0.0, None, 1.0, 0.0], tokens=[3, 2, 1, 4, 2, 5, 1])
# One root with four leaf children: plain GRPO as a tree.
FLAT = build([None, 0, 0, 0, 0], [None, 1.0, 0.0, 0.0, 1.0])
# Two trees in one group: {1, 0} and {1, 1}.
TWO_TREES = build([None, 0, 0, None, 3, 3], [None, 1.0, 0.0, None, 1.0, 1.0])


def test_forks_at_depth_one_and_three(client):
    value_diff = client.score(DEEP, "value_diff")
    assert value_diff.node_advantages == pytest.approx([0, 0, 1 / 6, -1 / 3, 0, 0.5, -0.5])
    treerl = client.score(DEEP, "treerl")
    assert treerl.node_advantages == pytest.approx(
        [0, 0, (1 / 3) / math.sqrt(2), -2 / 3, (1 / 6) / math.sqrt(2), 7 / 6, -5 / 6]
    )
    grpo = client.score(DEEP, "grpo")
    expected_leaf = {3: -(1 / 3) / S3, 5: (2 / 3) / S3, 6: -(1 / 3) / S3}
    for leaf, value in expected_leaf.items():
        assert grpo.leaf_advantages[leaf] == pytest.approx(value, rel=1e-5)
    assert np.isnan(grpo.leaf_advantages[[0, 1, 2, 4]]).all()
    assert grpo.node_advantages[4] == pytest.approx((expected_leaf[5] + expected_leaf[6]) / 2, rel=1e-5)
    assert len(grpo.preferences) == 2
    assert sorted(zip(grpo.preferences.winner.tolist(), grpo.preferences.loser.tolist())) == [(2, 3), (5, 6)]
    assert grpo.preferences.margin.tolist() == pytest.approx([0.5, 1.0])
    assert grpo.preferences.depth.tolist() == [2, 4]
    profile = grpo.depth_profile
    assert profile.depth.tolist() == [1, 2, 3, 4]
    assert profile.branch_points.tolist() == [0, 1, 0, 1]
    assert profile.sibling_pairs.tolist() == [0, 1, 0, 1]
    assert profile.tokens.tolist() == [2, 1 + 4, 2, 5 + 1]
    assert value_diff.depth_profile.mean_abs_advantage == pytest.approx([0, (1 / 6 + 1 / 3) / 2, 0, 0.5])
    assert grpo.sharing.unique_tokens == 18
    assert grpo.sharing.trajectory_tokens == (3 + 2 + 4) + (3 + 2 + 1 + 2 + 5) + (3 + 2 + 1 + 2 + 1)
    assert grpo.sharing.sharing == pytest.approx(31 / 18)
    assert grpo.sharing.trajectories_per_1k_tokens == pytest.approx(3000 / 18)


def test_forks_only_at_the_root_is_grpo(client):
    grpo = client.score(FLAT, "grpo")
    assert grpo.leaf_advantages[1:] == pytest.approx(np.array([1, -1, -1, 1]) * 0.5 / S3, rel=1e-5)
    assert client.score(FLAT, "tree_grpo").leaf_advantages[1:] == pytest.approx(2 * grpo.leaf_advantages[1:])
    assert client.score(FLAT, "value_diff").node_advantages == pytest.approx([0, 0.5, -0.5, -0.5, 0.5])
    assert client.score(FLAT, "treerl").node_advantages == pytest.approx([0, 1, -1, -1, 1])
    dr_grpo = client.score(FLAT, "grpo", normalize_std=False)
    assert dr_grpo.leaf_advantages[1:] == pytest.approx([0.5, -0.5, -0.5, 0.5])
    assert len(grpo.preferences.winner) == 4
    assert client.score(FLAT, "grpo", min_margin=1.0).preferences.winner.size == 0


def test_several_trees_in_a_group(client):
    tree_grpo = client.score(TWO_TREES, "tree_grpo")
    half = 1 / math.sqrt(2)
    assert tree_grpo.leaf_advantages[[1, 2, 4, 5]] == pytest.approx([0.5 + half, -1.5 - half, 0.5, 0.5], rel=1e-5)
    plain = client.score(TWO_TREES, "value_diff")
    assert plain.node_advantages == pytest.approx([-0.25, 0.5, -0.5, 0.25, 0, 0])
    scaled = client.score(TWO_TREES, "value_diff", sibling_std=True)
    root_std = math.sqrt(2 * 0.25**2)
    assert scaled.node_advantages == pytest.approx([-0.25 / root_std, half, -half, 0.25 / root_std, 0, 0], rel=1e-5)


def test_chain_and_single_leaf_group_get_zero(client):
    forest = build([None, 0, 1, None, 3, 3], [None, None, 1.0, None, 0.0, 1.0], groups=["solo", 0, 0, "pair", 0, 0])
    for estimator in ESTIMATORS:
        result = client.score(forest, estimator)
        assert result.node_advantages[:3] == pytest.approx([0, 0, 0])
        assert result.depth_profile.branch_points.tolist() == [1, 0]
    assert client.score(forest, "grpo").leaf_advantages[2] == 0.0


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_all_equal_rewards_give_zero_not_nan(client, estimator):
    forest = random_forest(np.random.default_rng(7), reward_levels=1)
    result = client.score(forest, estimator, sibling_std=True)
    assert np.array_equal(result.node_advantages, np.zeros(len(forest)))
    assert result.preferences.winner.size == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_matches_reference_on_random_forests(client, estimator, seed):
    rng = np.random.default_rng(seed)
    forest = random_forest(rng, groups=int(rng.integers(1, 4)), trees_per_group=int(rng.integers(1, 4)))
    options = {"normalize_std": bool(seed % 2), "sibling_std": bool(seed % 3 == 0), "min_margin": 0.25 * (seed % 2)}
    result = client.score(forest, estimator, **options)
    tree = ref.Tree(forest.parent, [forest.groups[g] for g in forest.group], forest.reward)
    node, leaf = ref.advantages(tree, estimator, options["normalize_std"], options["sibling_std"])
    np.testing.assert_allclose(result.node_advantages, node, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.leaf_advantages, leaf, rtol=1e-9, atol=1e-12)

    pairs = ref.preferences(tree, options["min_margin"])
    prefs = result.preferences
    got = {(w, l, round(m, 9), d) for w, l, m, d in zip(prefs.winner, prefs.loser, prefs.margin, prefs.depth)}
    assert got == pairs and len(prefs) == len(pairs)
    rows = ref.depth_profile(tree, node, pairs, forest.num_tokens)
    np.testing.assert_allclose(np.column_stack(result.depth_profile), np.array(rows, ndmin=2).reshape(-1, 5))
    unique, trajectory = ref.sharing(tree, forest.num_tokens)
    assert (result.sharing.unique_tokens, result.sharing.trajectory_tokens) == (unique, trajectory)

    advantages, mask, leaf_ids = result.padded()
    assert leaf_ids.tolist() == tree.leaves
    for row, leaf_id in enumerate(leaf_ids):
        expected = ref.token_advantages(tree, leaf_id, node, leaf, forest.num_tokens, forest.loss_mask, result.scope)
        np.testing.assert_allclose(result.token_advantages(leaf_id), expected, rtol=1e-6, atol=1e-7)
        assert advantages[row, len(expected):].tolist() == [0.0] * (advantages.shape[1] - len(expected))
        assert mask[row].sum() == sum(forest.loss_mask[t] for t in _path_tokens(tree, leaf_id, forest.num_tokens))


def _path_tokens(tree, leaf, num_tokens):
    offsets = np.concatenate(([0], np.cumsum(num_tokens)))
    return [t for n in tree.path(leaf) for t in range(offsets[n], offsets[n + 1])]


forest_seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=40, deadline=None)
@given(seed=forest_seeds)
def test_tree_grpo_is_twice_grpo_with_one_tree_per_group(client, seed):
    forest = random_forest(np.random.default_rng(seed), groups=3, trees_per_group=1, reward_levels=4)
    grpo, tree_grpo = client.score(forest, "grpo"), client.score(forest, "tree_grpo")
    np.testing.assert_allclose(tree_grpo.node_advantages, 2 * grpo.node_advantages, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=forest_seeds)
def test_value_diff_telescopes_to_leaf_minus_group_value(client, seed):
    forest = random_forest(np.random.default_rng(seed), reward_levels=5)
    result = client.score(forest, "value_diff")
    tree = ref.Tree(forest.parent, [forest.groups[g] for g in forest.group], forest.reward)
    along_path = [sum(result.node_advantages[n] for n in tree.path(leaf)) for leaf in tree.leaves]
    np.testing.assert_allclose(along_path, [tree.reward[leaf] - tree.Vg(leaf) for leaf in tree.leaves], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=forest_seeds, margin=st.sampled_from([0.0, 0.1, 0.5]))
def test_a_preference_never_appears_both_ways(client, seed, margin):
    forest = random_forest(np.random.default_rng(seed), max_children=4)
    prefs = client.score(forest, "grpo", min_margin=margin).preferences
    pairs = set(zip(prefs.winner.tolist(), prefs.loser.tolist()))
    assert not any((loser, winner) in pairs for winner, loser in pairs)
    assert (prefs.margin > margin).all()
    assert (forest.parent[prefs.winner] == forest.parent[prefs.loser]).all()


async def test_async_client_scores_the_same(server):
    import asyncio

    async with treecredit.AsyncCreditClient(server.target, timeout=30) as client:
        results = await asyncio.gather(*(client.score(DEEP, e) for e in ESTIMATORS))
    with treecredit.CreditClient(server.target) as blocking:
        for estimator, result in zip(ESTIMATORS, results):
            np.testing.assert_array_equal(result.node_advantages, blocking.score(DEEP, estimator).node_advantages)


def test_forest_add_mixes_token_ids_counts_and_empty_nodes():
    forest = treecredit.Forest()
    root = forest.add(None, (), group="q")
    forest.add(root, [5, 6], reward=1.0, loss_mask=[True, False])
    forest.add(root, 0, reward=0.0)
    assert forest.token_ids.tolist() == [5, 6]
    assert forest.loss_mask.tolist() == [True, False]
    with pytest.raises(ValueError, match="node 3: has no token_ids, which other nodes give"):
        forest.add(root, 3, reward=0.0)
        forest.arrays
    with pytest.raises(ValueError, match="parent 9 is not an existing node"):
        forest.add(9, [1])
    with pytest.raises(ValueError, match="a root needs a group"):
        forest.add(None, [1])
