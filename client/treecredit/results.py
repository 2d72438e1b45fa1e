"""What the service returns, as numpy arrays, with token layouts expanded from the forest the client holds."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.reflection import ReflectionResult
from treecredit.srl import StepSimilarityResult
from treecredit.toolpo import ToolCalls
from treecredit.tokens import TraceConfidence
from treecredit.topology import TrajectoryLayout
from treecredit.v1 import credit_pb2 as pb


def _array(tensor, field_name: str) -> np.ndarray:
    return _wire.decode_result(tensor, field_name)


def _score_extras(response: pb.ScoreResponse, tool_calls: ToolCalls | None) -> dict:
    """The ScoreResult fields that ToolPO, SRL and the reflection reward add."""
    extras = {}
    if response.HasField("action_advantages"):
        extras.update(action_advantages=_array(response.action_advantages, "action_advantages"),
                      tool_call_mask=tool_calls.tool_call_mask)
    if response.HasField("step_similarity"):
        extras["step_similarity"] = StepSimilarityResult.from_proto(response.step_similarity)
    if response.HasField("reflection"):
        extras["reflection"] = ReflectionResult.from_proto(response.reflection)
    return extras


@dataclass(frozen=True)
class Preferences:
    """P sibling pairs, columnar: V(winner) - V(loser) = margin, both at `depth`. `len(preferences)` is P;
    `winner`, `loser`, `depth` are int32 `[P]` (node ids, as sent), `margin` float64 `[P]`."""

    winner: np.ndarray
    loser: np.ndarray
    margin: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return len(self.winner)


class DepthProfile(NamedTuple):
    """The granularity report, one row per depth d = 1..D."""

    depth: np.ndarray
    branch_points: np.ndarray
    sibling_pairs: np.ndarray
    mean_abs_advantage: np.ndarray
    tokens: np.ndarray


class PrefixSharing(NamedTuple):
    unique_tokens: int
    trajectory_tokens: int
    sharing: float
    trajectories_per_1k_tokens: float


@dataclass
class ScoreResult:
    """Advantages of a scored forest. `node_advantages`, `leaf_advantages`: float64 `[num_nodes]`."""

    forest: Forest
    scope: str  # "leaf": a trajectory's tokens share A(l); "node": node n's tokens get a(n); "tool_call": ToolPO
    node_advantages: np.ndarray
    leaf_advantages: np.ndarray
    preferences: Preferences
    depth_profile: DepthProfile
    sharing: PrefixSharing
    action_advantages: np.ndarray | None = None  # toolpo: A_act at leaves, float64 [num_nodes]
    tool_call_mask: np.ndarray | None = None     # toolpo: bool [T], from the request
    step_similarity: StepSimilarityResult | None = None  # srl
    reflection: ReflectionResult | None = None   # when the request carried a Reflection
    trace_confidence: TraceConfidence | None = None  # when the forest carried confidence or topk_logprobs
    estimator: str = ""  # the estimator's name, as given to `score`
    _padded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _lengths: np.ndarray | None = field(default=None, repr=False)  # tokens per trajectory [P]

    @classmethod
    def from_proto(cls, forest: Forest, response: pb.ScoreResponse, tool_calls: ToolCalls | None = None,
                   estimator: str = "") -> ScoreResult:
        prefs, profile = response.preferences, response.depth_profile
        return cls(
            forest=forest,
            scope=pb.AdvantageScope.Name(response.scope).removeprefix("ADVANTAGE_SCOPE_").lower(),
            node_advantages=_array(response.node_advantages, "node_advantages"),
            leaf_advantages=_array(response.leaf_advantages, "leaf_advantages"),
            preferences=Preferences(*(_array(getattr(prefs, f.name), f.name) for f in fields(Preferences))),
            depth_profile=DepthProfile(*(_array(getattr(profile, f), f) for f in DepthProfile._fields)),
            sharing=PrefixSharing(*(getattr(response.sharing, f) for f in PrefixSharing._fields)),
            **_score_extras(response, tool_calls),
            trace_confidence=(TraceConfidence.from_proto(response.trace_confidence)
                              if response.HasField("trace_confidence") else None),
            estimator=estimator,
        )

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(advantages float32 [P, T_max], mask bool [P, T_max], leaf_ids int64 [P])`, one row per
        trajectory (leaves ascending); mask is the loss mask inside each trajectory, False in the padding,
        and advantages are 0 where mask is False."""
        if self._padded is None:
            forest = self.forest
            leaves = forest.leaves
            layout = TrajectoryLayout.of(forest.topology, forest.num_tokens, leaves)
            if forest.loss_mask is None:
                kept, mask = np.ones(int(forest.num_tokens.sum()), bool), layout.valid()
            else:
                kept, mask = forest.loss_mask, layout.expand(forest.loss_mask)
            success = self.leaf_advantages[leaves].astype(np.float32)
            if self.scope == "node":  # node n's tokens get a(n)
                per_token = np.repeat(self.node_advantages.astype(np.float32), forest.num_tokens)
                advantages = layout.expand(np.where(kept, per_token, np.float32(0)))
            elif forest.loss_mask is None:  # every token of path(l) gets A(l)
                advantages = layout.per_row(success)
            else:
                advantages = _rows_where(mask, success)
            if self.scope == "tool_call":  # ... + M(t) A_act(l)
                called = layout.expand(kept & self.tool_call_mask)
                action = self.action_advantages[leaves].astype(np.float32)
                for rows in _row_blocks(len(leaves)):
                    advantages[rows] += called[rows] * action[rows, None]
            self._padded, self._lengths = (advantages, mask, leaves), layout.lengths
        return self._padded

    def token_advantages(self, leaf: int) -> np.ndarray:
        """float32 `[tokens of path(leaf)]`: the trajectory's token advantages, loss mask applied."""
        advantages, _, leaves = self.padded()
        row = np.searchsorted(leaves, leaf)
        if row >= len(leaves) or leaves[row] != leaf:
            raise ValueError(f"node {leaf} is not a leaf")
        return advantages[row, : self._lengths[row]]

    def report(self, path, *, others=None, verdicts=None, labels=None, title: str | None = None):
        """Write the HTML report of this result to `path` (see `treecredit.report`); `others` maps more estimators'
        names to their results on the same forest (the page switches between them), `verdicts` is
        `treecredit.report.gather`'s second half. Returns the path."""
        from treecredit import report  # imports this module

        results = {self.estimator or self.scope: self, **(others or {})}
        return report.write(path, self.forest, results, verdicts, labels=labels,
                            title=title or f"treecredit report: {', '.join(results)}")


def _row_blocks(rows: int, at_once: int = 256) -> list[slice]:
    """Row ranges small enough that a block of a padded array stays in cache."""
    return [slice(start, start + at_once) for start in range(0, rows, at_once)]


def _rows_where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """float32 `[P, W]`: `values[r]` where `mask[r, c]`, else 0; block by block (a cast and a product per block)."""
    out = np.empty(mask.shape, np.float32)
    for rows in _row_blocks(len(out)):
        np.copyto(out[rows], mask[rows])
        out[rows] *= values[rows, None]
    return out
