"""Trace verdicts, query verdicts and the confidence-weighted vote: ALGORITHMS.md sections 5-6.

`filter_forest()` is the entry point; it returns plain arrays and knows nothing of protobuf or gRPC.
torch and the kernels are imported inside the functions that call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

import numpy as np

from treecredit.errors import InvalidArgument
from treecredit_server.forest import ForestArrays


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
class Reflection:
    """DRO's ℓ matrices per group, concatenated: `ell [sum G_q L_q]`, `rows [Q]`, `cols [Q]`."""

    ell: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    min_spread: float
    drop_percent: float | None


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


def token_confidence(forest: ForestArrays, name: str = "forest") -> np.ndarray:
    """Token confidences `[T]`: the forest's `confidence`, else -mean of each row of `topk_logprobs`."""
    tokens = forest.tokens
    if "confidence" in tokens:
        confidence = np.asarray(tokens["confidence"], dtype=np.float64)
        _require_finite(f"{name}.confidence", ~np.isfinite(confidence))
        return confidence
    if "topk_logprobs" in tokens:
        from treecredit_kernels import topk_confidence

        topk = tokens["topk_logprobs"]
        _require_finite(f"{name}.topk_logprobs", np.isnan(topk).any(axis=1) | (topk == np.inf).any(axis=1))
        return topk_confidence(_tensor(topk)).confidence.numpy().astype(np.float64)
    raise InvalidArgument(f"{name}.confidence", "token confidences or top-k log-probs (topk_logprobs) are required")


def _tensor(array: np.ndarray):
    """A CPU torch tensor over `array` (copied only if read-only, as arrays decoded from the wire are)."""
    import torch

    return torch.from_numpy(np.require(array, requirements=("C", "W")))


def _require_finite(field: str, bad: np.ndarray) -> None:
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidArgument(f"{field}[{index}]", "is NaN or +inf")


def masked_confidence(forest: ForestArrays, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The confidences of tokens whose loss mask is 1 `[U]`, and each node's span in them `node_offsets [N+1]`."""
    mask = forest.tokens.get("loss_mask")
    if mask is None:
        return confidence, forest.token_offsets
    node_of_token = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
    counts = np.bincount(node_of_token[mask], minlength=forest.num_nodes)
    return confidence[mask], np.concatenate(([0], np.cumsum(counts)))


def trajectory_metric(forest: ForestArrays, metric: Metric, *, window: int, tail: int,
                      name: str = "forest") -> tuple[np.ndarray, np.ndarray]:
    """`(metric float64 [P], num_tokens int64 [P])` of every trajectory (leaves ascending), loss-masked."""
    from treecredit_kernels import tree_window_confidence

    confidence, offsets = masked_confidence(forest, token_confidence(forest, name))
    result = tree_window_confidence(*(_tensor(a) for a in (confidence, offsets, forest.parent, forest.leaves)),
                                    window=window, tail=tail)
    return getattr(result, metric.value).numpy(), result.num_tokens.numpy()


def filter_forest(
    forest: ForestArrays,
    *,
    metric: Metric = Metric.LOWEST,
    keep_percent: float = 90.0,
    window: int = 2048,
    tail: int = 2048,
    answer: np.ndarray | None = None,
    zero_variance: bool = False,
    reflection: Reflection | None = None,
) -> Verdicts:
    """Trace verdicts per leaf, query verdicts per group and the weighted vote. `answer`: int64 `[N]`, -1 = none."""
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
    spread = None if reflection is None else _reflection_spread(reflection, num_groups)
    low_reflection = np.zeros(num_groups, bool)
    if spread is not None:
        low_reflection = spread < reflection.min_spread
        if reflection.drop_percent is not None:
            cut = percentile_threshold(np.sort(spread), np.zeros(1, np.int64), np.array([num_groups]),
                                       reflection.drop_percent)[0]
            low_reflection |= spread < cut
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


def _reflection_spread(reflection: Reflection, num_groups: int) -> np.ndarray:
    from treecredit_kernels import reflection_reward

    if len(reflection.rows) != num_groups or len(reflection.cols) != num_groups:
        raise InvalidArgument("reflection.rows", f"needs one entry per group ({num_groups}) in rows and cols, "
                                                 f"got {len(reflection.rows)} and {len(reflection.cols)}")
    if (reflection.rows < 0).any() or (reflection.cols < 0).any():
        raise InvalidArgument("reflection.rows", "rows and cols must be >= 0")
    size = int((reflection.rows.astype(np.int64) * reflection.cols).sum())
    if size != len(reflection.ell):
        raise InvalidArgument("reflection.ell", f"has {len(reflection.ell)} values, rows * cols sum to {size}")
    _require_finite("reflection.ell", ~np.isfinite(reflection.ell))
    return reflection_reward(_tensor(reflection.ell), _tensor(reflection.rows), _tensor(reflection.cols)).spread.numpy()


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
