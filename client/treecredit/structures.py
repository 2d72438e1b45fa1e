"""Requests and results of the structures besides trees (ALGORITHMS.md sections 6-10): ToolPO tool-call
credit, SRL step similarity, DRO's reflection reward and R³'s reverse curriculum.

    result = client.score(forest, "toolpo", tool_calls=ToolCalls(action_reward, tool_call_mask))
    forest, steps = srl_batch([expert_steps], [[actions_for_step_1, actions_for_step_2, ...]])
    result = client.score(forest, "srl", step_similarity=steps)
    reflected = client.reflect(Reflection([ell_q1, ell_q2]))    # or Score(..., reflection=Reflection(...))
    plan = client.curriculum([history])                           # history: CurriculumHistory
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from treecredit import _wire
from treecredit.arrays import as_numpy
from treecredit.forest import Forest
from treecredit.v1 import structures_pb2 as pb


def _array(tensor, name: str, ndim: int = 1) -> np.ndarray:
    return _wire.decode(tensor, name, dtypes=(*_wire.INTEGER, *_wire.FLOAT, *_wire.MASK), ndim=ndim)


# -- ToolPO --------------------------------------------------------------------------------------
@dataclass
class ToolCalls:
    """ToolPO's inputs beside the forest, whose leaf rewards are the success rewards.

    `action_reward`: float `[N]`, R_act at leaves (NaN elsewhere); `tool_call_mask`: bool `[T]`, 1 on
    tool-call tokens, laid out by node like the forest's loss mask."""

    action_reward: np.ndarray
    tool_call_mask: np.ndarray

    def __post_init__(self) -> None:
        self.action_reward = as_numpy(self.action_reward, np.float64)
        self.tool_call_mask = as_numpy(self.tool_call_mask, np.bool_)

    def to_proto(self) -> pb.ToolCalls:
        return pb.ToolCalls(action_reward=_wire.encode(self.action_reward),
                            tool_call_mask=_wire.encode(self.tool_call_mask))


# -- SRL -----------------------------------------------------------------------------------------
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
    placeholders (0): the service scores the action texts. Every trajectory needs at least one action
    (ValueError naming `actions[r]` otherwise): one without any has nothing to score."""
    forest = Forest()
    leaf_parents, leaf_actions = [], []
    for r, per_step in enumerate(actions):
        deepest = max((k for k, step_actions in enumerate(per_step) if step_actions), default=-1)
        if deepest < 0:
            raise ValueError(f"actions[{r}]: expert trajectory {r} has no actions; give each trajectory at least "
                             "one, or leave it out")
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
class StepSimilarityResult:
    """`step_reward`: float64 `[N]` (NaN off leaves); `step_prompt`: int64 `[K]` nodes; `kept`: bool `[K]`."""

    step_reward: np.ndarray
    step_prompt: np.ndarray
    kept: np.ndarray

    @classmethod
    def from_proto(cls, message: pb.StepSimilarityResult) -> StepSimilarityResult:
        return cls(*(_array(getattr(message, f), f) for f in ("step_reward", "step_prompt", "kept")))


# -- Reflection ----------------------------------------------------------------------------------
@dataclass
class Reflection:
    """DRO's R3 inputs: per query q a `[G_q, L_q]` matrix `ell[q][i, j] = log pi(y_j | q, c_i, y_<j)` and
    optionally a baseline `[L_q]`. Filter (section 6): `min_spread` or `drop_percent`, not both.
    Inside a Score call, query q is group q and its rollouts are that group's leaves, ascending."""

    ell: Sequence[np.ndarray]
    baseline: Sequence[np.ndarray] | None = None
    power: float | None = None
    min_spread: float | None = None
    drop_percent: float | None = None

    def to_proto(self, into: pb.ReflectRequest | None = None) -> pb.ReflectRequest:
        matrices = [as_numpy(m, np.float64) for m in self.ell]
        matrices = [m.reshape(m.shape[0], -1) for m in matrices]
        message = pb.ReflectRequest() if into is None else into
        _wire.encode(np.concatenate([m.reshape(-1) for m in matrices]) if matrices else np.zeros(0), into=message.ell)
        _wire.encode([m.shape[0] for m in matrices], np.int64, into=message.rows)
        _wire.encode([m.shape[1] for m in matrices], np.int64, into=message.cols)
        if self.baseline is not None:
            message.baseline.CopyFrom(_wire.encode(np.concatenate([np.ravel(b) for b in self.baseline])
                                                   if len(self.baseline) else np.zeros(0)))
        for name in ("power", "min_spread", "drop_percent"):
            if getattr(self, name) is not None:
                setattr(message, name, getattr(self, name))
        return message


@dataclass
class ReflectionResult:
    """`reward` float64 `[sum G_q]` (R3 per rollout), `weights`/`sigma` float64 `[sum L_q]`,
    `spread` float64 `[Q]`, `kept` bool `[Q]` (the query filter's verdict)."""

    reward: np.ndarray
    weights: np.ndarray
    sigma: np.ndarray
    spread: np.ndarray
    kept: np.ndarray

    @classmethod
    def from_proto(cls, message: pb.ReflectResponse) -> ReflectionResult:
        return cls(*(_array(getattr(message, f), f) for f in ("reward", "weights", "sigma", "spread", "kept")))


def score_extras(response, tool_calls: ToolCalls | None) -> dict:
    """The ScoreResult fields that ToolPO, SRL and the reflection reward add, from a ScoreResponse."""
    extras = {}
    if response.HasField("action_advantages"):
        extras.update(action_advantages=_array(response.action_advantages, "action_advantages"),
                      tool_call_mask=tool_calls.tool_call_mask)
    if response.HasField("step_similarity"):
        extras["step_similarity"] = StepSimilarityResult.from_proto(response.step_similarity)
    if response.HasField("reflection"):
        extras["reflection"] = ReflectionResult.from_proto(response.reflection)
    return extras


# -- Reverse curriculum --------------------------------------------------------------------------
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
class CurriculumPlan:
    """Per demonstration (D): `num_steps`, `stage` (1..S), `complete`, `failing_step` (0: none),
    `rollouts_before_advance` (rollouts still to run from the stage's start depth before it has a full window
    and can advance; 0 once it has) `[D]`; per start depth k = 0..S_max: `sample_probability`, `success_rate`
    (NaN: no rollouts), `rollouts` `[D, S_max+1]`. A mastered stage never falls back."""

    num_steps: np.ndarray
    stage: np.ndarray
    complete: np.ndarray
    sample_probability: np.ndarray
    success_rate: np.ndarray
    rollouts: np.ndarray
    failing_step: np.ndarray
    rollouts_before_advance: np.ndarray

    @classmethod
    def from_proto(cls, message: pb.CurriculumResponse) -> CurriculumPlan:
        ndim = {"sample_probability": 2, "success_rate": 2, "rollouts": 2}
        return cls(**{f: _array(getattr(message, f), f, ndim.get(f, 1)) for f in cls.__dataclass_fields__})

    def sample_start_depths(self, count: int, rng: np.random.Generator, demonstration: int = 0) -> np.ndarray:
        """int64 `[count]`: start depths for the next rollouts of one demonstration, drawn from the mix."""
        probability = self.sample_probability[demonstration]
        return rng.choice(len(probability), size=count, p=probability).astype(np.int64)
