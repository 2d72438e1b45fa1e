"""A forest as the flat arrays every computation reads (`codec.forest` checks them before any math)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    def of(cls, parent: np.ndarray, group: np.ndarray, reward: np.ndarray, num_tokens: np.ndarray,
           tokens: dict[str, np.ndarray] | None = None) -> ForestArrays:
        """From arrays decoding has checked (`codec.forest`), any integer and float types: the topology, and the
        roots' group ids numbered densely in ascending order."""
        parent = parent.astype(np.int64, copy=False)
        topology = Topology.of(parent)
        is_root = parent < 0
        root_groups, dense = np.unique(group[is_root], return_inverse=True)
        root_rank = np.cumsum(is_root) - 1  # root r is the root_rank[r]-th root
        dense_group = dense.astype(np.int64)[root_rank[topology.root]]
        return cls(parent, dense_group, reward.astype(np.float64, copy=False), num_tokens.astype(np.int64, copy=False),
                   len(root_groups), topology, dict(tokens or {}))
