"""SRL step similarity reward (ALGORITHMS.md section 9) on a validated forest.

Each tree is one expert trajectory: a trunk from its root, and the actions for step k are leaves forked from the
trunk at depth k-1 (`codec.srl` checks this and resolves each leaf's expert step). A step-prompt is a leaf's parent;
rewards are normalised with z (section 2) over the leaves of one step-prompt, and a step-prompt whose rewards
barely vary is dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from treecredit_server.compute.credit import segment_stats, z_scores
from treecredit_server.compute.forest import ForestArrays

MIN_STD = 1e-4
UNPARSED_REWARD = -1.0


@dataclass(frozen=True)
class StepInputs:
    """Validated: `parsed` bool `[P]`; with actions, `expert_step` int64 `[P]` indexes `expert_steps` for the
    action `actions[i]` of leaf i (leaves ascending)."""

    parsed: np.ndarray
    min_std: float = MIN_STD
    expert_steps: Sequence[str] = ()
    expert_step: np.ndarray | None = None
    actions: Sequence[str] = ()


@dataclass(frozen=True)
class StepCredit:
    step_reward: np.ndarray     # float64 [N], NaN off the leaves
    leaf_advantage: np.ndarray  # float64 [N], NaN off the leaves; 0 under a dropped step-prompt
    step_prompt: np.ndarray     # int64 [K], ascending
    kept: np.ndarray            # bool [K]


def similarity(action: str, expert_step: str) -> float:
    """difflib's `SequenceMatcher(None, action, expert_step).ratio()` (default autojunk), in [0, 1]."""
    return difflib.SequenceMatcher(None, action, expert_step).ratio()


def step_rewards(forest: ForestArrays, inputs: StepInputs) -> np.ndarray:
    """Step reward per leaf, float64 `[N]` (NaN elsewhere): the similarity of each leaf's action to its expert step,
    or the forest's leaf rewards when no actions are given; -1 where the action did not parse."""
    leaves = forest.leaves
    if inputs.actions:
        given = np.fromiter((similarity(a, inputs.expert_steps[e])
                             for a, e in zip(inputs.actions, inputs.expert_step.tolist())), np.float64, len(leaves))
    else:
        given = forest.reward[leaves]
    out = np.full(forest.num_nodes, np.nan)
    out[leaves] = np.where(inputs.parsed, given, UNPARSED_REWARD)
    return out


def step_credit(forest: ForestArrays, step_reward: np.ndarray, *, min_std: float, normalize_std: bool) -> StepCredit:
    """z of each leaf's step reward over its step-prompt's leaves; step-prompts with std <= min_std dropped."""
    leaves = forest.leaves
    prompt_of_leaf = forest.parent[leaves]
    step_prompt, segment = np.unique(prompt_of_leaf, return_inverse=True)
    rewards = step_reward[leaves]
    advantage = z_scores(rewards, segment, len(step_prompt), normalize_std=normalize_std)
    _, _, std = segment_stats(rewards, segment, len(step_prompt))
    kept = std > min_std
    leaf_advantage = np.full(forest.num_nodes, np.nan)
    leaf_advantage[leaves] = np.where(kept[segment], advantage, 0.0)
    return StepCredit(step_reward, leaf_advantage, step_prompt.astype(np.int64), kept)
