"""Batches as trainers hold them (OpenRLHF, TRL, custom loops) <-> a `Forest`, and advantages back.

A batch is B sampled responses padded to T columns:

- `rewards [B]`: one outcome reward per sample (numpy, torch or a list).
- `mask [B, T]`: 1 where the policy produced the token (OpenRLHF's `action_mask`, TRL's
  `completion_mask`, verl's `response_mask`); 0 on padding and on tokens from outside (tool output).
- `group [B]`: the prompt each sample answers (any hashable labels: prompt ids, uid strings), or
  `group_size=n` when every n consecutive samples share a prompt (how OpenRLHF and TRL lay out groups).

Without more, each sample is a tree of one path (its whole response is one node under a token-less
root): plain GRPO's M chains, for which `tree_grpo` equals `grpo`.

**Trees.** A trainer that samples trees (responses sharing prefixes) records, per sample:

- `tree_path [B]`: the chain of segment node ids the response runs through, first segment to last
  (e.g. `["a", "a1", "a1b"]`). Ids are any hashables, unique within their tree; two samples that
  name the same id in the same tree share that segment's tokens (the same prefix).
- `segment_lengths [B]`: how many response columns each of those segments spans, in the same order
  (the columns, not just the masked ones: a tool's output inside a segment counts). Segment j of
  sample b covers columns `[sum(lengths[:j]), sum(lengths[:j+1]))`.
- `tree [B]` (optional): which tree of its group the sample belongs to (labels unique within the
  group, e.g. 0..M-1), for Tree-GRPO's M trees per prompt. Default: one tree per group.

Each tree's root is a node with no tokens (the prompt, which is not part of the response); the
first segment of every path hangs under it. Every sample must end at a leaf: no sample may end at
a segment that another sample continues past, and no two samples may end at the same segment.
A segment named by several samples must have the same parent and length in each.

`to_forest(...)` returns a `BatchForest`: the `Forest` plus where each sample's leaf is, so that
`token_advantages(result)` gives `[B, T]` advantages aligned with `mask` (0 where mask is 0).
`score_batch(client, ...)` does both around one `Score` call.

**Errors speak of the batch.** `to_forest` raises ValueError naming the argument and row (`mask[3, 7]: ...`,
`tree_path[2][1]: ...`). A refusal of the server (a `treecredit.errors.RequestError`: `InvalidArgument`,
`ResourceExhausted`, `FailedPrecondition`) names a forest field and node (`forest.num_tokens[17]`);
`BatchForest.score` raises the same class with `field` and message in the batch's terms
(`segment_lengths[3][1]`, `mask[3, 7]`, `rewards[3]`), naming the first row that runs through that node.

Arrays may be numpy arrays, torch tensors (duck-typed, moved to CPU; torch is never imported here)
or nested lists. Work is whole-array numpy except one pass over the segment ids to hash them.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any

import numpy as np

from treecredit.arrays import as_numpy, label_codes
from treecredit.errors import RequestError
from treecredit.forest import Forest
from treecredit.results import ScoreResult


def like(template, values: np.ndarray):
    """`values` as a tensor on `template`'s device, in its dtype if floating (else float32), if
    `template` is a torch tensor; else numpy."""
    if hasattr(template, "new_tensor"):
        return (template if template.is_floating_point() else template.float()).new_tensor(values)
    return values


@dataclass(frozen=True)
class BatchForest:
    """A batch's forest and where each of its B samples ends in it.

    `forest`: roots (one per tree, no tokens) then segments by depth; `leaf`: int64 `[B]`, the leaf
    node of each sample; `mask`: bool `[B, T]`, the batch's mask. Per node, int64 `[N]`, for errors:
    `node_row` the first sample through it, `node_segment` its position in that sample's path (-1 at
    roots), `node_column` that sample's column of its first token. `trees`: whether `tree_path` was
    given; `names`: the caller's name of each argument where it differs (verl's `response_mask`, ...).
    """

    forest: Forest
    leaf: np.ndarray
    mask: np.ndarray
    node_row: np.ndarray
    node_segment: np.ndarray
    node_column: np.ndarray
    trees: bool
    names: dict = field(default_factory=dict)

    def score(self, client, estimator: str, **options) -> ScoreResult:
        """`client.score(self.forest, estimator, **options)`; a refusal naming a forest field is raised again
        (same class) naming the batch's argument and row instead."""
        try:
            return client.score(self.forest, estimator, **options)
        except RequestError as error:
            translated = self.in_batch_terms(error)
            if translated is error:
                raise
            raise translated from error

    def in_batch_terms(self, error: RequestError) -> RequestError:
        """`error` with its `forest.<field>[i]` and the node ids in its message said of batch rows; other
        errors as they are."""
        found = re.fullmatch(r"forest\.(\w+)(?:\[(\d+)\])?(.*)", error.field)
        if found is None:
            return error
        name, index, rest = found[1], found[2], found[3]
        if name in _NODE_FIELDS:
            where = "" if index is None else self._node_index(name, int(index))
            field_name = self._argument(name)
        else:  # a per-token field: index t is forest token t
            where = "" if index is None else self._token_index(int(index))
            field_name = "mask"
        problem = re.sub(r"\b(?:node|leaf|root) (\d+)\b", lambda node: self._node_phrase(int(node[1])), error.problem)
        if rest:  # e.g. `.shape`: of the forest's array, not of the caller's
            problem = f"the forest of the batch (a root per tree, a node per segment): {problem}"
        return type(error)(rename(field_name, self.names) + where, problem, trailing_metadata=error.trailing_metadata())

    def _argument(self, node_field: str) -> str:
        if node_field == "reward":
            return "rewards"
        if node_field == "group":
            return "group"
        if node_field == "num_tokens":
            return "segment_lengths" if self.trees else "mask"
        return "tree_path" if self.trees else "rewards"  # parent: the batch's structure

    def _node_index(self, node_field: str, node: int) -> str:
        row, segment = int(self.node_row[node]), int(self.node_segment[node])
        if self.trees and node_field in ("num_tokens", "parent") and segment >= 0:
            return f"[{row}][{segment}]"
        return f"[{row}]"

    def _token_index(self, token: int) -> str:
        num_tokens = self.forest.num_tokens
        node = int(np.searchsorted(np.cumsum(num_tokens), token, side="right"))
        within = token - int(num_tokens[:node].sum())
        return f"[{int(self.node_row[node])}, {int(self.node_column[node]) + within}]"

    def _node_phrase(self, node: int) -> str:
        if node >= len(self.node_row):
            return f"node {node}"
        row, segment = int(self.node_row[node]), int(self.node_segment[node])
        if segment < 0:
            return f"the root of batch row {row}'s tree"
        if node in self.leaf:
            return f"batch row {row}"
        return f"the segment at tree_path[{row}][{segment}]"

    def token_advantages(self, result: ScoreResult) -> np.ndarray:
        """float32 `[B, T]`: sample b's column c gets the advantage of its c-th trajectory token, 0 where mask is 0."""
        advantages, _, leaves = result.padded()
        rows = advantages[np.searchsorted(leaves, self.leaf)]
        out = np.zeros(self.mask.shape, np.float32)
        width = min(rows.shape[1], out.shape[1])
        out[:, :width] = rows[:, :width]
        return np.where(self.mask, out, np.float32(0))

    def sample_advantages(self, result: ScoreResult) -> np.ndarray:
        """float64 `[B]`: each sample's leaf advantage A(l), for leaf-scoped estimators (grpo, tree_grpo)."""
        if result.scope != "leaf":
            raise ValueError("a node-scoped estimator gives each segment its own advantage; use token_advantages")
        return result.leaf_advantages[self.leaf]


def to_forest(
    rewards,
    mask,
    *,
    group=None,
    group_size: int | None = None,
    tree=None,
    tree_path: Sequence[Sequence[Hashable]] | None = None,
    segment_lengths: Sequence[Sequence[int]] | None = None,
) -> BatchForest:
    """The forest of a batch (see the module docstring for the fields). Raises ValueError naming the
    field and sample index when the batch does not describe a forest."""
    mask = _mask(mask)
    batch, width = mask.shape
    rewards = as_numpy(rewards, np.float64)
    if rewards.ndim != 1 and rewards.shape[1:] != (1,):
        raise ValueError(f"rewards: expected one reward per sample ([batch]), got shape {list(rewards.shape)}")
    rewards = rewards.reshape(-1)
    if len(rewards) != batch:
        raise ValueError(f"rewards: {len(rewards)} entries for a batch of {batch}")
    _first("rewards", ~np.isfinite(rewards), lambda b: f"[{b}]: batch row {b} has reward {rewards[b]}, not a number")
    group_code = _group_codes(batch, group, group_size)

    if tree_path is None:
        if segment_lengths is not None:
            raise ValueError("segment_lengths: given without tree_path")
        # One segment per sample, up to its last masked column; each sample its own tree.
        ends = np.where(mask.any(axis=1), width - np.argmax(mask[:, ::-1], axis=1), 0)
        paths = _Paths(np.arange(batch, dtype=np.int64), np.ones(batch, np.int64), ends.astype(np.int64),
                       list(range(batch)))
        tree_code = np.arange(batch, dtype=np.int64) if tree is None else _tree_codes(tree, group_code)
    else:
        paths = _Paths.of(tree_path, segment_lengths, batch)
        tree_code = group_code if tree is None else _tree_codes(tree, group_code)

    ends = np.bincount(paths.sample, weights=paths.length, minlength=batch).astype(np.int64)
    _first("segment_lengths", ends > width, lambda b: f"[{b}]: segments cover {ends[b]} columns of {width}")
    beyond = mask & (np.arange(width) >= ends[:, None])
    _first("mask", beyond.any(axis=1),
           lambda b: f"[{b}, {int(np.argmax(beyond[b]))}]: is 1 past the sample's last segment (column {ends[b]})")
    return _build(rewards, mask, group_code, tree_code, paths, trees=tree_path is not None)


def _mask(mask) -> np.ndarray:
    """bool `[B, T]` of a mask of 0s and 1s (bool, integer or floating)."""
    values = as_numpy(mask)
    if values.ndim != 2:
        raise ValueError(f"mask: expected [batch, length], got shape {list(values.shape)}")
    if values.dtype != bool:
        bad = (values != 0) & (values != 1)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(f"mask[{row}, {column}]: {values[row, column]} is neither 0 nor 1")
    return values.astype(bool, copy=False)


_NODE_FIELDS = ("parent", "group", "reward", "num_tokens")


def rename(field_path: str, names: dict) -> str:
    """`field_path` (e.g. `mask[3, 2]`) with its leading argument name replaced by the caller's, if `names` has one."""
    found = re.match(r"\w+", field_path)
    return names.get(found[0], found[0]) + field_path[found.end():] if found else field_path


@dataclass(frozen=True)
class _Paths:
    """Every sample's segments flattened, `[E]` each: segment id code, owning sample, column count."""

    segment: np.ndarray
    sample_lengths: np.ndarray  # int64 [B]: segments per sample
    length: np.ndarray
    ids: list  # the segment id of each code, for error messages

    @cached_property
    def sample(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.sample_lengths)), self.sample_lengths)

    @classmethod
    def of(cls, tree_path, segment_lengths, batch: int) -> _Paths:
        if segment_lengths is None:
            raise ValueError("segment_lengths: required with tree_path")
        for name, values in (("tree_path", tree_path), ("segment_lengths", segment_lengths)):
            if len(values) != batch:
                raise ValueError(f"{name}: {len(values)} entries for a batch of {batch}")
        counts = np.fromiter(map(len, tree_path), np.int64, batch)
        length_counts = np.fromiter(map(len, segment_lengths), np.int64, batch)
        _first("tree_path", counts == 0, lambda b: f"[{b}]: a sample needs at least one segment")
        _first("segment_lengths", length_counts != counts,
               lambda b: f"[{b}]: {length_counts[b]} lengths for {counts[b]} segments in tree_path[{b}]")
        segment, ids = label_codes(list(chain.from_iterable(tree_path)), "tree_path")
        lengths = np.fromiter(chain.from_iterable(segment_lengths), np.int64, int(counts.sum()))
        paths = cls(segment, counts, lengths, ids)
        bad = lengths < 0
        if bad.any():
            entry = int(np.argmax(bad))
            raise ValueError(f"segment_lengths{paths.where(entry)}: negative length {lengths[entry]}")
        return paths

    def where(self, entry: int) -> str:
        """`[b][j]`: the sample and position of a flat entry, for error messages."""
        sample = int(self.sample[entry])
        return f"[{sample}][{entry - int(self.sample_lengths[:sample].sum())}]"


def _build(rewards, mask, group_code, tree_code, paths: _Paths, *, trees: bool) -> BatchForest:
    sample = paths.sample
    starts = np.cumsum(paths.sample_lengths) - paths.sample_lengths
    position = np.arange(len(sample)) - starts[sample]  # 0 for a sample's first segment
    offsets = np.cumsum(paths.length) - paths.length
    first_column = offsets - offsets[starts][sample]

    # A segment is (tree, id): ids need to be unique within a tree only.
    num_trees = int(tree_code.max(initial=-1)) + 1
    key = tree_code[sample] * (int(paths.segment.max(initial=-1)) + 1) + paths.segment
    _, representative, segment = np.unique(key, return_index=True, return_inverse=True)
    segment = segment.reshape(-1)
    num_segments = len(representative)

    # Parents in one code space: segment s >= 0, or the root of tree t as -1 - t.
    entry_parent = np.where(position > 0, np.roll(segment, 1), -1 - tree_code[sample])
    _consistent("tree_path", paths, segment, entry_parent, "follows a different segment than")
    _consistent("segment_lengths", paths, segment, paths.length, "has a different length than")
    segment_parent = np.empty(num_segments, np.int64)
    segment_parent[segment] = entry_parent

    tree_group = np.empty(num_trees, np.int64)
    tree_group[tree_code] = group_code  # a tree lies within one group by construction

    last = starts + paths.sample_lengths - 1
    leaf_segment = segment[last]
    children = np.bincount(segment_parent[segment_parent >= 0], minlength=num_segments)
    _first("tree_path", children[leaf_segment] > 0,
           lambda b: f"[{b}]: ends at a segment that another sample continues past; every sample must end at a leaf")
    ends_here = np.bincount(leaf_segment, minlength=num_segments)
    _first("tree_path", ends_here[leaf_segment] > 1,
           lambda b: f"[{b}]: ends at the same segment as another sample; each leaf belongs to one sample")

    # Nodes: the roots (node t is tree t's root), then segments by depth, so parents come first.
    depth = position[representative] + 1
    order = np.argsort(depth, kind="stable")
    node_of_segment = np.empty(num_segments, np.int64)
    node_of_segment[order] = num_trees + np.arange(num_segments)
    parent_of_segment = np.where(segment_parent >= 0, node_of_segment[np.maximum(segment_parent, 0)],
                                 -1 - segment_parent)
    source = representative[order]  # the entry each segment node's tokens are read from: its first
    parent = np.concatenate((np.full(num_trees, -1, np.int64), parent_of_segment[order]))
    group = np.concatenate((tree_group, tree_group[tree_code[sample[source]]]))
    leaf = node_of_segment[leaf_segment]
    reward = np.full(len(parent), np.nan)
    reward[leaf] = rewards

    lengths = paths.length[source]
    num_tokens = np.concatenate((np.zeros(num_trees, np.int64), lengths))
    token_entry = np.repeat(source, lengths)
    within = np.arange(len(token_entry)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    loss_mask = mask[sample[token_entry], first_column[token_entry] + within]

    forest = Forest.from_arrays(parent, group=group, reward=reward, num_tokens=num_tokens, loss_mask=loss_mask)
    tree_row = np.empty(num_trees, np.int64)
    tree_row[tree_code[::-1]] = np.arange(len(tree_code))[::-1]  # each tree's first sample
    no_segment = np.full(num_trees, -1, np.int64)
    return BatchForest(forest=forest, leaf=leaf, mask=mask,
                       node_row=np.concatenate((tree_row, sample[source])),
                       node_segment=np.concatenate((no_segment, position[source])),
                       node_column=np.concatenate((np.zeros(num_trees, np.int64), first_column[source])),
                       trees=trees)


def _consistent(field: str, paths: _Paths, segment: np.ndarray, values: np.ndarray, problem: str) -> None:
    """Raise naming the first entry whose `values` differs from the first entry of the same segment."""
    seen = np.empty(len(segment), values.dtype)
    seen[segment[::-1]] = values[::-1]  # the first entry's value wins
    bad = seen[segment] != values
    if bad.any():
        entry = int(np.argmax(bad))
        first = int(np.argmax(segment == segment[entry]))
        name = paths.ids[paths.segment[entry]]
        raise ValueError(f"{field}{paths.where(entry)}: segment {name!r} {problem} at {field}{paths.where(first)}")


def _tree_codes(tree, group_code: np.ndarray) -> np.ndarray:
    """Dense codes of (group, tree label): tree labels need to be unique within their group only."""
    label, _ = label_codes(tree, "tree")
    if len(label) != len(group_code):
        raise ValueError(f"tree: {len(label)} entries for a batch of {len(group_code)}")
    return np.unique(group_code * (int(label.max(initial=-1)) + 1) + label, return_inverse=True)[1].reshape(-1)


def _group_codes(batch: int, group, group_size: int | None) -> np.ndarray:
    if (group is None) == (group_size is None):
        raise ValueError("group: give exactly one of group (a label per sample) and group_size")
    if group_size is not None:
        if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
            raise ValueError(f"group_size: expected a whole number of samples, got {group_size!r}")
        if group_size <= 0 or batch % group_size:
            raise ValueError(f"group_size: {group_size} does not divide the batch of {batch}")
        return np.arange(batch, dtype=np.int64) // group_size
    codes, _ = label_codes(group, "group")
    if len(codes) != batch:
        raise ValueError(f"group: {len(codes)} entries for a batch of {batch}")
    return codes


def _first(field: str, bad: np.ndarray, describe) -> None:
    """Raise ValueError for the first index where `bad` holds; `describe(i)` starts with `[i]`."""
    if bad.any():
        raise ValueError(field + describe(int(np.argmax(bad))))


@dataclass(frozen=True)
class BatchCredit:
    """A scored batch. `token_advantages [B, T]` (and `sample_advantages [B]` for leaf-scoped
    estimators, else None) come back as torch tensors when the rewards were one, else numpy."""

    token_advantages: Any
    sample_advantages: Any
    result: ScoreResult
    batch: BatchForest


def score_batch(client, rewards, mask, *, estimator: str = "tree_grpo", group=None, group_size: int | None = None,
                tree=None, tree_path=None, segment_lengths=None, **options) -> BatchCredit:
    """Score a batch with `client` (a `CreditClient`); `options` are `CreditClient.score`'s."""
    batch = to_forest(rewards, mask, group=group, group_size=group_size, tree=tree, tree_path=tree_path,
                      segment_lengths=segment_lengths)
    result = batch.score(client, estimator, **options)
    sample = batch.sample_advantages(result) if result.scope == "leaf" else None
    return BatchCredit(
        token_advantages=like(rewards, batch.token_advantages(result)),
        sample_advantages=None if sample is None else like(rewards, sample),
        result=result,
        batch=batch,
    )
