"""Step-level credit on a validated forest: ALGORITHMS.md sections 2-3, whole-array numpy.

`score()` is the entry point; it returns plain arrays and knows nothing of protobuf or gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from treecredit_server.compute.forest import ForestArrays

EPS = 1e-6


class Estimator(Enum):
    GRPO = "grpo"
    TREE_GRPO = "tree_grpo"
    TREERL = "treerl"
    VALUE_DIFF = "value_diff"
    TOOLPO = "toolpo"  # section 8; leaf advantages from `toolpo`
    SRL = "srl"  # section 9; leaf advantages from `srl`

    @property
    def leaf_level(self) -> bool:
        """Whether the estimator scores leaves (every token of a trajectory shares A(l))."""
        return self in (Estimator.GRPO, Estimator.TREE_GRPO, Estimator.TOOLPO, Estimator.SRL)


@dataclass(frozen=True)
class Preferences:
    """Sibling pairs, `[P]` each: V(winner) - V(loser) = margin > min_margin."""

    winner: np.ndarray
    loser: np.ndarray
    margin: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class DepthProfile:
    """One row per depth d = 1..D, `[D]` each."""

    depth: np.ndarray
    branch_points: np.ndarray
    sibling_pairs: np.ndarray
    mean_abs_advantage: np.ndarray
    tokens: np.ndarray


@dataclass(frozen=True)
class PrefixSharing:
    unique_tokens: int
    trajectory_tokens: int
    sharing: float
    trajectories_per_1k_tokens: float


@dataclass(frozen=True)
class Credit:
    node_advantages: np.ndarray  # float64 [N]
    leaf_advantages: np.ndarray  # float64 [N], NaN off the leaves and for node-level estimators
    preferences: Preferences
    depth_profile: DepthProfile
    sharing: PrefixSharing


def segment_stats(values: np.ndarray, segment: np.ndarray, num_segments: int):
    """Count, mean and sample std (n-1; 0 for a lone sample) of `values [M]` per segment, `[num_segments]` each."""
    count = np.bincount(segment, minlength=num_segments)
    mean = np.bincount(segment, weights=values, minlength=num_segments) / np.maximum(count, 1)
    squares = np.bincount(segment, weights=(values - mean[segment]) ** 2, minlength=num_segments)
    return count, mean, np.sqrt(squares / np.maximum(count - 1, 1))


def z_scores(values: np.ndarray, segment: np.ndarray, num_segments: int, *, normalize_std: bool) -> np.ndarray:
    """`z(x; S)` of section 2 for each value against its segment; a lone sample gets 0. `[M]`."""
    count, mean, std = segment_stats(values, segment, num_segments)
    centred = values - mean[segment]
    if normalize_std:
        centred = centred / (std[segment] + EPS)
    return np.where(count[segment] > 1, centred, 0.0)


def subtree_values(forest: ForestArrays) -> tuple[np.ndarray, np.ndarray]:
    """`V(n)` (mean reward over the leaves below n) and `|L(n)|`, `[N]` each."""
    is_leaf = forest.topology.is_leaf
    leaf_count = forest.topology.subtree_sum(is_leaf.astype(np.int64))
    reward_sum = forest.topology.subtree_sum(np.where(is_leaf, forest.reward, 0.0))
    return reward_sum / leaf_count, leaf_count


def group_values(forest: ForestArrays) -> np.ndarray:
    """`V(g)` of each node's group, `[N]`."""
    leaves = forest.leaves
    group_of_leaf = forest.group[leaves]
    total = np.bincount(group_of_leaf, weights=forest.reward[leaves], minlength=forest.num_groups)
    count = np.bincount(group_of_leaf, minlength=forest.num_groups)
    return (total / np.maximum(count, 1))[forest.group]


def leaf_advantages(forest: ForestArrays, estimator: Estimator, *, normalize_std: bool) -> np.ndarray:
    """`A(l)` for grpo / tree_grpo, float64 `[N]` with NaN off the leaves."""
    leaves = forest.leaves
    rewards = forest.reward[leaves]
    advantage = z_scores(rewards, forest.group[leaves], forest.num_groups, normalize_std=normalize_std)
    if estimator is Estimator.TREE_GRPO:
        tree = forest.topology.root[leaves]
        advantage = advantage + z_scores(rewards, tree, forest.num_nodes, normalize_std=normalize_std)
    out = np.full(forest.num_nodes, np.nan)
    out[leaves] = advantage
    return out


def node_advantages(
    forest: ForestArrays,
    estimator: Estimator,
    leaf_advantage: np.ndarray,
    value: np.ndarray,
    leaf_count: np.ndarray,
    *,
    sibling_std: bool,
) -> np.ndarray:
    """`a(n)`, float64 `[N]`: the mean leaf advantage below n, or the estimator's value gain."""
    if estimator.leaf_level:
        below = forest.topology.subtree_sum(np.nan_to_num(leaf_advantage, nan=0.0))
        return below / leaf_count
    group_value = group_values(forest)
    is_root = forest.parent < 0
    parent_value = np.where(is_root, group_value, value[np.maximum(forest.parent, 0)])
    if estimator is Estimator.TREERL:
        return ((value - group_value) + (value - parent_value)) / np.sqrt(leaf_count)
    gain = value - parent_value
    if not sibling_std:
        return gain
    # A root's siblings are the other roots of its group: number those families after the nodes.
    family = np.where(is_root, forest.num_nodes + forest.group, forest.parent)
    count, _, std = segment_stats(value, family, forest.num_nodes + forest.num_groups)
    return np.where(count[family] > 1, gain / (std[family] + EPS), 0.0)


def sibling_preferences(forest: ForestArrays, value: np.ndarray, *, min_margin: float) -> Preferences:
    """Every ordered pair of children of a branch point whose values differ by more than `min_margin`.

    Each unordered pair of siblings is looked at once and oriented by the sign of its margin (`sibling_pairs` of
    them, which decoding bounds).
    """
    child = np.flatnonzero(forest.parent >= 0)
    child = child[np.argsort(forest.parent[child], kind="stable")]
    family_size = forest.topology.num_children[forest.parent[child]]
    child, family_size = child[family_size > 1], family_size[family_size > 1]
    # Position of each child within its family: children of one parent are contiguous after the sort.
    starts = np.flatnonzero(np.diff(forest.parent[child], prepend=-1))
    rank = np.arange(len(child)) - np.repeat(starts, np.diff(np.append(starts, len(child))))
    later = family_size - 1 - rank  # siblings after this child in its family
    candidates = int(later.sum())
    first = np.repeat(np.arange(len(child)), later)
    second = first + 1 + (np.arange(candidates) - np.repeat(np.cumsum(later) - later, later))
    margin = value[child[first]] - value[child[second]]
    keep = np.abs(margin) > min_margin
    first, second, margin = first[keep], second[keep], margin[keep]
    flip = margin < 0
    winner = child[np.where(flip, second, first)]
    loser = child[np.where(flip, first, second)]
    return Preferences(winner, loser, np.abs(margin), forest.topology.depth[winner])


def sibling_pairs(forest: ForestArrays) -> int:
    """How many unordered pairs of siblings the branch points give: sum of k (k - 1) / 2 over k children."""
    children = forest.topology.num_children.astype(np.int64)
    return int((children * (children - 1) // 2).sum())


def depth_profile(forest: ForestArrays, node_advantage: np.ndarray, preferences: Preferences) -> DepthProfile:
    """The granularity report: per depth d >= 1, how much structure and signal sits there."""
    depth, deepest = forest.topology.depth, forest.topology.max_depth
    rows = max(deepest, 0)

    def per_depth(at: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(at, weights=weights, minlength=deepest + 1)

    nodes = per_depth(depth)
    branching = forest.topology.num_children >= 2
    return DepthProfile(
        depth=np.arange(1, rows + 1, dtype=np.int64),
        branch_points=per_depth(depth[branching])[:rows],
        sibling_pairs=per_depth(preferences.depth)[1:],
        mean_abs_advantage=per_depth(depth, np.abs(node_advantage))[1:] / np.maximum(nodes[1:], 1),
        tokens=per_depth(depth, forest.num_tokens.astype(np.float64))[1:].astype(np.int64),
    )


def prefix_sharing(forest: ForestArrays) -> PrefixSharing:
    """How many more trajectory tokens the trees hold than they cost to generate."""
    unique = int(forest.num_tokens.sum())
    trajectory = int(forest.topology.path_sum(forest.num_tokens)[forest.leaves].sum())
    return PrefixSharing(
        unique_tokens=unique,
        trajectory_tokens=trajectory,
        sharing=trajectory / unique if unique else 0.0,
        trajectories_per_1k_tokens=1000.0 * len(forest.leaves) / unique if unique else 0.0,
    )


def score(
    forest: ForestArrays,
    estimator: Estimator,
    *,
    normalize_std: bool = True,
    sibling_std: bool = False,
    min_margin: float = 0.0,
    leaf_advantage: np.ndarray | None = None,
) -> Credit:
    """Advantages, preferences, depth profile and prefix sharing of a forest (sections 2-3).

    `leaf_advantage` (float64 `[N]`): A(l) computed elsewhere (toolpo, srl), used as given."""
    value, leaf_count = subtree_values(forest)
    if leaf_advantage is None:
        leaf_advantage = (leaf_advantages(forest, estimator, normalize_std=normalize_std) if estimator.leaf_level
                          else np.full(forest.num_nodes, np.nan))
    node_advantage = node_advantages(forest, estimator, leaf_advantage, value, leaf_count, sibling_std=sibling_std)
    preferences = sibling_preferences(forest, value, min_margin=min_margin)
    return Credit(
        node_advantages=node_advantage,
        leaf_advantages=leaf_advantage,
        preferences=preferences,
        depth_profile=depth_profile(forest, node_advantage, preferences),
        sharing=prefix_sharing(forest),
    )
