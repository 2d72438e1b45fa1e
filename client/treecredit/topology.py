"""Vectorised tree arithmetic on a parent array (parent[i] < i, -1 at roots), shared by SDK and server.

Every operation is whole-array numpy: pointer doubling for depth and roots (O(N log depth)), and one
vectorised step per depth level for sums up and down the trees. No Python loop runs per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


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
    """Where each token of each trajectory comes from: row r, column c holds forest token `token`.

    `row`, `column`, `token` are int64 `[sum of trajectory lengths]`; `lengths` is `[P]`.
    """

    row: np.ndarray
    column: np.ndarray
    token: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, topology: Topology, num_tokens: np.ndarray, leaves: np.ndarray) -> TrajectoryLayout:
        num_tokens = np.asarray(num_tokens, dtype=np.int64)
        token_start = np.cumsum(num_tokens) - num_tokens
        path_start = topology.path_sum(num_tokens) - num_tokens  # tokens before node n on its path
        rows, nodes = topology.path_pairs(leaves)
        counts = num_tokens[nodes]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return cls(
            row=np.repeat(rows, counts),
            column=np.repeat(path_start[nodes], counts) + within,
            token=np.repeat(token_start[nodes], counts) + within,
            lengths=(path_start + num_tokens)[np.asarray(leaves, dtype=np.int64)],
        )
