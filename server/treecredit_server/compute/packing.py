"""Tree-packed training (ALGORITHMS.md section 12) on a validated, scored forest, whole-array numpy.

`weights` gives each node's loss weight W(n) and signed advantage parts P(n), N(n), normalised over the whole
step; `layout` places the nodes in packed order, split into microbatches when asked. The client expands both
to tokens: every token of node n carries n's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from treecredit.topology import expand_ranges
from treecredit_server.compute import score
from treecredit_server.compute.credit import Estimator
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.score import ScoreInputs


class LossAggMode(Enum):
    """verl's loss_agg_mode."""

    TOKEN_MEAN = "token-mean"
    SEQ_MEAN_TOKEN_SUM = "seq-mean-token-sum"
    SEQ_MEAN_TOKEN_MEAN = "seq-mean-token-mean"
    SEQ_MEAN_TOKEN_SUM_NORM = "seq-mean-token-sum-norm"


@dataclass(frozen=True)
class Weights:
    """float64 `[N]` each; the tool-call parts only for toolpo (tokens on its tool-call mask)."""

    weight: np.ndarray
    advantage_pos: np.ndarray
    advantage_neg: np.ndarray
    tool_call_advantage_pos: np.ndarray | None = None
    tool_call_advantage_neg: np.ndarray | None = None


@dataclass(frozen=True)
class Layout:
    """S segments (a node placed in a microbatch) in packed order, B microbatches; see packing.proto."""

    microbatch_offsets: np.ndarray  # int64 [B + 1]
    microbatch_tokens: np.ndarray   # int64 [B]
    node: np.ndarray                # int64 [S]
    owned: np.ndarray               # bool [S]
    start: np.ndarray               # int64 [S]
    previous: np.ndarray            # int64 [S]
    position: np.ndarray            # int64 [S]
    subtree_end: np.ndarray         # int64 [S]


@dataclass(frozen=True)
class PackOptions:
    loss_agg_mode: LossAggMode
    max_response_length: int | None  # L of seq-mean-token-sum-norm; None: the largest |T_b|
    microbatch_tokens: int | None    # None: one microbatch holding every tree
    align: int                       # each microbatch is padded to a multiple of this


@dataclass(frozen=True)
class PackInputs:
    """A decoded, validated Pack request: the Score it packs (its forest carries token ids) and the options."""

    score: ScoreInputs
    options: PackOptions


def pack(inputs: PackInputs) -> tuple[Weights, Layout]:
    """The step's per-node loss weights and its packed layout: credit as Score computes it (sections 1-3, 7-9),
    weights normalised over the whole forest (section 12)."""
    forest, options = inputs.score.forest, inputs.options
    scored = score.score(inputs.score)
    trajectory_weight = trajectory_weights(forest, options.loss_agg_mode, options.max_response_length)
    return (weights(forest, scored.estimator, scored.credit.node_advantages, scored.credit.leaf_advantages,
                    scored.action_advantage, trajectory_weight),
            layout(forest, options))


def masked_tokens(forest: ForestArrays) -> np.ndarray:
    """Tokens of each node with loss mask 1, int64 `[N]`."""
    mask = forest.tokens.get("loss_mask")
    if mask is None:
        return forest.num_tokens
    token_node = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
    return np.bincount(token_node, weights=mask, minlength=forest.num_nodes).astype(np.int64)


def trajectory_weights(forest: ForestArrays, mode: LossAggMode, max_response_length: int | None) -> np.ndarray:
    """`w_b` at each leaf b (0 elsewhere and where the trajectory has no masked token), float64 `[N]`."""
    leaves = forest.leaves
    lengths = forest.topology.path_sum(masked_tokens(forest))[leaves]  # |T_b|
    counted = lengths > 0
    sequences = int(counted.sum())  # B
    if mode is LossAggMode.TOKEN_MEAN:
        per_leaf = np.full(len(leaves), 1.0 / max(int(lengths.sum()), 1))
    elif mode is LossAggMode.SEQ_MEAN_TOKEN_SUM:
        per_leaf = np.full(len(leaves), 1.0 / max(sequences, 1))
    elif mode is LossAggMode.SEQ_MEAN_TOKEN_MEAN:
        per_leaf = 1.0 / (max(sequences, 1) * np.maximum(lengths, 1))
    else:
        norm = max_response_length if max_response_length is not None else int(lengths.max(initial=0))
        per_leaf = np.full(len(leaves), 1.0 / (max(sequences, 1) * max(norm, 1)))
    out = np.zeros(forest.num_nodes)
    out[leaves] = np.where(counted, per_leaf, 0.0)
    return out


def weights(forest: ForestArrays, estimator: Estimator, node_advantage: np.ndarray, leaf_advantage: np.ndarray,
            action_advantage: np.ndarray | None, trajectory_weight: np.ndarray) -> Weights:
    """W(n) = sum_b w_b over leaves b below n; P(n), N(n) the same sums of w_b max(A_b(n), 0), w_b min(A_b(n), 0)."""
    below = forest.topology.subtree_sum
    weight = below(trajectory_weight)
    if not estimator.leaf_level:  # A_b(t) = a(node of t), one value whatever the trajectory
        return Weights(weight, np.maximum(node_advantage, 0.0) * weight, np.minimum(node_advantage, 0.0) * weight)

    def signed_parts(leaf_advantage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        advantage = np.nan_to_num(leaf_advantage, nan=0.0)
        return (below(trajectory_weight * np.maximum(advantage, 0.0)),
                below(trajectory_weight * np.minimum(advantage, 0.0)))

    positive, negative = signed_parts(leaf_advantage)
    if estimator is not Estimator.TOOLPO:
        return Weights(weight, positive, negative)
    on_tool_calls = signed_parts(leaf_advantage + action_advantage)
    return Weights(weight, positive, negative, *on_tool_calls)


def _part_stops(tree_end: np.ndarray, above: np.ndarray, prefix: np.ndarray, branch_cut: np.ndarray,
                capacity: int) -> np.ndarray:
    """For a part of a split tree that starts at each pre-order position p, where it stops `[N]`: the furthest
    position whose tokens, with those above p copied in, fit `capacity`, moved back to the last child of a
    branch point in the second half of the part if there is one (a cut there copies fewer ancestors).
    `tree_end`: the end of each position's tree; `branch_cut`: whether a position's node's parent branches."""
    position = np.arange(len(above))
    furthest = np.minimum(np.searchsorted(prefix, capacity - above + prefix[:-1], side="right") - 1, tree_end)
    last_cut = np.maximum.accumulate(np.where(branch_cut, position, -1))[np.minimum(furthest, len(above) - 1)]
    prefer_cut = (furthest < tree_end) & (last_cut >= position + 1 + (furthest - position) // 2)
    return np.where(prefer_cut, last_cut, furthest)


def _bin_pack(sizes: np.ndarray, capacity: int) -> np.ndarray:
    """The bin of each item `[I]` (every size <= capacity), one vectorised step per bin: a bin takes the largest
    item left, then as many of the smallest left as still fit. Bins are numbered in order of filling."""
    ascending = np.argsort(sizes, kind="stable")
    prefix = np.concatenate(([0], np.cumsum(sizes[ascending])))
    bins = np.empty(len(sizes), np.int64)
    small, large, current = 0, len(sizes) - 1, 0  # items left: ascending[small : large + 1]
    while small <= large:
        bins[ascending[large]] = current
        room = capacity - int(sizes[ascending[large]])
        large -= 1
        fitting = min(int(np.searchsorted(prefix, prefix[small] + room, side="right")) - 1, large + 1)
        bins[ascending[small:fitting]] = current
        small = max(small, fitting)
        current += 1
    return bins


def _trees(forest: ForestArrays) -> tuple[np.ndarray, np.ndarray]:
    """Each tree's pre-order positions `[begin, end)`, trees in the order of their roots `[R]` each."""
    roots = np.flatnonzero(forest.parent < 0)  # their positions ascend with their ids
    begin = forest.topology.preorder_index[roots]
    return begin, begin + forest.topology.subtree_size[roots]


def _items(forest: ForestArrays, capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces microbatches are made of, `(begin, end, copied)` `[I]` each: every tree that fits `capacity`
    whole, and the parts larger trees split into (pre-order ranges whose tokens, with the `copied` tokens of the
    ancestors of their first node, fit). Every node and every trajectory must fit `capacity` (decoding checks)."""
    topology, tokens = forest.topology, forest.num_tokens
    order = topology.preorder
    above = (topology.path_sum(tokens) - tokens)[order]  # tokens on the path above each position's node
    prefix = np.concatenate(([0], np.cumsum(tokens[order])))  # tokens before each position
    tree_begin, tree_end = _trees(forest)
    whole = prefix[tree_end] - prefix[tree_begin] <= capacity
    branch_cut = topology.num_children[np.maximum(forest.parent[order], 0)] >= 2
    stops = _part_stops(np.repeat(tree_end, tree_end - tree_begin), above, prefix, branch_cut, capacity).tolist()
    parts = []  # one cheap step per part: every stop is computed above
    for begin, end in zip(tree_begin[~whole].tolist(), tree_end[~whole].tolist()):
        while begin < end:
            parts.append((begin, stops[begin]))
            begin = stops[begin]
    split_begin, split_end = np.array(parts, np.int64).reshape(-1, 2).T
    begin = np.concatenate((tree_begin[whole], split_begin))
    return begin, np.concatenate((tree_end[whole], split_end)), above[begin]


def copied_tokens(forest: ForestArrays, capacity: int) -> int:
    """How many ancestor tokens microbatches of `capacity` tokens would copy."""
    return int(_items(forest, capacity)[2].sum())


def microbatch_capacity(options: PackOptions) -> int | None:
    """The tokens a microbatch holds before padding: `microbatch_tokens` rounded down to a multiple of `align`."""
    if options.microbatch_tokens is None:
        return None
    return options.microbatch_tokens - options.microbatch_tokens % options.align


def layout(forest: ForestArrays, options: PackOptions) -> Layout:
    """The packed layout: one microbatch holding every tree, or microbatches of at most `microbatch_tokens`
    tokens after padding to a multiple of `align` (whole trees bin-packed; larger trees split in pre-order
    with their ancestors' tokens copied in), in the order of the forest."""
    topology, tokens = forest.topology, forest.num_tokens
    room = microbatch_capacity(options)
    if room is None:
        item_begin, item_end = _trees(forest)
        item_bin = np.zeros(len(item_begin), np.int64)
    else:
        item_begin, item_end, copied = _items(forest, room)
        prefix = np.concatenate(([0], np.cumsum(tokens[topology.preorder])))
        item_bin = _bin_pack(copied + prefix[item_end] - prefix[item_begin], room)
        first_item = np.full(int(item_bin.max(initial=-1)) + 1, forest.num_nodes)
        np.minimum.at(first_item, item_bin, item_begin)
        item_bin = np.argsort(np.argsort(first_item))[item_bin]  # microbatches in the order of the forest
    return _segments(forest, item_begin, item_end, item_bin, topology.path_sum(tokens) - tokens)


def trajectory_tokens(forest: ForestArrays) -> np.ndarray:
    """Tokens on the path of each leaf (leaves ascending), int64 `[P]`."""
    return forest.topology.path_sum(forest.num_tokens)[forest.leaves]


def _segments(forest: ForestArrays, item_begin: np.ndarray, item_end: np.ndarray, item_bin: np.ndarray,
              above: np.ndarray) -> Layout:
    """Lay out items (pre-order ranges `[begin, end)`) in their bins, the items of a bin in pre-order, each item
    led by copies of the ancestors of its first node that hold tokens (root first), and compute every
    segment's token offsets (`above [N]`: tokens on the path above each node, the position of its first token).
    Every index is computed in place, without a search or a sort over segments."""
    topology, tokens = forest.topology, forest.num_tokens
    order, position_of, size = topology.preorder, topology.preorder_index, topology.subtree_size
    placed = np.lexsort((item_begin, item_bin))  # items in output order
    begin, end, bins = item_begin[placed], item_end[placed], item_bin[placed]
    holds = tokens > 0
    holders_above = topology.path_sum(holds.astype(np.int64)) - holds  # ancestors holding tokens, per node
    copies = holders_above[order[begin]]  # 0 for an item that is a whole tree
    counts = copies + end - begin
    item_offset = np.cumsum(counts) - counts
    node = np.empty(int(counts.sum()), np.int64)
    owned = np.zeros(len(node), bool)
    split = np.flatnonzero(copies > 0)
    row, ancestor = topology.path_pairs(order[begin[split]])
    keep = holds[ancestor] & (ancestor != order[begin[split]][row])
    row, ancestor = split[row[keep]], ancestor[keep]
    node[item_offset[row] + holders_above[ancestor]] = ancestor  # root first: by holders above each copy
    owned_item, owned_position = expand_ranges(begin, end)
    at = item_offset[owned_item] + copies[owned_item] + owned_position - begin[owned_item]
    node[at], owned[at] = order[owned_position], True

    item = np.repeat(np.arange(len(begin)), counts)
    range_at = item_offset[item] + copies[item] - begin[item]  # segment of the item's pre-order position p: + p
    # The node's subtree, within the item, ends where its pre-order range leaves the item's range.
    end_segment = range_at + np.minimum(position_of[node] + size[node], end[item])
    holder = topology.nearest_ancestor(holds)[node]
    holder_position = position_of[np.maximum(holder, 0)]
    holder_segment = np.where(holder_position >= begin[item], range_at + holder_position,
                              item_offset[item] + holders_above[np.maximum(holder, 0)])
    segment_start = np.concatenate(([0], np.cumsum(tokens[node])))  # over all segments, then made local
    microbatch = bins[item]
    microbatch_offsets = np.searchsorted(microbatch, np.arange(int(bins.max(initial=-1)) + 2))
    base = segment_start[microbatch_offsets]
    local = lambda global_start: global_start - base[microbatch]  # noqa: E731
    return Layout(
        microbatch_offsets=microbatch_offsets.astype(np.int64),
        microbatch_tokens=np.diff(base),
        node=node,
        owned=owned,
        start=local(segment_start[:-1]),
        previous=np.where(holder >= 0, local(segment_start[holder_segment + 1]) - 1, -1),
        position=above[node],
        subtree_end=local(segment_start[end_segment]),
    )
