"""The `Forest` message <-> `ForestArrays`: every forest-carrying RPC decodes its forest here."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import forest_pb2
from treecredit_server.codec.fields import TOPK_PROBLEM, refuse_first, unusable_topk
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.config import Limits

MAX_TOPK = 64

# Per-token arrays a forest may carry: wire name -> (accepted dtypes, dimensions).
_TOKEN_FIELDS = {
    "token_ids": (_wire.INTEGER, 1),
    "loss_mask": (_wire.MASK, 1),
    "logprobs": (_wire.FLOAT, 1),
    "topk_logprobs": (_wire.LOW_FLOAT, 2),
    "confidence": (_wire.FLOAT, 1),
}


def decode_forest(message: forest_pb2.Forest, limits: Limits, name: str = "forest") -> ForestArrays:
    """A validated forest from its wire form; InvalidArgument / ResourceExhausted name the field."""

    def node_array(field: str, dtypes, *, required: bool = True) -> np.ndarray | None:
        if not message.HasField(field):
            if required:
                raise InvalidArgument(f"{name}.{field}", "is required")
            return None
        return _wire.decode(getattr(message, field), f"{name}.{field}", dtypes=dtypes, ndim=1,
                            max_elements=limits.max_nodes)

    parent = node_array("parent", _wire.INTEGER)
    group = node_array("group", _wire.INTEGER)
    reward = node_array("reward", _wire.FLOAT)
    num_tokens = node_array("num_tokens", _wire.INTEGER, required=False)
    if num_tokens is not None:
        _wire.check_sizes(num_tokens, f"{name}.num_tokens", limits.max_tokens, "tokens")
    tokens = {}
    for field, (dtypes, ndim) in _TOKEN_FIELDS.items():
        if message.HasField(field):
            width = MAX_TOPK if ndim == 2 else 1
            values = _wire.decode(getattr(message, field), f"{name}.{field}", dtypes=dtypes, ndim=ndim,
                                  max_elements=limits.max_tokens * width)
            if ndim == 2 and values.shape[1] > MAX_TOPK:
                raise InvalidArgument(f"{name}.{field}.shape", f"k = {values.shape[1]} exceeds {MAX_TOPK}")
            tokens[field] = values.astype(bool) if field == "loss_mask" else values
    return validated(parent, group, reward, num_tokens, tokens, name=name)


def validated(parent: np.ndarray, group: np.ndarray, reward: np.ndarray, num_tokens: np.ndarray | None,
              tokens: dict[str, np.ndarray] | None = None, *, name: str = "forest") -> ForestArrays:
    """The forest of these arrays once their shapes and meaning are checked: InvalidArgument names the field and
    index (parents before children, a group at every root, rewards at the leaves only, token counts)."""
    n = len(parent)
    for field, values in (("group", group), ("reward", reward), ("num_tokens", num_tokens)):
        if values is not None and len(values) != n:
            raise InvalidArgument(f"{name}.{field}", f"has {len(values)} entries for {n} nodes")
    parent = parent.astype(np.int64, copy=False)
    refuse_first(f"{name}.parent", (parent < -1) | (parent >= np.arange(n)),
           lambda i: f"parent {parent[i]} of node {i} must be -1 or a node before it")
    tokens = tokens or {}
    forest = ForestArrays.of(parent, group, reward, np.zeros(n, np.int64) if num_tokens is None else num_tokens,
                             tokens)
    is_root, is_leaf = parent < 0, forest.topology.is_leaf
    refuse_first(f"{name}.group", is_root & (group < 0), lambda i: f"root {i} has no group (negative id {group[i]})")
    reward = forest.reward
    refuse_first(f"{name}.reward", np.isinf(reward), lambda i: f"reward {reward[i]} of node {i} is not finite")
    refuse_first(f"{name}.reward", is_leaf & np.isnan(reward), lambda i: f"leaf {i} has no reward")
    refuse_first(f"{name}.reward", ~is_leaf & ~np.isnan(reward),
           lambda i: f"internal node {i} carries a reward ({reward[i]}); only leaves do")
    counts = forest.num_tokens
    refuse_first(f"{name}.num_tokens", counts < 0, lambda i: f"node {i} has a negative count {counts[i]}")
    total = _wire.exact_sum(counts)  # a sum of huge counts must not wrap to the tokens given
    for field, values in tokens.items():
        if len(values) != total:
            raise InvalidArgument(f"{name}.{field}", f"has {len(values)} tokens but num_tokens sums to {total}")
    if "confidence" in tokens:
        refuse_first(f"{name}.confidence", ~np.isfinite(tokens["confidence"]), "is NaN or +inf")
    if "topk_logprobs" in tokens:
        refuse_first(f"{name}.topk_logprobs", unusable_topk(tokens["topk_logprobs"]), TOPK_PROBLEM)
    return forest

