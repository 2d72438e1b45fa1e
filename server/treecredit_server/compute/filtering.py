"""Trace verdicts, query verdicts and the confidence-weighted vote: ALGORITHMS.md sections 5-6.

`filter_forest()` is the entry point; it returns plain arrays and knows nothing of protobuf or gRPC.
torch and the kernels are imported inside the functions that call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

import numpy as np

from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.reflection import reflect
from treecredit_server.compute.trace_confidence import trajectory_confidence


class Metric(Enum):
    LOWEST = "lowest"
    BOTTOM10 = "bottom10"
    TAIL = "tail"
    MEAN = "mean"


class TraceReason(IntEnum):
    CONFIDENT = 1
    LOW_CONFIDENCE = 2
    EMPTY = 3


class QueryReason(IntEnum):
    INFORMATIVE = 1
    ZERO_VARIANCE = 2
    LOW_REFLECTION = 3


@dataclass(frozen=True)
class Vote:
    """Per group `[G]`: the answer (-1 if none) and β (NaN if none); per (group, answer) row `[V]`: V(a)."""

    answer: np.ndarray
    consensus: np.ndarray
    group: np.ndarray
    answer_of_row: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class Verdicts:
    keep: np.ndarray           # bool [N]
    metric: np.ndarray         # float64 [N], NaN off the leaves and for empty trajectories
    reason: np.ndarray         # int32 [N], TraceReason at leaves, 0 elsewhere
    threshold: np.ndarray      # float64 [G]
    query_keep: np.ndarray     # bool [G]
    query_reason: np.ndarray   # int32 [G]
    zero_variance: np.ndarray  # bool [G]
    reflection_spread: np.ndarray | None  # float64 [G]
    vote: Vote


def percentile_threshold(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                         percent: float) -> np.ndarray:
    """`np.percentile(segment, percent)` (linear) of each sorted segment `[starts[s], starts[s] + counts[s])`,
    float64 `[S]`, NaN for empty segments; the same arithmetic as numpy, so ties land exactly on a value."""
    q = percent / 100
    virtual = (counts - 1) * q  # numpy's virtual index of the linear method
    last = np.maximum(counts - 1, 0)
    below = np.clip(np.floor(virtual), 0, last).astype(np.int64)
    above = np.minimum(below + 1, last)
    gamma = virtual - np.floor(virtual)
    padded = np.append(np.asarray(sorted_values, dtype=np.float64), np.nan)  # empty segments read the NaN
    a = padded[np.where(counts > 0, starts + below, len(sorted_values))]
    b = padded[np.where(counts > 0, starts + above, len(sorted_values))]
    difference = b - a
    return np.where(gamma >= 0.5, b - difference * (1 - gamma), a + difference * gamma)


def grouped_threshold(values: np.ndarray, group: np.ndarray, num_groups: int, percent: float) -> np.ndarray:
    """percentile(values of each group, percent), float64 `[num_groups]`, NaN for a group without values."""
    order = np.lexsort((values, group))
    counts = np.bincount(group, minlength=num_groups)
    return percentile_threshold(values[order], np.cumsum(counts) - counts, counts, percent)


def trajectory_metric(forest: ForestArrays, metric: Metric, *, window: int, tail: int) -> tuple[np.ndarray, np.ndarray]:
    """`(metric float64 [P], num_tokens int64 [P])` of every trajectory (leaves ascending), loss-masked."""
    confidence = trajectory_confidence(forest, window=window, tail=tail)
    return getattr(confidence, metric.value), confidence.num_tokens


def filter_forest(
    forest: ForestArrays,
    *,
    metric: Metric = Metric.LOWEST,
    keep_percent: float = 90.0,
    window: int = 2048,
    tail: int = 2048,
    answer: np.ndarray | None = None,
    zero_variance: bool = False,
    reflection: dict | None = None,
) -> Verdicts:
    """Trace verdicts per leaf, query verdicts per group and the weighted vote. `answer`: int64 `[N]`, -1 = none;
    `reflection`: the keyword arguments of `reflection.reflect`, one query per group."""
    n, num_groups, leaves = forest.num_nodes, forest.num_groups, forest.leaves
    values, lengths = trajectory_metric(forest, metric, window=window, tail=tail)
    leaf_group = forest.group[leaves]
    has = lengths > 0
    threshold = grouped_threshold(values[has], leaf_group[has], num_groups, 100 - keep_percent)
    leaf_keep = has & (values >= threshold[leaf_group])

    keep, metric_of, reason = np.zeros(n, bool), np.full(n, np.nan), np.zeros(n, np.int32)
    keep[leaves], metric_of[leaves] = leaf_keep, values
    reason[leaves] = np.where(~has, TraceReason.EMPTY,
                              np.where(leaf_keep, TraceReason.CONFIDENT, TraceReason.LOW_CONFIDENCE))

    flat = _zero_variance(forest)
    reflected = None if reflection is None else reflect(**reflection)
    spread = None if reflected is None else reflected.spread
    low_reflection = np.zeros(num_groups, bool) if reflected is None else ~reflected.kept
    dropped_flat = flat & zero_variance
    query_reason = np.where(dropped_flat, QueryReason.ZERO_VARIANCE,
                            np.where(low_reflection, QueryReason.LOW_REFLECTION, QueryReason.INFORMATIVE))
    return Verdicts(
        keep=keep, metric=metric_of, reason=reason, threshold=threshold,
        query_keep=query_reason == QueryReason.INFORMATIVE, query_reason=query_reason.astype(np.int32),
        zero_variance=flat, reflection_spread=spread,
        vote=weighted_vote(leaf_group[leaf_keep], values[leaf_keep],
                           (np.full(n, -1) if answer is None else answer)[leaves][leaf_keep], num_groups),
    )


def _zero_variance(forest: ForestArrays) -> np.ndarray:
    """bool `[G]`: the group has two or more leaves and they all share one reward."""
    leaves = forest.leaves
    group, reward = forest.group[leaves], forest.reward[leaves]
    count = np.bincount(group, minlength=forest.num_groups)
    low = np.full(forest.num_groups, np.inf)
    high = np.full(forest.num_groups, -np.inf)
    np.minimum.at(low, group, reward)
    np.maximum.at(high, group, reward)
    return (count >= 2) & (low == high)


def weighted_vote(group: np.ndarray, weight: np.ndarray, answer: np.ndarray, num_groups: int) -> Vote:
    """V(a) = sum of the weights of the votes for a, per group; the answer is argmax V (the lowest answer id
    among ties), β = V(answer) / sum_a V(a). Votes with answer -1 do not count."""
    has = answer >= 0
    num_answers = int(answer.max(initial=-1)) + 1
    key = group[has] * num_answers + answer[has]
    rows, inverse = np.unique(key, return_inverse=True)
    totals = np.bincount(inverse, weights=weight[has], minlength=len(rows))
    row_group, row_answer = rows // max(num_answers, 1), rows % max(num_answers, 1)
    best = np.lexsort((row_answer, -totals, row_group))
    first = best[np.r_[True, row_group[best][1:] != row_group[best][:-1]]] if len(best) else best
    winner, consensus = np.full(num_groups, -1, np.int64), np.full(num_groups, np.nan)
    group_total = np.bincount(row_group, weights=totals, minlength=num_groups)
    winner[row_group[first]] = row_answer[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        consensus[row_group[first]] = totals[first] / group_total[row_group[first]]
    return Vote(winner, consensus, row_group.astype(np.int64), row_answer.astype(np.int64), totals)
