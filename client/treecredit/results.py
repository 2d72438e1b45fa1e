"""What the service returns, as numpy arrays, with token layouts expanded from the forest the client holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.structures import ReflectionResult, StepSimilarityResult, ToolCalls, score_extras
from treecredit.tokens import TraceConfidence
from treecredit.topology import TrajectoryLayout
from treecredit.v1 import credit_pb2 as pb


def _array(tensor, field_name: str, ndim: int = 1) -> np.ndarray:
    dtypes = (*_wire.INTEGER, *_wire.FLOAT)
    return _wire.decode(tensor, field_name, dtypes=dtypes, ndim=ndim)


class Preferences(NamedTuple):
    """Sibling pairs `[P]` each: V(winner) - V(loser) = margin, both at `depth`."""

    winner: np.ndarray
    loser: np.ndarray
    margin: np.ndarray
    depth: np.ndarray


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
            preferences=Preferences(*(_array(getattr(prefs, f), f) for f in Preferences._fields)),
            depth_profile=DepthProfile(*(_array(getattr(profile, f), f) for f in DepthProfile._fields)),
            sharing=PrefixSharing(*(getattr(response.sharing, f) for f in PrefixSharing._fields)),
            **score_extras(response, tool_calls),
            trace_confidence=(TraceConfidence.from_proto(response.trace_confidence)
                              if response.HasField("trace_confidence") else None),
            estimator=estimator,
        )

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(advantages float32 [P, T_max], mask bool [P, T_max], leaf_ids int64 [P])`, one row per
        trajectory (leaves ascending); mask is the loss mask inside each trajectory, False in the padding."""
        if self._padded is None:
            forest = self.forest
            leaves = forest.leaves
            layout = TrajectoryLayout.of(forest.topology, forest.num_tokens, leaves)
            if self.scope == "leaf":
                values = self.leaf_advantages[leaves][layout.row]
            elif self.scope == "tool_call":  # A_succ(l) + M(t) A_act(l)
                values = (self.leaf_advantages[leaves][layout.row]
                          + self.tool_call_mask[layout.token] * self.action_advantages[leaves][layout.row])
            else:
                node_of_token = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
                values = self.node_advantages[node_of_token[layout.token]]
            mask_values = np.ones(len(layout.token), bool) if forest.loss_mask is None else forest.loss_mask[layout.token]
            shape = (len(leaves), int(layout.lengths.max(initial=0)))
            advantages, mask = np.zeros(shape, np.float32), np.zeros(shape, bool)
            advantages[layout.row, layout.column] = np.where(mask_values, values, 0.0)
            mask[layout.row, layout.column] = mask_values
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
