"""A batch's credit as one self-contained HTML file: `treecredit report` and `ScoreResult.report(path)`.

`gather(client, forest)` asks the server for everything the page shows: one Score per estimator, a Filter
(trace and query verdicts, each group's threshold) and, where the forest carries confidences, one Watch
session per group with that threshold (where Watch stops each trajectory). `write(path, forest, results)`
turns the answers into a page: a compact JSON data island (columnar, one array per field) and the inline
script of `report.html` that draws it. Nothing is fetched when the page is opened.

The client computes only what the definitions make plain arithmetic on the forest (ALGORITHMS.md 1-2):
V(n), V(g), leaf counts, the mean and std of each group's and tree's rewards, and token confidences from
top-k log-probs; every advantage, preference, verdict, threshold and stop comes from the server.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path

import numpy as np

from treecredit.confidence import FilterResult, result_groups
from treecredit.forest import Forest
from treecredit.results import ScoreResult
from treecredit.topology import TrajectoryLayout

ESTIMATORS = ("tree_grpo", "grpo", "treerl", "value_diff")  # the estimators that need nothing but the forest
NO_STOP = -1


@dataclass
class Verdicts:
    """What Filter and Watch said of a forest: the filter result, and per leaf `[P]` (leaves ascending) the
    0-based token of its confidence list where Watch stopped it (-1: not stopped, or no Watch run)."""

    filter: FilterResult | None
    watch_stop: np.ndarray | None
    window: int
    keep_percent: float


def token_confidence(forest: Forest) -> np.ndarray | None:
    """float64 `[T]`: the forest's token confidences, or -mean of its top-k log-probs (section 4); None without."""
    if forest.confidence is not None:
        return forest.confidence.astype(np.float64)
    if forest.topk_logprobs is not None:
        return -forest.topk_logprobs.astype(np.float64).mean(axis=1)
    return None


def _trajectory_confidence(forest: Forest) -> tuple[np.ndarray, np.ndarray]:
    """`(values [sum of lengths], lengths [P])`: each trajectory's confidence list, leaves ascending, tokens with
    loss mask 0 skipped (section 5)."""
    confidence = token_confidence(forest)
    layout = TrajectoryLayout.of(forest.topology, forest.num_tokens, forest.leaves)
    kept = layout.valid() if forest.loss_mask is None else layout.expand(forest.loss_mask)
    return layout.expand(confidence)[kept], kept.sum(axis=1)


def gather(client, forest: Forest, estimators: Sequence[str] = ESTIMATORS, *, window: int = 2048,
           keep_percent: float = 90.0, normalize_std: bool = True) -> tuple[dict[str, ScoreResult], Verdicts]:
    """Score `forest` with each estimator; when it carries confidences (or top-k log-probs), Filter it too and
    replay it through Watch (one session per group, holding the group's Filter threshold)."""
    results = {name: client.score(forest, name, normalize_std=normalize_std) for name in estimators}
    if token_confidence(forest) is None:  # the service filters on confidences only
        return results, Verdicts(None, None, window, keep_percent)
    verdicts = client.filter(forest, metric="lowest", keep_percent=keep_percent, window=window, tail=window,
                             zero_variance=True)
    return results, Verdicts(verdicts, _watch_stops(client, forest, verdicts, window), window, keep_percent)


def _watch_stops(client, forest: Forest, verdicts: FilterResult, window: int) -> np.ndarray:
    """Per leaf `[P]`: where a Watch session holding the group's threshold stops the trajectory (-1: never)."""
    values, lengths = _trajectory_confidence(forest)
    leaves = forest.leaves
    starts = np.cumsum(lengths) - lengths
    stops = np.full(len(leaves), NO_STOP, np.int64)
    leaf_group = forest.group[leaves]
    for label, threshold in zip(verdicts.groups, verdicts.threshold.tolist()):
        rows = np.flatnonzero(leaf_group == forest.groups.index(label))
        rows = rows[lengths[rows] > 0]
        if not len(rows) or not math.isfinite(threshold):
            continue
        tokens = np.concatenate([values[s:s + n] for s, n in zip(starts[rows], lengths[rows])])
        with client.watch(threshold=threshold, window=window, budget=len(rows) + 1) as session:
            for row in rows.tolist():
                session.start(row)
            session.tokens(rows, confidence=tokens, num_tokens=lengths[rows])
            for row in rows.tolist():
                session.finish(row)
        summary = session.summary
        stopped = summary.verdict == "stopped"
        stops[summary.trajectory[stopped]] = summary.stop_token[stopped]
    return stops


def write(path: str | Path, forest: Forest, results: Mapping[str, ScoreResult], verdicts: Verdicts | None = None,
          *, labels: Sequence[str] | None = None, title: str = "treecredit report") -> Path:
    """Write the report page of `forest` and its `results` (estimator name -> ScoreResult) to `path`."""
    path = Path(path)
    path.write_text(page(data(forest, results, verdicts, labels=labels, title=title), title), encoding="utf-8")
    return path


def page(report_data: dict, title: str) -> str:
    """The HTML page: the template with `report_data` as its JSON data island."""
    island = json.dumps(report_data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    template = resources.files("treecredit").joinpath("report.html").read_text(encoding="utf-8")
    return template.replace("{{TITLE}}", escape(title)).replace("{{DATA}}", island)


def _numbers(values, decimals: int = 6) -> list:
    """A float array as a JSON list, NaN as null."""
    values = np.round(np.asarray(values, dtype=np.float64), decimals)
    return [None if math.isnan(v) else v for v in values.tolist()]


def _sample_std(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Sample standard deviation (n-1) from sums; 0 for fewer than two samples."""
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (squares - total * total / count) / (count - 1)
    return np.where(count > 1, np.sqrt(np.maximum(variance, 0.0)), 0.0)


def data(forest: Forest, results: Mapping[str, ScoreResult], verdicts: Verdicts | None = None, *,
         labels: Sequence[str] | None = None, title: str = "") -> dict:
    """The data island: node columns `[N]`, groups `[G]`, trees, each estimator's result and the verdicts."""
    if not results:
        raise ValueError("a report needs at least one estimator's result")
    topology = forest.topology
    n = forest.num_nodes
    is_leaf = topology.is_leaf
    reward = np.where(is_leaf, forest.reward, 0.0)
    leaf_count = topology.subtree_sum(is_leaf.astype(np.int64))
    value = topology.subtree_sum(reward) / leaf_count                      # V(n)
    group_of = forest.group
    groups = result_groups(forest)
    group_index = np.array([forest.groups.index(label) for label in groups], np.int64)
    position = np.zeros(max(len(forest.groups), 1), np.int64)
    position[group_index] = np.arange(len(groups))
    node_group = position[group_of]                                         # in the service's group order
    roots = np.flatnonzero(forest.parent < 0)

    def reward_stats(key: np.ndarray, size: int) -> dict:
        count = np.bincount(key[is_leaf], minlength=size).astype(np.float64)
        total = np.bincount(key[is_leaf], weights=reward[is_leaf], minlength=size)
        squares = np.bincount(key[is_leaf], weights=reward[is_leaf] ** 2, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        return {"mean": _numbers(mean), "std": _numbers(_sample_std(total, squares, count)),
                "leaves": count.astype(np.int64).tolist()}

    tree_of_root = np.full(n, -1, np.int64)
    tree_of_root[roots] = np.arange(len(roots))
    first = next(iter(results.values()))
    out = {
        "title": title,
        "nodes": {
            "parent": forest.parent.tolist(),
            "group": node_group.tolist(),
            "tree": tree_of_root[topology.root].tolist(),
            "depth": topology.depth.tolist(),
            "tokens": forest.num_tokens.tolist(),
            "reward": _numbers(forest.reward),
            "value": _numbers(value),
            "leaves": leaf_count.tolist(),
            "label": list(labels) if labels is not None else [""] * n,
        },
        "groups": {"name": [str(g) for g in groups], **reward_stats(node_group, len(groups))},
        "trees": {"root": roots.tolist(), **reward_stats(tree_of_root[topology.root], len(roots))},
        "estimators": {name: {"scope": r.scope, "node": _numbers(r.node_advantages), "leaf": _numbers(r.leaf_advantages),
                              "profile": {k: _numbers(v) for k, v in r.depth_profile._asdict().items()}}
                       for name, r in results.items()},
        # Preferences and sharing depend on V and the tree only: the same in every estimator's answer.
        "preferences": {"winner": first.preferences.winner.tolist(), "loser": first.preferences.loser.tolist(),
                        "margin": _numbers(first.preferences.margin)},
        "sharing": first.sharing._asdict(),
    }
    if verdicts is not None:
        out["verdicts"] = _verdicts(forest, verdicts)
    return out


def _verdicts(forest: Forest, verdicts: Verdicts) -> dict:
    """Trace verdicts per leaf, query verdicts and thresholds per group, and the confidence lists to draw."""
    leaves = forest.leaves
    out: dict = {"window": verdicts.window, "keep_percent": verdicts.keep_percent}
    result = verdicts.filter
    if result is not None:
        out.update(keep=result.keep[leaves].tolist(), reason=result.reason[leaves].tolist(),
                   metric=_numbers(result.metric[leaves]), threshold=_numbers(result.threshold),
                   query_keep=result.query_keep.tolist(), query_reason=result.query_reason.tolist(),
                   answer=result.answer, consensus=_numbers(result.consensus))
    confidence = token_confidence(forest)
    if confidence is not None:  # per node, its tokens with loss mask 1 (a path's concatenation is its trajectory's),
        # as little-endian float16 in base64: a third of the size of decimal text, precise enough to draw
        node_of_token = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
        kept = np.ones(len(confidence), bool) if forest.loss_mask is None else forest.loss_mask
        out.update(confidence=base64.b64encode(confidence[kept].astype("<f2").tobytes()).decode("ascii"),
                   confidence_count=np.bincount(node_of_token[kept], minlength=forest.num_nodes).tolist())
        if verdicts.watch_stop is not None:
            out["stop"] = verdicts.watch_stop.tolist()
    return out
