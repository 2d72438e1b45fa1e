"""DRO's reasoning reflection reward (ALGORITHMS.md section 7) and its query filter (section 6).

The arithmetic is the `treecredit_kernels.reflection_reward` kernel's; torch is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.tensors import as_tensor


@dataclass(frozen=True)
class Reflection:
    reward: np.ndarray   # float64 [sum G_q]; R3 per rollout
    weights: np.ndarray  # float64 [sum L_q]
    sigma: np.ndarray    # float64 [sum L_q]
    spread: np.ndarray   # float64 [Q]
    kept: np.ndarray     # bool [Q]


def reflect(
    ell: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    baseline: np.ndarray | None = None,
    *,
    power: float = 1.0,
    min_spread: float | None = None,
    drop_percent: float | None = None,
) -> Reflection:
    """R3 of each rollout, token weights and the query verdicts of ragged `ell [sum G_q * L_q]`."""
    from treecredit_kernels import reflection_reward

    result = reflection_reward(as_tensor(ell), as_tensor(rows), as_tensor(cols),
                               None if baseline is None else as_tensor(baseline), power=power)
    spread = result.spread.numpy()
    return Reflection(result.reward.numpy(), result.weights.numpy(), result.sigma.numpy(), spread,
                      query_verdicts(spread, min_spread=min_spread, drop_percent=drop_percent))


def query_verdicts(spread: np.ndarray, *, min_spread: float | None, drop_percent: float | None) -> np.ndarray:
    """bool `[Q]`, True where a query is kept: spread >= min_spread, or outside the floor(Q * drop_percent / 100)
    lowest spreads (ties broken by query order); everything is kept without a filter."""
    if min_spread is not None:
        return spread >= min_spread
    kept = np.ones(len(spread), bool)
    if drop_percent is not None:
        kept[np.argsort(spread, kind="stable")[: int(len(spread) * drop_percent / 100)]] = False
    return kept


def rollout_leaves(forest: ForestArrays) -> np.ndarray:
    """int64 `[P]`: the forest's leaves as rollouts of queries, group by group, ascending within a group."""
    leaves = forest.leaves
    return leaves[np.argsort(forest.group[leaves], kind="stable")]


def with_reflection_reward(forest: ForestArrays, reflection: Reflection) -> ForestArrays:
    """The forest with each leaf's R3 added to its reward (rollouts as `rollout_leaves` orders them)."""
    reward = forest.reward.copy()
    reward[rollout_leaves(forest)] += reflection.reward
    return replace(forest, reward=reward)
