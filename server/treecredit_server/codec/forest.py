"""The `Forest` message <-> `ForestArrays`: every forest-carrying RPC decodes its forest here."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit.errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import forest_pb2
from treecredit_server.codec.fields import refuse_first, unusable_topk
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
    if num_tokens is not None and len(num_tokens) == len(parent):
        total = int(num_tokens.sum(dtype=np.int64))
        if total > limits.max_tokens:
            raise ResourceExhausted(f"{name}.num_tokens", f"{total} tokens exceed the limit of {limits.max_tokens}")
    tokens = {}
    for field, (dtypes, ndim) in _TOKEN_FIELDS.items():
        if message.HasField(field):
            width = MAX_TOPK if ndim == 2 else 1
            values = _wire.decode(getattr(message, field), f"{name}.{field}", dtypes=dtypes, ndim=ndim,
                                  max_elements=limits.max_tokens * width)
            if ndim == 2 and values.shape[1] > MAX_TOPK:
                raise InvalidArgument(f"{name}.{field}.shape", f"k = {values.shape[1]} exceeds {MAX_TOPK}")
            tokens[field] = values.astype(bool) if field == "loss_mask" else values
    forest = ForestArrays.validated(parent, group, reward, num_tokens, tokens, name=name)
    if "confidence" in tokens:
        refuse_first(f"{name}.confidence", ~np.isfinite(tokens["confidence"]), "is NaN or +inf")
    if "topk_logprobs" in tokens:
        refuse_first(f"{name}.topk_logprobs", unusable_topk(tokens["topk_logprobs"]), "is NaN or +inf")
    return forest
