"""SRL's step similarity reward (ALGORITHMS.md section 9): a Score call with estimator "srl", its inputs and result.

    forest, steps = srl_batch([expert_steps], [[actions_for_step_1, actions_for_step_2, ...]])
    result = client.score(forest, "srl", step_similarity=steps)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.v1 import srl_pb2 as pb


@dataclass
class StepSimilarity:
    """SRL's inputs beside the forest (each tree one expert trajectory; an action for step k is a leaf
    at depth k). `expert_steps[r]`: tree r's steps e_1..e_S (trees in root order); `actions`: one text
    per leaf (leaves ascending), None where the action could not be parsed. Without `actions` the
    forest's leaf rewards are the step rewards already; `parsed` (bool `[P]`) then marks unparseable ones."""

    expert_steps: Sequence[Sequence[str]] = ()
    actions: Sequence[str | None] | None = None
    parsed: np.ndarray | None = None
    min_std: float | None = None

    def to_proto(self) -> pb.StepSimilarity:
        message = pb.StepSimilarity(expert_steps=[step for steps in self.expert_steps for step in steps],
                                    num_steps=_wire.encode([len(steps) for steps in self.expert_steps], np.int64))
        parsed = self.parsed
        if self.actions is not None:
            message.actions.extend("" if action is None else action for action in self.actions)
            parsed = np.array([action is not None for action in self.actions], bool)
        if parsed is not None:
            message.parsed.CopyFrom(_wire.encode(np.asarray(parsed, np.bool_)))
        if self.min_std is not None:
            message.min_std = self.min_std
        return message


def srl_batch(expert_steps: Sequence[Sequence[str]],
              actions: Sequence[Sequence[Sequence[str | None]]], *, min_std: float | None = None,
              ) -> tuple[Forest, StepSimilarity]:
    """The forest and inputs of an SRL batch: `actions[r][k]` are the model's actions for step k+1 of
    expert trajectory r (None: unparseable). Each trajectory is a trunk (root, e_1, e_2, ...) in its own
    group; the actions for step k are leaves forked from the trunk at depth k-1. Leaf rewards are
    placeholders (0): the service scores the action texts. Every trajectory needs at least one action, and
    actions only for steps it has (ValueError naming `actions[r]` otherwise)."""
    if len(actions) != len(expert_steps):
        raise ValueError(f"actions: {len(actions)} lists of actions for {len(expert_steps)} expert trajectories")
    forest = Forest()
    leaf_parents, leaf_actions = [], []
    for r, per_step in enumerate(actions):
        deepest = max((k for k, step_actions in enumerate(per_step) if step_actions), default=-1)
        if deepest < 0:
            raise ValueError(f"actions[{r}]: expert trajectory {r} has no actions; give each trajectory at least "
                             "one, or leave it out")
        if deepest >= len(expert_steps[r]):
            raise ValueError(f"actions[{r}][{deepest}]: actions for step {deepest + 1}, but expert trajectory {r} "
                             f"has {len(expert_steps[r])} steps")
        trunk = [forest.add(None, group=r)]
        for _ in range(deepest):
            trunk.append(forest.add(trunk[-1]))
        for k, step_actions in enumerate(per_step[: deepest + 1]):
            leaf_parents += [trunk[k]] * len(step_actions)
            leaf_actions += list(step_actions)
    for parent in leaf_parents:
        forest.add(parent, reward=0.0)
    return forest, StepSimilarity(expert_steps, leaf_actions, min_std=min_std)


@dataclass
class StepSimilarityResult(_wire.Results):
    """`step_reward`: float64 `[N]` (NaN off leaves); `step_prompt`: int64 `[K]` nodes; `kept`: bool `[K]`."""

    step_reward: np.ndarray
    step_prompt: np.ndarray
    kept: np.ndarray
