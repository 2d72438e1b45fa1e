"""A validated forest: the flat arrays every computation reads, checked once before any math."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from treecredit.errors import InvalidArgument
from treecredit.topology import Topology


@dataclass(frozen=True)
class ForestArrays:
    """N nodes, T tokens, G groups. `group` is dense 0..G-1 per node (its root's group).

    `tokens` holds the optional per-token arrays by name (`loss_mask [T]`, `topk_logprobs [T, k]`, ...).
    """

    parent: np.ndarray      # int64 [N]
    group: np.ndarray       # int64 [N]
    reward: np.ndarray      # float64 [N], NaN off the leaves
    num_tokens: np.ndarray  # int64 [N]
    num_groups: int
    topology: Topology
    tokens: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return len(self.parent)

    @property
    def leaves(self) -> np.ndarray:
        return self.topology.leaves

    @property
    def token_offsets(self) -> np.ndarray:
        """int64 `[N + 1]`: node n's tokens are `[token_offsets[n], token_offsets[n + 1])`."""
        return np.concatenate(([0], np.cumsum(self.num_tokens)))

    @classmethod
    def validated(
        cls,
        parent: np.ndarray,
        group: np.ndarray,
        reward: np.ndarray,
        num_tokens: np.ndarray | None,
        tokens: dict[str, np.ndarray] | None = None,
        *,
        name: str = "forest",
    ) -> ForestArrays:
        """Check the arrays' shapes and meaning; raise InvalidArgument naming the field and index."""
        n = len(parent)
        for field_name, values in (("group", group), ("reward", reward), ("num_tokens", num_tokens)):
            if values is not None and len(values) != n:
                raise InvalidArgument(f"{name}.{field_name}", f"has {len(values)} entries for {n} nodes")
        parent = parent.astype(np.int64, copy=False)
        _first(name + ".parent", (parent < -1) | (parent >= np.arange(n)),
               lambda i: f"parent {parent[i]} of node {i} must be -1 or a node before it")

        topology = Topology.of(parent)
        is_root = parent < 0
        group = group.astype(np.int64, copy=False)
        _first(name + ".group", is_root & (group < 0), lambda i: f"root {i} has no group (negative id {group[i]})")
        reward = reward.astype(np.float64, copy=False)
        is_leaf = topology.is_leaf
        _first(name + ".reward", np.isinf(reward), lambda i: f"reward {reward[i]} of node {i} is not finite")
        _first(name + ".reward", is_leaf & np.isnan(reward), lambda i: f"leaf {i} has no reward")
        _first(name + ".reward", ~is_leaf & ~np.isnan(reward),
               lambda i: f"internal node {i} carries a reward ({reward[i]}); only leaves do")

        if num_tokens is None:
            num_tokens = np.zeros(n, np.int64)
        num_tokens = num_tokens.astype(np.int64, copy=False)
        _first(name + ".num_tokens", num_tokens < 0, lambda i: f"node {i} has a negative count {num_tokens[i]}")
        total = int(num_tokens.sum())
        for token_field, values in (tokens or {}).items():
            if len(values) != total:
                raise InvalidArgument(
                    f"{name}.{token_field}", f"has {len(values)} tokens but num_tokens sums to {total}"
                )

        root_groups, dense = np.unique(group[is_root], return_inverse=True)
        root_rank = np.cumsum(is_root) - 1  # root r is the root_rank[r]-th root
        dense_group = dense.astype(np.int64)[root_rank[topology.root]]
        return cls(parent, dense_group, reward, num_tokens, len(root_groups), topology, dict(tokens or {}))


def _first(field_name: str, bad: np.ndarray, describe) -> None:
    """Raise InvalidArgument for the first index where `bad` holds."""
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidArgument(f"{field_name}[{index}]", describe(index))
