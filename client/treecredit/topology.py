"""Vectorised tree arithmetic on a parent array (parent[i] < i, -1 at roots), shared by SDK and server.

Every operation is whole-array numpy: pointer doubling for depth and roots (O(N log depth)), and one
vectorised step per depth level for sums up and down the trees. No Python loop runs per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    def _depth_and_root(self) -> tuple[np.ndarray, np.ndarray]:
        nodes = np.arange(self.num_nodes)
        is_root = self.parent < 0
        ancestor = np.where(is_root, nodes, self.parent)
        depth = (~is_root).astype(np.int64)
        while True:  # after round r, `ancestor` is 2^r steps up (or the root) and `depth` counts them
            jumped = ancestor[ancestor]
            if np.array_equal(jumped, ancestor):
                return depth, ancestor
            depth = depth + depth[ancestor]
            ancestor = jumped

    @property
    def depth(self) -> np.ndarray:
        """Edges from the root; 0 at roots."""
        return self._depth_and_root[0]

    @property
    def root(self) -> np.ndarray:
        """The root of each node's tree."""
        return self._depth_and_root[1]

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

    def subtree_sum(self, values: np.ndarray) -> np.ndarray:
        """`out[n] = sum(values[m] for m in subtree(n))`, float64 or int64 `[N]`."""
        out = np.array(values, dtype=np.result_type(values, np.int64), copy=True)
        for d in range(self.max_depth, 0, -1):
            nodes = self.level(d)
            np.add.at(out, self.parent[nodes], out[nodes])
        return out

    def path_sum(self, values: np.ndarray) -> np.ndarray:
        """`out[n] = sum(values[m] for m in path(n))`, root to n inclusive, `[N]`."""
        out = np.array(values, dtype=np.result_type(values, np.int64), copy=True)
        for d in range(1, self.max_depth + 1):
            nodes = self.level(d)
            out[nodes] += out[self.parent[nodes]]
        return out

    def path_pairs(self, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (row, node) with node on path(leaves[row]), `[sum of path lengths]` each."""
        rows, nodes = [], []
        row = np.arange(len(leaves))
        current = np.asarray(leaves, dtype=np.int64)
        while len(current):
            rows.append(row)
            nodes.append(current)
            up = self.parent[current]
            keep = up >= 0
            row, current = row[keep], up[keep]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows), np.concatenate(nodes)


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
        # Node n continues its parent's run when its tokens directly follow the parent's; head[n] tops n's run.
        above = np.maximum(parent, 0)
        continues = (parent >= 0) & (num_tokens > 0) & (num_tokens[above] > 0) & (
            token_start == token_start[above] + num_tokens[above])
        head = np.arange(len(parent))
        for depth in range(1, topology.max_depth + 1):
            nodes = topology.level(depth)
            nodes = nodes[continues[nodes]]
            head[nodes] = head[parent[nodes]]

        # Walk up from the leaves: node n ends a run of row r where the path below it does not continue it.
        # Each row's runs are found last to first; `rank` counts them, to put them back in row-major order.
        rows, ends, ranks = [], [], []
        found = np.zeros(len(leaves), np.int64)
        row, node, end = np.arange(len(leaves)), leaves, np.ones(len(leaves), bool)
        while len(node):
            rows.append(row[end])
            ends.append(node[end])
            ranks.append(found[rows[-1]])
            found[rows[-1]] += 1
            up = parent[node]
            keep = up >= 0
            row, end, node = row[keep], ~continues[node[keep]], up[keep]
        row, end, rank = (np.concatenate(parts) if parts else np.zeros(0, np.int64) for parts in (rows, ends, ranks))
        position = np.empty(len(row), np.int64)
        position[(np.cumsum(found) - 1)[row] - rank] = np.arange(len(row))
        row, end = row[position], end[position]
        first = head[end]
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
