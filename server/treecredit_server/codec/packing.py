"""Protobuf messages of Pack <-> the arrays of compute/packing. Decoding validates; nothing here does math."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from treecredit import _wire
from treecredit.errors import InvalidArgument, RequestError, ResourceExhausted
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import packing_pb2 as ppb
from treecredit_server.codec import score as score_codec
from treecredit_server.codec import structures as structures_codec
from treecredit_server.compute import packing
from treecredit_server.compute.credit import Estimator
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.structured import StructureInputs
from treecredit_server.config import Limits

_MODES = {
    ppb.LOSS_AGG_MODE_TOKEN_MEAN: packing.LossAggMode.TOKEN_MEAN,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM: packing.LossAggMode.SEQ_MEAN_TOKEN_SUM,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN: packing.LossAggMode.SEQ_MEAN_TOKEN_MEAN,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM_NORM: packing.LossAggMode.SEQ_MEAN_TOKEN_SUM_NORM,
}


@dataclass(frozen=True)
class PackInputs:
    """A decoded, validated Pack request: the arguments of `compute.packing.pack`."""

    forest: ForestArrays
    estimator: Estimator
    inputs: StructureInputs
    packing: packing.PackOptions
    normalize_std: bool
    sibling_std: bool


def decode_pack(request: pb.PackRequest, limits: Limits) -> PackInputs:
    try:
        forest, estimator, inputs, options = _decode_score_part(request.score, limits)
    except RequestError as error:  # the Score decoders name fields from a ScoreRequest's root
        raise type(error)(f"score.{error.field}", error.problem) from None
    return PackInputs(forest, estimator, inputs, decode_pack_options(request.options, limits),
                      normalize_std=options["normalize_std"], sibling_std=options["sibling_std"])


def _decode_score_part(score: pb.ScoreRequest, limits: Limits):
    """What Score decodes, and the token ids Pack needs besides."""
    forest = score_codec.decode_forest(score.forest, limits)
    if "token_ids" not in forest.tokens:
        holding = np.flatnonzero(forest.num_tokens)
        which = (f"node {holding[0]} has {forest.num_tokens[holding[0]]} tokens and no ids" if len(holding)
                 else "the forest has no tokens")
        raise InvalidArgument("forest.token_ids", f"Pack needs the id of every token; {which}")
    estimator = score_codec.decode_estimator(score.estimator)
    inputs = structures_codec.decode_score_inputs(score, forest, estimator, limits)
    return forest, estimator, inputs, score_codec.decode_score_options(score.options)


def decode_pack_options(options: ppb.PackOptions, limits: Limits) -> packing.PackOptions:
    if options.loss_agg_mode not in _MODES:
        known = ", ".join(ppb.LossAggMode.Name(mode) for mode in _MODES)
        raise InvalidArgument("options.loss_agg_mode",
                              f"unknown or unspecified mode {options.loss_agg_mode}; expected one of {known}")
    mode = _MODES[options.loss_agg_mode]
    align = options.align if options.HasField("align") else 1
    if align < 1:
        raise InvalidArgument("options.align", f"must be >= 1, got {align}")
    if align > limits.max_tokens:
        raise ResourceExhausted("options.align", f"{align} exceeds the token limit of {limits.max_tokens}")
    microbatch_tokens = options.microbatch_tokens if options.HasField("microbatch_tokens") else None
    if microbatch_tokens is not None and microbatch_tokens < align:
        raise InvalidArgument("options.microbatch_tokens",
                              f"must be >= align ({align}) to hold a token, got {microbatch_tokens}")
    max_response_length = options.max_response_length if options.HasField("max_response_length") else None
    if max_response_length is not None:
        if mode is not packing.LossAggMode.SEQ_MEAN_TOKEN_SUM_NORM:
            raise InvalidArgument("options.max_response_length", "is only read by seq-mean-token-sum-norm")
        if not 1 <= max_response_length <= limits.max_tokens:
            raise InvalidArgument("options.max_response_length",
                                  f"must be in [1, {limits.max_tokens}], got {max_response_length}")
    return packing.PackOptions(mode, max_response_length, microbatch_tokens, align)


def encode_pack(weights: packing.Weights, layout: packing.Layout) -> ppb.PackResponse:
    response = ppb.PackResponse()
    for name in ("microbatch_offsets", "microbatch_tokens", "node", "start", "previous", "position", "subtree_end"):
        _wire.encode(getattr(layout, name), np.int64, into=getattr(response.layout, name))
    _wire.encode(layout.owned, np.bool_, into=response.layout.owned)
    for name in ("weight", "advantage_pos", "advantage_neg", "tool_call_advantage_pos", "tool_call_advantage_neg"):
        if getattr(weights, name) is not None:
            _wire.encode(getattr(weights, name), np.float64, into=getattr(response, name))
    return response
