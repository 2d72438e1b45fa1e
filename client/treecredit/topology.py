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


@dataclass(frozen=True)
class TrajectoryLayout:
    """Where the tokens of P trajectories go in a `[P, width]` array: row r holds the tokens of path(leaves[r]),
    root to leaf, node by node, then padding; `lengths` int64 `[P]` counts each row's tokens.

    Kept as copies rather than one index per token: each run of tokens that is contiguous both in the forest's
    token layout (node by node) and in its row is one copy of `count` tokens from forest token `source` to flat
    position `target` of the `[P, width]` array; int64 `[C]` each.
    """

    lengths: np.ndarray
    width: int
    num_tokens: int  # T, the forest's tokens
    source: np.ndarray
    target: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, topology: Topology, num_tokens: np.ndarray, leaves: np.ndarray) -> TrajectoryLayout:
        num_tokens = np.asarray(num_tokens, dtype=np.int64)
        leaves = np.asarray(leaves, dtype=np.int64)
        parent = topology.parent
        path_start = topology.path_sum(num_tokens) - num_tokens  # tokens before node n on its path
        token_start = np.cumsum(num_tokens) - num_tokens
        lengths = (path_start + num_tokens)[leaves]
        width = int(lengths.max(initial=0))

        # A run: a chain of nodes each of whose tokens directly follow its parent's in the forest's layout, so
        # that a path through them is one copy. `head[n]`: the top of n's run.
        above = np.maximum(parent, 0)
        continues = (parent >= 0) & (num_tokens > 0) & (num_tokens[above] > 0) & (
            token_start == token_start[above] + num_tokens[above])
        head = np.arange(len(parent))
        for depth in range(1, topology.max_depth + 1):
            nodes = topology.level(depth)
            nodes = nodes[continues[nodes]]
            head[nodes] = head[parent[nodes]]

        # Walk up from the leaves: node n ends a copy of row r where the path below it does not continue it.
        # Each row's copies are found last to first; `rank` counts them, to put them back in row-major order.
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
        count = path_start[end] + num_tokens[end] - path_start[first]
        copied = count > 0
        row, first, count = row[copied], first[copied], count[copied]
        return cls(lengths, width, int(num_tokens.sum()), token_start[first], row * width + path_start[first], count)

    def expand(self, values, fill=0) -> np.ndarray:
        """`[P, width, ...]` of `values [T, ...]` (per forest token, laid out by node): row r holds the values of
        trajectory r's tokens in order, `fill` after them. Whole-array copies, one pair per window size."""
        values = np.asarray(values)
        if len(values) != self.num_tokens:
            raise ValueError(f"{len(values)} values for a forest of {self.num_tokens} tokens")
        out = np.full((len(self.lengths), self.width, *values.shape[1:]), fill, dtype=values.dtype)
        flat = out.reshape(-1, *values.shape[1:])
        for window, source, target in self._copies:
            into = sliding_window_view(flat, window, axis=0, writeable=True)
            into[target] = sliding_window_view(values, window, axis=0)[source]
        return out

    @cached_property
    def _copies(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """`(window, source, target)` per window size w, a power of two, in the order of the output (which keeps
        its writes in cache): a run of w <= count < 2w tokens is copied as two windows of w tokens, its first and
        its last, which overlap (one window when count == w)."""
        exponent = (np.frexp(self.count)[1] - 1).astype(np.uint8)  # floor(log2(count)), exact below 2^53
        shift = self.count - np.left_shift(1, exponent.astype(np.int64))  # where the last window starts
        needed = np.stack((np.ones(len(shift), bool), shift > 0), axis=1).reshape(-1)
        exponent, source, target = (np.repeat(values, 2)[needed] for values in (exponent, self.source, self.target))
        last = np.stack((np.zeros(len(shift), np.int64), shift), axis=1).reshape(-1)[needed]
        source, target = source + last, target + last
        order = np.argsort(exponent, kind="stable")  # a radix sort: uint8 keys
        bounds = np.flatnonzero(np.diff(exponent[order], prepend=-1, append=64))
        return [(1 << int(exponent[order[start]]), source[order[start:stop]], target[order[start:stop]])
                for start, stop in zip(bounds[:-1], bounds[1:])]
