"""Filter and SuggestForks: request builders and results (ALGORITHMS.md sections 5, 6 and 11)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.reflection import Reflection
from treecredit.v1 import confidence_pb2 as pb

METRICS = ("lowest", "bottom10", "tail", "mean")
RANKINGS = ("neg_logprob", "window_confidence")
TRACE_REASONS = np.array(["", "confident", "low_confidence", "empty"])
QUERY_REASONS = np.array(["", "informative", "zero_variance", "low_reflection"])


def _enum_value(enum_type, prefix: str, name: str, known: Sequence[str]) -> int:
    if name not in known:
        raise ValueError(f"unknown {prefix.lower().rstrip('_')} {name!r}; expected one of {', '.join(known)}")
    return enum_type.Value(prefix + name.upper())


def result_groups(forest: Forest) -> list[Hashable]:
    """The forest's group labels in the order the service numbers groups: ascending group id at the roots."""
    roots = forest.parent < 0
    return [forest.groups[g] for g in np.unique(forest.group[roots]).tolist()]


def filter_request(
    forest: Forest,
    *,
    metric: str = "lowest",
    keep_percent: float = 90.0,
    window: int = 2048,
    tail: int = 2048,
    answers: Mapping[int, Hashable] | Sequence[Hashable | None] | None = None,
    zero_variance: bool = False,
    reflection: Reflection | None = None,
) -> pb.FilterRequest:
    request = pb.FilterRequest(
        forest=forest.to_proto(), metric=_enum_value(pb.ConfidenceMetric, "CONFIDENCE_METRIC_", metric, METRICS),
        keep_percent=keep_percent, window=window, tail=tail, zero_variance=zero_variance,
    )
    if answers is not None:
        leaves = forest.leaves
        if not isinstance(answers, Mapping):
            if len(answers) != len(leaves):
                raise ValueError(f"answers has {len(answers)} entries for {len(leaves)} trajectories (leaves)")
            answers = dict(zip(leaves.tolist(), answers))
        given = {int(leaf): str(a) for leaf, a in answers.items() if a is not None}
        labels = sorted(set(given.values()))
        code = np.full(forest.num_nodes, -1, np.int64)
        index = {label: i for i, label in enumerate(labels)}
        code[list(given)] = [index[a] for a in given.values()]
        request.answer.CopyFrom(_wire.encode(code))
        request.answer_labels.extend(labels)
    if reflection is not None:
        reflection.to_proto(into=request.reflection)
    return request


def _array(tensor, field: str) -> np.ndarray:
    return _wire.decode(tensor, field, dtypes=(*_wire.INTEGER, *_wire.FLOAT, *_wire.MASK), ndim=1)


@dataclass
class FilterResult:
    """Trace verdicts per node `[num_nodes]` (meaningful at leaves), query verdicts and the vote per group `[G]`,
    groups in the order of `groups`."""

    forest: Forest
    groups: list[Hashable]
    keep: np.ndarray               # bool [N]
    metric: np.ndarray             # float64 [N]; NaN off the leaves and for empty trajectories
    reason: np.ndarray             # str [N]; "confident", "low_confidence", "empty" at leaves, "" elsewhere
    threshold: np.ndarray          # float64 [G]
    query_keep: np.ndarray         # bool [G]
    query_reason: np.ndarray       # str [G]; "informative", "zero_variance", "low_reflection"
    zero_variance: np.ndarray      # bool [G]
    reflection_spread: np.ndarray | None  # float64 [G]
    answer: list[str | None]       # [G]; the vote's answer
    consensus: np.ndarray          # float64 [G]; its β, NaN without votes
    votes: list[dict[str, float]]  # [G]; V(a) per answer

    @classmethod
    def from_proto(cls, forest: Forest, request: pb.FilterRequest, response: pb.FilterResponse) -> FilterResult:
        labels = list(request.answer_labels)
        groups = result_groups(forest)
        winner = _array(response.vote_answer, "vote_answer")
        votes: list[dict[str, float]] = [{} for _ in groups]
        for g, a, w in zip(*(_array(getattr(response, f), f).tolist()
                             for f in ("votes_group", "votes_answer", "votes_weight"))):
            votes[g][labels[a]] = w
        return cls(
            forest=forest, groups=groups,
            keep=_array(response.keep, "keep").astype(bool), metric=_array(response.metric, "metric"),
            reason=TRACE_REASONS[_array(response.reason, "reason")],
            threshold=_array(response.threshold, "threshold"),
            query_keep=_array(response.query_keep, "query_keep").astype(bool),
            query_reason=QUERY_REASONS[_array(response.query_reason, "query_reason")],
            zero_variance=_array(response.zero_variance, "zero_variance").astype(bool),
            reflection_spread=(_array(response.reflection_spread, "reflection_spread")
                               if response.HasField("reflection_spread") else None),
            answer=[labels[a] if a >= 0 else None for a in winner.tolist()],
            consensus=_array(response.vote_consensus, "vote_consensus"),
            votes=votes,
        )

    @property
    def kept_leaves(self) -> np.ndarray:
        """The leaves kept by the trace filter, ascending."""
        return np.flatnonzero(self.keep)


def forks_request(forest: Forest, *, top_n: int = 4, ranking: str = "neg_logprob", tail_guard: int = 16,
                  window: int = 2048) -> pb.SuggestForksRequest:
    return pb.SuggestForksRequest(forest=forest.to_proto(), top_n=top_n, tail_guard=tail_guard, window=window,
                                  ranking=_enum_value(pb.ForkRanking, "FORK_RANKING_", ranking, RANKINGS))


class ForkSuggestions(NamedTuple):
    """Fork positions `[F]` grouped by tree, best first: branch `node` before its token `offset`."""

    root: np.ndarray
    node: np.ndarray
    offset: np.ndarray
    score: np.ndarray
    rank: np.ndarray

    @classmethod
    def from_proto(cls, response: pb.SuggestForksResponse) -> ForkSuggestions:
        return cls(*(_array(getattr(response, f), f) for f in cls._fields))
