"""SRL step similarity reward (ALGORITHMS.md section 9) on a validated forest.

Each tree is one expert trajectory: a trunk from its root, and the actions for step k are leaves
forked from the trunk at depth k-1. A step-prompt is a leaf's parent; rewards are normalised with z
(section 2) over the leaves of one step-prompt, and a step-prompt whose rewards barely vary is dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from treecredit.errors import InvalidArgument
from treecredit_server.compute.credit import segment_stats, z_scores
from treecredit_server.compute.forest import ForestArrays

MIN_STD = 1e-4
UNPARSED_REWARD = -1.0


@dataclass(frozen=True)
class StepCredit:
    step_reward: np.ndarray     # float64 [N], NaN off the leaves
    leaf_advantage: np.ndarray  # float64 [N], NaN off the leaves; 0 under a dropped step-prompt
    step_prompt: np.ndarray     # int64 [K], ascending
    kept: np.ndarray            # bool [K]


def similarity(action: str, expert_step: str) -> float:
    """difflib's `SequenceMatcher(None, action, expert_step).ratio()` (default autojunk), in [0, 1]."""
    return difflib.SequenceMatcher(None, action, expert_step).ratio()


def expert_step_of_leaves(forest: ForestArrays, num_steps: np.ndarray) -> np.ndarray:
    """int64 `[P]`: index into the concatenated expert steps of the step each leaf's action answers
    (step k = the leaf's depth, of its own tree's steps)."""
    roots = np.flatnonzero(forest.parent < 0)
    if len(num_steps) != len(roots):
        raise InvalidArgument("step_similarity.num_steps", f"has {len(num_steps)} entries for {len(roots)} trees")
    if (num_steps < 0).any():
        tree = int(np.argmax(num_steps < 0))
        raise InvalidArgument(f"step_similarity.num_steps[{tree}]", f"negative step count {num_steps[tree]}")
    leaves = forest.leaves
    tree = np.searchsorted(roots, forest.topology.root[leaves])
    step = forest.topology.depth[leaves]
    bad = (step < 1) | (step > num_steps[tree])
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(
            f"step_similarity.num_steps[{tree[i]}]",
            f"leaf {leaves[i]} at depth {step[i]} answers step {step[i]}, but its tree has {num_steps[tree[i]]} steps",
        )
    return (np.cumsum(num_steps) - num_steps)[tree] + step - 1


def step_rewards(
    forest: ForestArrays,
    parsed: np.ndarray,
    expert_steps: Sequence[str] = (),
    num_steps: np.ndarray | None = None,
    actions: Sequence[str] = (),
) -> np.ndarray:
    """Step reward per leaf, float64 `[N]` (NaN elsewhere): the similarity of `actions [P]` to their
    expert steps, or the forest's leaf rewards when no actions are given; -1 where `parsed [P]` is False."""
    leaves = forest.leaves
    rooted = forest.parent[leaves] < 0
    if rooted.any():
        leaf = int(leaves[np.argmax(rooted)])
        raise InvalidArgument(f"forest.parent[{leaf}]", f"leaf {leaf} is a root; an action forks from a trunk node")
    if actions:
        step = expert_step_of_leaves(forest, num_steps)
        if len(expert_steps) != int(num_steps.sum()):
            raise InvalidArgument(
                "step_similarity.expert_steps", f"has {len(expert_steps)} texts but num_steps sums to {num_steps.sum()}"
            )
        given = np.fromiter((similarity(a, expert_steps[e]) for a, e in zip(actions, step.tolist())),
                            np.float64, len(leaves))
    else:
        given = forest.reward[leaves]
    out = np.full(forest.num_nodes, np.nan)
    out[leaves] = np.where(parsed, given, UNPARSED_REWARD)
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
