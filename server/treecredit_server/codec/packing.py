"""Pack's messages (packing.proto, and the PackRequest of credit.proto) <-> `compute.packing`: one decode that
validates every field (the ScoreRequest inside as Score decodes it, then the token ids and the packing options),
one encode of the result. Nothing here does math."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument, RequestError
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import packing_pb2 as ppb
from treecredit_server.codec import score as score_codec
from treecredit_server.codec.fields import enum, optional
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.packing import (Layout, LossAggMode, PackInputs, PackOptions, Weights, copied_tokens,
                                               microbatch_capacity, trajectory_tokens)
from treecredit_server.config import Limits

_MODES = {
    ppb.LOSS_AGG_MODE_TOKEN_MEAN: LossAggMode.TOKEN_MEAN,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM: LossAggMode.SEQ_MEAN_TOKEN_SUM,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN: LossAggMode.SEQ_MEAN_TOKEN_MEAN,
    ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM_NORM: LossAggMode.SEQ_MEAN_TOKEN_SUM_NORM,
}
_LAYOUT_FIELDS = ("microbatch_offsets", "microbatch_tokens", "node", "start", "previous", "position", "subtree_end")
_WEIGHT_FIELDS = ("weight", "advantage_pos", "advantage_neg", "tool_call_advantage_pos", "tool_call_advantage_neg")


def decode_pack(request: pb.PackRequest, limits: Limits) -> PackInputs:
    """Every field of a Pack request, checked; InvalidArgument / ResourceExhausted name the field."""
    try:
        score = score_codec.decode_score(request.score, limits)
    except RequestError as error:  # Score's decoders name fields from a ScoreRequest's root
        raise type(error)(f"score.{error.field}", error.problem) from None
    forest = score.forest
    if "token_ids" not in forest.tokens:
        holding = np.flatnonzero(forest.num_tokens)
        which = (f"node {holding[0]} has {forest.num_tokens[holding[0]]} tokens and no ids" if len(holding)
                 else "the forest has no tokens")
        raise InvalidArgument("score.forest.token_ids", f"Pack needs the id of every token; {which}")
    options = _decode_options(request.options, limits)
    _check_microbatches(forest, options, limits)
    return PackInputs(score, options)


def _decode_options(options: ppb.PackOptions, limits: Limits) -> PackOptions:
    mode = enum(_MODES, options.loss_agg_mode, "options.loss_agg_mode", ppb.LossAggMode)
    align = optional(options, "align", 1)
    if align < 1:
        raise InvalidArgument("options.align", f"must be >= 1, got {align}")
    _wire.check_size(align, "options.align", limits.max_tokens, "tokens")
    microbatch_tokens = optional(options, "microbatch_tokens", None)
    if microbatch_tokens is not None and microbatch_tokens < align:
        raise InvalidArgument("options.microbatch_tokens",
                              f"must be >= align ({align}) to hold a token, got {microbatch_tokens}")
    max_response_length = optional(options, "max_response_length", None)
    if max_response_length is not None:
        if mode is not LossAggMode.SEQ_MEAN_TOKEN_SUM_NORM:
            raise InvalidArgument("options.max_response_length", "is only read by seq-mean-token-sum-norm")
        if not 1 <= max_response_length <= limits.max_tokens:
            raise InvalidArgument("options.max_response_length",
                                  f"must be in [1, {limits.max_tokens}], got {max_response_length}")
    return PackOptions(mode, max_response_length, microbatch_tokens, align)


def _check_microbatches(forest: ForestArrays, options: PackOptions, limits: Limits) -> None:
    """Every node and every trajectory fit one microbatch; the copies of split trees fit the token limit."""
    room = microbatch_capacity(options)
    if room is None:
        return
    budget = f"{options.microbatch_tokens} tokens" + (
        f" ({room} after aligning to {options.align})" if room != options.microbatch_tokens else "")
    tokens = forest.num_tokens
    if len(tokens) and tokens.max() > room:
        node = int(np.argmax(tokens))
        raise InvalidArgument("options.microbatch_tokens", f"{budget} cannot hold node {node} of {tokens[node]} tokens")
    lengths = trajectory_tokens(forest)
    if len(lengths) and lengths.max() > room:
        leaf = int(forest.leaves[np.argmax(lengths)])
        raise InvalidArgument("options.microbatch_tokens",
                              f"{budget} cannot hold the trajectory of leaf {leaf} ({lengths.max()} tokens)")
    _wire.check_size(copied_tokens(forest, room) + int(tokens.sum()), "options.microbatch_tokens", limits.max_tokens,
                     "tokens in the microbatches, with the copies of split trees,")


def encode_pack(packed: tuple[Weights, Layout]) -> ppb.PackResponse:
    """The response, written in place: the layout's segments and the per-node weights."""
    weights, layout = packed
    response = ppb.PackResponse()
    for name in _LAYOUT_FIELDS:
        _wire.encode(getattr(layout, name), np.int64, into=getattr(response.layout, name))
    _wire.encode(layout.owned, np.bool_, into=response.layout.owned)
    for name in _WEIGHT_FIELDS:
        if getattr(weights, name) is not None:
            _wire.encode(getattr(weights, name), np.float64, into=getattr(response, name))
    return response
