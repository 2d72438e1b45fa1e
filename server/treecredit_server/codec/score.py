"""Protobuf messages <-> the compute layer's arrays. Decoding validates; nothing here does math."""

from __future__ import annotations

import math

import numpy as np

from treecredit import _wire
from treecredit.errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import forest_pb2
from treecredit_server.config import Limits
from treecredit_server.compute.credit import Credit, Estimator
from treecredit_server.compute.forest import ForestArrays

MAX_TOPK = 64

# Per-token arrays a forest may carry: wire name -> (accepted dtypes, dimensions).
_TOKEN_FIELDS = {
    "token_ids": (_wire.INTEGER, 1),
    "loss_mask": (_wire.MASK, 1),
    "logprobs": (_wire.FLOAT, 1),
    "topk_logprobs": (_wire.LOW_FLOAT, 2),
    "confidence": (_wire.FLOAT, 1),
}

_ESTIMATORS = {
    pb.ESTIMATOR_GRPO: Estimator.GRPO,
    pb.ESTIMATOR_TREE_GRPO: Estimator.TREE_GRPO,
    pb.ESTIMATOR_TREERL: Estimator.TREERL,
    pb.ESTIMATOR_VALUE_DIFF: Estimator.VALUE_DIFF,
    pb.ESTIMATOR_TOOLPO: Estimator.TOOLPO,
    pb.ESTIMATOR_SRL: Estimator.SRL,
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
    return ForestArrays.validated(parent, group, reward, num_tokens, tokens, name=name)


def decode_estimator(value: int) -> Estimator:
    if value not in _ESTIMATORS:
        known = ", ".join(pb.Estimator.Name(v) for v in _ESTIMATORS)
        raise InvalidArgument("estimator", f"unknown or unspecified estimator {value}; expected one of {known}")
    return _ESTIMATORS[value]


def decode_score_options(options: pb.ScoreOptions) -> dict:
    if not (math.isfinite(options.min_margin) and options.min_margin >= 0):
        raise InvalidArgument("options.min_margin", f"must be finite and >= 0, got {options.min_margin}")
    return {
        "normalize_std": options.normalize_std if options.HasField("normalize_std") else True,
        "sibling_std": options.sibling_std,
        "min_margin": options.min_margin,
    }


def encode_credit(credit: Credit, estimator: Estimator) -> pb.ScoreResponse:
    response = pb.ScoreResponse(scope=pb.ADVANTAGE_SCOPE_LEAF if estimator.leaf_level else pb.ADVANTAGE_SCOPE_NODE)
    _encode_fields(response, credit, node_advantages=np.float64, leaf_advantages=np.float64)
    # Node ids and depths fit in int32 under any node limit: half the bytes of the largest part.
    _encode_fields(response.preferences, credit.preferences, winner=np.int32, loser=np.int32, margin=np.float64,
                   depth=np.int32)
    _encode_fields(response.depth_profile, credit.depth_profile, depth=np.int64, branch_points=np.int64,
                   sibling_pairs=np.int64, mean_abs_advantage=np.float64, tokens=np.int64)
    sharing = credit.sharing
    response.sharing.unique_tokens = sharing.unique_tokens
    response.sharing.trajectory_tokens = sharing.trajectory_tokens
    response.sharing.sharing = sharing.sharing
    response.sharing.trajectories_per_1k_tokens = sharing.trajectories_per_1k_tokens
    return response


def _encode_fields(message, source, **dtypes) -> None:
    """Encode `source.<name>` into the Tensor field `message.<name>` as `dtype`, in place, for each name."""
    for name, dtype in dtypes.items():
        _wire.encode(getattr(source, name), dtype, into=getattr(message, name))
