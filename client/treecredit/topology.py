"""Vectorised tree arithmetic on a parent array (parent[i] < i, -1 at roots), shared by SDK and server.

Every operation is whole-array numpy and costs about the same for a deep forest as for a bushy one. One Euler
tour of the forest, ranked once (`_tour`), gives each node's depth-first pre-order position, subtree size,
depth and root; after it a sum over every subtree or every root path is a prefix sum in pre-order. No Python
loop runs per node or per depth level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RULER_SPACING = 32  # list ranking: about one element in this many is a ruler (see `_rank_list`)


def expand_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(item, index)` for every index of every range `[starts[i], stops[i])`, items in order, int64 each."""
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(stops, np.int64) - starts
    item = np.repeat(np.arange(len(starts)), counts)
    return item, np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + starts[item]


def _rank_list(successor: np.ndarray, head: int) -> np.ndarray:
    """Position of every element of the linked list that starts at `head` (`successor[last] == last`), int64.

    Sparse ruling set: random rulers (the head and the last element among them) each walk, all at once, to the
    next ruler, labelling the elements they pass; the short list of rulers is ranked by pointer doubling; each
    element's position is its ruler's plus its distance from it. O(M) work, about `RULER_SPACING * log M`
    vectorised steps, whatever the shape of the list. The rulers are drawn afresh each call: the result does
    not depend on them, and no input can be built to make their walks long.
    """
    size = len(successor)
    last = int(np.flatnonzero(successor == np.arange(size))[0])
    is_ruler = np.random.default_rng().random(size) < 1.0 / RULER_SPACING
    is_ruler[[head, last]] = True
    rulers = np.flatnonzero(is_ruler)
    ruler_rank = np.full(size, -1, np.int64)
    ruler_rank[rulers] = np.arange(len(rulers))
    owner = np.empty(size, np.int64)   # rank of the ruler whose walk passes each element
    offset = np.zeros(size, np.int64)  # steps from that ruler
    owner[rulers] = ruler_rank[rulers]
    next_ruler = np.empty(len(rulers), np.int64)
    gap = np.zeros(len(rulers), np.int64)
    walking = np.flatnonzero(rulers != last)
    current = successor[rulers[walking]]
    next_ruler[ruler_rank[last]], gap[ruler_rank[last]] = ruler_rank[last], 0
    step = 1
    while len(walking):
        arrived = is_ruler[current]
        next_ruler[walking[arrived]] = ruler_rank[current[arrived]]
        gap[walking[arrived]] = step
        walking, current = walking[~arrived], current[~arrived]
        owner[current], offset[current] = walking, step
        current = successor[current]
        step += 1
    # Distance from each ruler to the end of the list, by pointer doubling over the rulers.
    to_end, jump = gap.copy(), next_ruler.copy()
    while (jump != ruler_rank[last]).any():
        to_end = to_end + to_end[jump]
        jump = jump[jump]
    ruler_position = to_end[ruler_rank[head]] - to_end
    return ruler_position[owner] + offset


class _Tour(NamedTuple):
    entered: np.ndarray         # int64 [N]: position in the tour of the edge entering each node
    left: np.ndarray            # int64 [N]: ... and of the edge leaving it
    preorder_index: np.ndarray  # int64 [N]
    subtree_size: np.ndarray    # int64 [N]
    depth: np.ndarray           # int64 [N]


def _range_sums(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """`sum(values[starts[i]:stops[i]])` for every i, from prefix sums. Integers are exact; floats carry the
    rounding error of each prefix sum (error-free transformations), so a sum is as good as one added directly:
    a range of one value gives that value, and equal ranges give equal sums."""
    if values.dtype.kind in "biu":
        prefix = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
        return prefix[stops] - prefix[starts]
    values = values.astype(np.float64)
    high = np.concatenate(([0.0], np.cumsum(values)))
    low = np.concatenate(([0.0], np.cumsum(_two_sum_error(high[:-1], values, high[1:]))))
    difference = high[stops] - high[starts]
    return difference + (_two_sum_error(high[stops], -high[starts], difference) + (low[stops] - low[starts]))


def _two_sum_error(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """`(a + b) - total` exactly, where `total` is the rounded float sum of a and b (Knuth's TwoSum)."""
    b_part = total - a
    return (a - (total - b_part)) + (b - b_part)


@dataclass(frozen=True)
class Topology:
    """The shape of a forest of N nodes. Arrays are int64 `[N]` unless noted."""

    parent: np.ndarray

    @classmethod
    def of(cls, parent) -> Topology:
        return cls(np.asarray(parent, dtype=np.int64))

    @property
    def num_nodes(self) -> int:
        return len(self.parent)

    @cached_property
    def _children(self) -> np.ndarray:
        """Non-root nodes sorted by parent, ascending id within a family."""
        child = np.flatnonzero(self.parent >= 0)
        return child[np.argsort(self.parent[child], kind="stable")]

    @cached_property
    def _tour(self) -> _Tour:
        """The Euler tour of the forest: edge n enters node n, edge N + n leaves it; roots are visited in id
        order as children of a virtual root, whose leaving edge 2N ends the list."""
        n = self.num_nodes
        if n == 0:
            empty = np.zeros(0, np.int64)
            return _Tour(empty, empty, empty, empty, empty)
        child, parent = self._children, self.parent
        roots = np.flatnonzero(parent < 0)
        # Each family in order (roots are the virtual root's family): the sibling after each node, -1 if last.
        family = np.concatenate((roots, child))
        family_parent = np.concatenate((np.full(len(roots), -1), parent[child]))
        later = np.full(n, -1, np.int64)
        same = family_parent[1:] == family_parent[:-1]
        later[family[:-1][same]] = family[1:][same]
        first_child = np.full(n, -1, np.int64)
        starts = np.flatnonzero(np.r_[True, parent[child][1:] != parent[child][:-1]]) if len(child) else child
        first_child[parent[child[starts]]] = child[starts]

        successor = np.empty(2 * n + 1, np.int64)
        nodes = np.arange(n)
        successor[:n] = np.where(first_child >= 0, first_child, n + nodes)  # enter n -> enter child or leave n
        up = np.where(parent >= 0, n + parent, 2 * n)
        successor[n:2 * n] = np.where(later >= 0, later, up)  # leave n -> enter sibling, or leave the parent
        successor[2 * n] = 2 * n
        position = _rank_list(successor, head=0)  # node 0 is always a root
        entered, left = position[:n], position[n:2 * n]
        is_entry = np.zeros(2 * n + 1, np.int64)
        is_entry[entered] = 1
        preorder_index = (np.cumsum(is_entry) - is_entry)[entered]  # nodes entered before
        # Before entering n the tour entered preorder_index nodes and left entered - preorder_index of them.
        return _Tour(entered, left, preorder_index, (left - entered + 1) // 2, 2 * preorder_index - entered)

    @property
    def depth(self) -> np.ndarray:
        """Edges from the root; 0 at roots."""
        return self._tour.depth

    @cached_property
    def root(self) -> np.ndarray:
        """The root of each node's tree."""
        is_root = self.parent < 0
        root_at = np.maximum.accumulate(np.where(is_root[self.preorder], self.preorder, 0))
        return root_at[self.preorder_index]

    @cached_property
    def num_children(self) -> np.ndarray:
        return np.bincount(self.parent[self.parent >= 0], minlength=self.num_nodes)

    @cached_property
    def is_leaf(self) -> np.ndarray:
        """bool `[N]`."""
        return self.num_children == 0

    @cached_property
    def leaves(self) -> np.ndarray:
        """Leaf ids, ascending `[P]`."""
        return np.flatnonzero(self.is_leaf)

    @cached_property
    def max_depth(self) -> int:
        return int(self.depth.max(initial=-1))

    @cached_property
    def _levels(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.depth, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(self.depth, minlength=self.max_depth + 1))))
        return order, bounds

    def level(self, d: int) -> np.ndarray:
        """Node ids at depth `d`, ascending."""
        order, bounds = self._levels
        return order[bounds[d] : bounds[d + 1]]

    @property
    def preorder_index(self) -> np.ndarray:
        """Each node's position in the depth-first pre-order of the forest (trees in the order of their roots,
        children in ascending id); node n's subtree is positions `[preorder_index[n], + subtree_size[n])`."""
        return self._tour.preorder_index

    @property
    def subtree_size(self) -> np.ndarray:
        """Nodes in each node's subtree, itself included."""
        return self._tour.subtree_size

    @cached_property
    def preorder(self) -> np.ndarray:
        """Node ids in depth-first pre-order `[N]`."""
        order = np.empty(self.num_nodes, np.int64)
        order[self.preorder_index] = np.arange(self.num_nodes)
        return order

    def subtree_sum(self, values: np.ndarray) -> np.ndarray:
        """`out[n] = sum(values[m] for m in subtree(n))`, float64 or int64 `[N]`."""
        values = np.asarray(values)
        start = self.preorder_index
        return _range_sums(values[self.preorder], start, start + self.subtree_size)

    def path_sum(self, values: np.ndarray) -> np.ndarray:
        """`out[n] = sum(values[m] for m in path(n))`, root to n inclusive, `[N]`."""
        values = np.asarray(values)
        # Along the Euler tour, +v where a node is entered and -v where it is left: the tour up to entering n
        # sums exactly n's ancestors and n.
        tour = self._tour
        signed = np.zeros(2 * self.num_nodes + 1, np.result_type(values, np.int64))
        signed[tour.entered] = values
        signed[tour.left] = -values
        return _range_sums(signed, np.zeros(self.num_nodes, np.int64), tour.entered + 1)

    def nearest_ancestor(self, marked: np.ndarray) -> np.ndarray:
        """The nearest strict ancestor of each node where `marked` (bool `[N]`) holds, -1 where none does."""
        marked = np.asarray(marked, bool)
        nearest = self.parent.copy()
        # Pointer jumping over unmarked ancestors: O(log) rounds of the longest unmarked run, over its nodes only.
        pending = np.flatnonzero((nearest >= 0) & ~marked[np.maximum(nearest, 0)])
        while len(pending):
            nearest[pending] = nearest[nearest[pending]]
            up = nearest[pending]
            pending = pending[(up >= 0) & ~marked[np.maximum(up, 0)]]
        return nearest

    def path_pairs(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (row, node) with node on path(nodes[row]), `[sum of path lengths]` each, grouped by node."""
        nodes = np.asarray(nodes, dtype=np.int64)
        by_position = np.argsort(self.preorder_index[nodes], kind="stable")
        positions = self.preorder_index[nodes][by_position]
        # Node a lies on path(x) iff x's position falls in a's subtree: a range of the rows sorted by position.
        low = np.searchsorted(positions, self.preorder_index, side="left")
        high = np.searchsorted(positions, self.preorder_index + self.subtree_size, side="left")
        ancestor, rank = expand_ranges(low, high)
        return by_position[rank], ancestor


COPY_CELLS = 1 << 20  # cells `TrajectoryLayout.expand` copies at once
EXACT_WINDOWS = 256  # runs shorter than this are copied in one piece, grouped by length


@dataclass(frozen=True)
class TrajectoryLayout:
    """Where the tokens of P trajectories go in a `[P, width]` array: row r holds the tokens of path(leaves[r]),
    root to leaf, node by node, then padding; `lengths` int64 `[P]` counts each row's tokens.

    `expand` fills such an array with per-token values by copying runs of tokens (consecutive in the forest's
    token layout and in a row) whole, never through an index per token.
    """

    topology: Topology
    num_tokens: np.ndarray  # int64 [N]
    leaves: np.ndarray      # int64 [P]
    path_start: np.ndarray  # int64 [N]: tokens before node n on its path
    lengths: np.ndarray     # int64 [P]
    width: int

    @classmethod
    def of(cls, topology: Topology, num_tokens: np.ndarray, leaves: np.ndarray) -> TrajectoryLayout:
        num_tokens = np.asarray(num_tokens, dtype=np.int64)
        leaves = np.asarray(leaves, dtype=np.int64)
        path_start = topology.path_sum(num_tokens) - num_tokens
        lengths = (path_start + num_tokens)[leaves]
        return cls(topology, num_tokens, leaves, path_start, lengths, int(lengths.max(initial=0)))

    def valid(self) -> np.ndarray:
        """bool `[P, width]`: True on each row's tokens, False in its padding (each row a window of a staircase)."""
        staircase = np.repeat([True, False], self.width)
        return sliding_window_view(staircase, self.width)[self.width - self.lengths]

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """`[P, width]`: `values[r]` on row r's tokens, 0 in its padding."""
        values = np.asarray(values)
        runs = np.stack((values, np.zeros_like(values)), axis=1).reshape(-1)
        lengths = np.stack((self.lengths, self.width - self.lengths), axis=1).reshape(-1)
        return np.repeat(runs, lengths).reshape(len(values), self.width)

    def expand(self, values, fill=0) -> np.ndarray:
        """`[P, width, ...]` of `values [T, ...]` (per forest token, laid out by node): row r holds the values of
        trajectory r's tokens in order, `fill` after them. Besides the output, temporary arrays hold at most
        COPY_CELLS cells; with `fill` 0 the padding is never written (fresh zero pages)."""
        values = np.ascontiguousarray(values)
        if len(values) != int(self.num_tokens.sum()):
            raise ValueError(f"{len(values)} values for a forest of {int(self.num_tokens.sum())} tokens")
        shape = (len(self.leaves), self.width, *values.shape[1:])
        out = np.zeros(shape, values.dtype) if fill == 0 else np.full(shape, fill, values.dtype)
        if out.size == 0:
            return out
        flat = out.reshape(-1, *values.shape[1:])
        for window, source, target in self._copies:
            windows_of_values, windows_of_out = _records(values, window), _records(flat, window)
            step = max(1, COPY_CELLS // window)
            for start in range(0, len(source), step):
                part = slice(start, start + step)
                windows_of_out[target[part]] = windows_of_values[source[part]]
        return out

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(source, target, count)` int64 `[C]`, row by row: `count` tokens from forest token `source` go to flat
        position `target` of the `[P, width]` array, for every maximal run of a trajectory's tokens that is also
        consecutive in the forest's layout."""
        topology, num_tokens, leaves = self.topology, self.num_tokens, self.leaves
        parent = topology.parent
        token_start = np.cumsum(num_tokens) - num_tokens
        # Node n continues its parent's run when its tokens directly follow the parent's; a head starts a run.
        above = np.maximum(parent, 0)
        continues = (parent >= 0) & (num_tokens > 0) & (num_tokens[above] > 0) & (
            token_start == token_start[above] + num_tokens[above])
        heads = np.flatnonzero(~continues)
        head = np.where(continues, topology.nearest_ancestor(~continues), np.arange(len(parent)))  # n's run's head

        # The runs of row r are the heads on path(leaves[r]): path pairs of the tree of heads, ordered by row and,
        # within a row, from the root down. A run ends above the next head on the row's path, or at the leaf.
        head_rank = np.full(len(parent), -1, np.int64)
        head_rank[heads] = np.arange(len(heads))
        heads_tree = Topology.of(np.where(parent[heads] >= 0, head_rank[head[above[heads]]], -1))
        leaf_head = head_rank[head[leaves]]
        pair_row, ranked = heads_tree.path_pairs(leaf_head)
        runs_per_row = heads_tree.depth[leaf_head] + 1
        first = np.empty(int(runs_per_row.sum()), np.int64)  # a row's heads sit at its offset plus their depth
        first[(np.cumsum(runs_per_row) - runs_per_row)[pair_row] + heads_tree.depth[ranked]] = heads[ranked]
        row = np.repeat(np.arange(len(leaves)), runs_per_row)
        last_of_row = np.r_[row[1:] != row[:-1], True] if len(row) else np.zeros(0, bool)
        end = np.where(last_of_row, leaves[row], parent[np.r_[first[1:], 0][: len(first)]])
        count = self.path_start[end] + num_tokens[end] - self.path_start[first]
        copied = count > 0
        row, first, count = row[copied], first[copied], count[copied]
        return token_start[first], row * self.width + self.path_start[first], count

    @cached_property
    def _copies(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """`(window, source, target)` per window size, in the order of the output. A run of fewer than
        EXACT_WINDOWS tokens is one copy of its length; a longer one, of w <= count < 2w tokens for a power of two
        w, is two copies of w tokens, its first and its last, which overlap (one copy when count == w)."""
        source, target, count = self._runs
        exponent = np.frexp(count)[1] - 1  # floor(log2(count)), exact below 2^53
        exact = count < EXACT_WINDOWS
        window = np.where(exact, count, np.left_shift(1, exponent))
        shift = count - window  # where the last window starts; 0 for a single copy
        needed = np.stack((np.ones(len(shift), bool), shift > 0), axis=1).reshape(-1)
        key = np.where(exact, count, EXACT_WINDOWS + exponent).astype(np.uint16)  # one per window size
        key, window, source, target = (np.repeat(values, 2)[needed] for values in (key, window, source, target))
        last = np.stack((np.zeros(len(shift), np.int64), shift), axis=1).reshape(-1)[needed]
        source, target = source + last, target + last
        order = np.argsort(key, kind="stable")  # a radix sort: 16-bit keys; keeps the order of the output
        classes = np.flatnonzero(np.diff(key[order], prepend=-1, append=1 << 16))
        return [(int(window[order[start]]), source[order[start:stop]], target[order[start:stop]])
                for start, stop in zip(classes[:-1], classes[1:])]


def _records(array: np.ndarray, window: int) -> np.ndarray:
    """The `len(array) - window + 1` overlapping windows of `window` consecutive entries of a C-contiguous array
    (along its first axis), each an opaque record: numpy copies records by index in one tight loop, where windows
    as rows of a 2-D view cost a loop each."""
    entry = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    return np.ndarray((len(array) - window + 1,), np.dtype((np.void, window * entry)), buffer=array, strides=(entry,))
