"""DeepAgent's ToolPO tool-call credit (ALGORITHMS.md section 8) on a validated forest, whole-array numpy.

Rollouts are the leaves of a group. Token t of rollout l gets `A_succ(l) + M(t) * A_act(l)`; the token
layout is expanded by the client from these per-leaf values and the tool-call mask it holds.
"""

from __future__ import annotations

import numpy as np

from treecredit_server.compute.credit import z_scores
from treecredit_server.compute.forest import ForestArrays


def advantages(forest: ForestArrays, action_reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(A_succ, A_act)`, float64 `[N]` each, NaN off the leaves: the forest's leaf rewards (success)
    and `action_reward [N]` (finite at the leaves), each mean-centred over its group's leaves (no std)."""
    leaves = forest.leaves
    group = forest.group[leaves]
    success, action = (np.full(forest.num_nodes, np.nan) for _ in range(2))
    success[leaves] = z_scores(forest.reward[leaves], group, forest.num_groups, normalize_std=False)
    action[leaves] = z_scores(action_reward[leaves], group, forest.num_groups, normalize_std=False)
    return success, action
