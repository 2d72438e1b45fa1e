"""Score's messages (credit.proto) <-> `compute.score`: one decode that validates every field of the request
(the forest, the estimator's inputs, the options), one encode of the result. Nothing here does math."""

from __future__ import annotations

import math

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import credit_pb2 as pb
from treecredit_server.codec.fields import window
from treecredit_server.codec.forest import decode_forest
from treecredit_server.codec.reflection import decode_forest_reflection, encode_reflection
from treecredit_server.codec.srl import decode_step_similarity, encode_step_credit
from treecredit_server.codec.toolpo import decode_tool_calls
from treecredit_server.compute.credit import Estimator, sibling_pairs
from treecredit_server.compute.score import ScoreInputs, Scored
from treecredit_server.config import Limits

_ESTIMATORS = {
    pb.ESTIMATOR_GRPO: Estimator.GRPO,
    pb.ESTIMATOR_TREE_GRPO: Estimator.TREE_GRPO,
    pb.ESTIMATOR_TREERL: Estimator.TREERL,
    pb.ESTIMATOR_VALUE_DIFF: Estimator.VALUE_DIFF,
    pb.ESTIMATOR_TOOLPO: Estimator.TOOLPO,
    pb.ESTIMATOR_SRL: Estimator.SRL,
}
# The trace confidence arrays of a ScoreResponse and their wire types.
_TRACE_FIELDS = (("leaf", np.int64), ("lowest", np.float64), ("bottom10", np.float64), ("tail", np.float64),
                 ("mean", np.float64), ("num_tokens", np.int64))


def decode_score(request: pb.ScoreRequest, limits: Limits) -> ScoreInputs:
    """Every field of a Score request, checked; InvalidArgument / ResourceExhausted name the field."""
    forest = decode_forest(request.forest, limits)
    estimator = _decode_estimator(request.estimator)
    pairs = sibling_pairs(forest)
    if pairs > limits.max_sibling_pairs:
        raise ResourceExhausted("forest.parent", f"branch points give {pairs} sibling pairs to compare, over the "
                                                 f"limit of {limits.max_sibling_pairs}")
    options = request.options
    if not (math.isfinite(options.min_margin) and options.min_margin >= 0):
        raise InvalidArgument("options.min_margin", f"must be finite and >= 0, got {options.min_margin}")
    for field, wanted in (("tool_calls", Estimator.TOOLPO), ("step_similarity", Estimator.SRL)):
        if request.HasField(field) != (estimator is wanted):
            problem = "is required" if estimator is wanted else f"is only read by ESTIMATOR_{wanted.name}"
            raise InvalidArgument(field, problem)
    if request.HasField("reflection") and estimator is Estimator.SRL:
        raise InvalidArgument("reflection", "srl scores step similarity, not a reflection reward")
    return ScoreInputs(
        forest=forest,
        estimator=estimator,
        normalize_std=options.normalize_std if options.HasField("normalize_std") else True,
        sibling_std=options.sibling_std,
        min_margin=options.min_margin,
        window=window(options, "window", "options."),
        tail=window(options, "tail", "options."),
        action_reward=(decode_tool_calls(request.tool_calls, forest, limits)
                       if estimator is Estimator.TOOLPO else None),
        step_similarity=(decode_step_similarity(request.step_similarity, forest, limits)
                         if estimator is Estimator.SRL else None),
        reflection=(decode_forest_reflection(request.reflection, forest, limits)
                    if request.HasField("reflection") else None),
    )


def _decode_estimator(value: int) -> Estimator:
    if value not in _ESTIMATORS:
        known = ", ".join(pb.Estimator.Name(v) for v in _ESTIMATORS)
        raise InvalidArgument("estimator", f"unknown or unspecified estimator {value}; expected one of {known}")
    return _ESTIMATORS[value]


def encode_score(scored: Scored) -> pb.ScoreResponse:
    """The response, written in place (nested protobuf constructors copy, and the copies cost more than the math)."""
    credit = scored.credit
    if scored.action_advantage is not None:
        scope = pb.ADVANTAGE_SCOPE_TOOL_CALL
    else:
        scope = pb.ADVANTAGE_SCOPE_LEAF if scored.estimator.leaf_level else pb.ADVANTAGE_SCOPE_NODE
    response = pb.ScoreResponse(scope=scope)
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
    if scored.action_advantage is not None:
        _wire.encode(scored.action_advantage, np.float64, into=response.action_advantages)
    if scored.step_credit is not None:
        encode_step_credit(scored.step_credit, response.step_similarity)
    if scored.reflection is not None:
        encode_reflection(scored.reflection, into=response.reflection)
    if scored.trace is not None:
        _encode_fields(response.trace_confidence, scored.trace, **dict(_TRACE_FIELDS))
    return response


def _encode_fields(message, source, **dtypes) -> None:
    """Encode `source.<name>` into the Tensor field `message.<name>` as `dtype`, in place, for each name."""
    for name, dtype in dtypes.items():
        _wire.encode(getattr(source, name), dtype, into=getattr(message, name))
