"""R³'s reverse curriculum (ALGORITHMS.md section 10): the Curriculum RPC's history, request and plan.

    plan = client.curriculum([history])                           # history: CurriculumHistory
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.v1 import curriculum_pb2 as pb

MODES = {"staged": pb.CURRICULUM_MODE_STAGED, "mixed": pb.CURRICULUM_MODE_MIXED}


@dataclass
class CurriculumHistory:
    """The rollouts run so far for one demonstration of S = `num_steps` steps, in the order they were run:
    start depth (0..S-1; stage s = 1..S starts at S - s) and outcome reward of each.

    A stage advances once the success rate of its last `window` rollouts reaches `advance_at`: it needs a full
    window of rollouts from its start depth first (`CurriculumPlan.rollouts_before_advance` says how many more),
    and a mastered stage never falls back."""

    num_steps: int
    start_depth: list[int] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)

    def record(self, start_depth: int, reward: float) -> None:
        if not 0 <= start_depth < self.num_steps:
            raise ValueError(f"start depth {start_depth} is outside 0..{self.num_steps - 1}: stage s = 1..S starts "
                             f"at depth S - s, and from depth S = {self.num_steps} there is no step left to take")
        self.start_depth.append(int(start_depth))
        self.reward.append(float(reward))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(parent, reward, trunk_end)` of this demonstration's tree: root, trunk of depth S, then one
        leaf per rollout forked from the trunk at its start depth. The trunk's end carries reward 1."""
        trunk = np.arange(-1, self.num_steps)
        parent = np.concatenate((trunk, np.asarray(self.start_depth, np.int64)))
        reward = np.concatenate((np.full(self.num_steps, np.nan), [1.0], self.reward))
        return parent, reward, self.num_steps


def curriculum_request(histories: Sequence[CurriculumHistory], *, mode: str = "staged", window: int | None = None,
                       advance_at: float | None = None, success_at: float | None = None) -> pb.CurriculumRequest:
    if mode not in MODES:
        raise ValueError(f"unknown curriculum mode {mode!r}; expected one of {', '.join(MODES)}")
    parents, rewards, groups, trunk_ends, offset = [], [], [], [], 0
    for d, history in enumerate(histories):
        parent, reward, trunk_end = history.arrays()
        parents.append(np.where(parent >= 0, parent + offset, -1))
        rewards.append(reward)
        groups.append(np.full(len(parent), d))
        trunk_ends.append(trunk_end + offset)
        offset += len(parent)
    concat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    forest = Forest.from_arrays(concat(parents, np.int64), group=concat(groups, np.int64),
                                reward=concat(rewards, np.float64))
    message = pb.CurriculumRequest(forest=forest.to_proto(), trunk_end=_wire.encode(trunk_ends, np.int64),
                                   mode=MODES[mode])
    for name, value in (("window", window), ("advance_at", advance_at), ("success_at", success_at)):
        if value is not None:
            setattr(message, name, value)
    return message


@dataclass
class CurriculumPlan(_wire.Results):
    """Per demonstration (D): `num_steps`, `stage` (1..S), `complete`, `failing_step` (0: none),
    `rollouts_before_advance` (rollouts still to run from the stage's start depth before it has a full window
    and can advance; 0 once it has) `[D]`; per start depth k = 0..S_max: `sample_probability`, `success_rate`
    (NaN: no rollouts), `rollouts` `[D, S_max+1]`. A mastered stage never falls back."""

    NDIM = {"sample_probability": 2, "success_rate": 2, "rollouts": 2}
    num_steps: np.ndarray
    stage: np.ndarray
    complete: np.ndarray
    sample_probability: np.ndarray
    success_rate: np.ndarray
    rollouts: np.ndarray
    failing_step: np.ndarray
    rollouts_before_advance: np.ndarray

    def sample_start_depths(self, count: int, rng: np.random.Generator, demonstration: int = 0) -> np.ndarray:
        """int64 `[count]`: start depths for the next rollouts of one demonstration, drawn from the mix."""
        probability = self.sample_probability[demonstration]
        return rng.choice(len(probability), size=count, p=probability).astype(np.int64)
