"""TokenStats: request builders and results (ALGORITHMS.md section 4), and Score's trace confidence (section 5).

Inputs may be numpy arrays or torch tensors; torch is never imported here: a tensor is recognised by its
`detach` method and read through the torch module that made it. bfloat16 (a torch tensor, or a numpy array of
`ml_dtypes.bfloat16`) travels as bfloat16, never widened.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from treecredit import _wire
from treecredit.v1 import forest_pb2 as fpb
from treecredit.v1 import tokens_pb2 as pb

STREAM_BYTES = 64 << 20  # logits larger than this go through TokenStatsStream
CHUNK_BYTES = 16 << 20   # the chunk size of an automatic stream

_FLOAT_WIRE = {np.dtype("float32"): fpb.DATA_TYPE_FLOAT32, np.dtype("float16"): fpb.DATA_TYPE_FLOAT16}


@dataclass(frozen=True)
class TokenStatsResult:
    """float32 `[T]` each. From logits: logprob, entropy, confidence, logsumexp (of logits / temperature);
    from top-k log-probs: confidence and entropy_topk (the others None)."""

    confidence: np.ndarray
    logprob: np.ndarray | None = None
    entropy: np.ndarray | None = None
    logsumexp: np.ndarray | None = None
    entropy_topk: np.ndarray | None = None

    @classmethod
    def from_proto(cls, response: pb.TokenStatsResponse) -> TokenStatsResult:
        return cls(**{f.name: _wire.decode(getattr(response, f.name), f.name, dtypes=_wire.FLOAT, ndim=1)
                      for f in fields(cls) if response.HasField(f.name)})


class TraceConfidence(NamedTuple):
    """Score's trace confidence per trajectory, leaves ascending, `[P]` each, over tokens with loss mask 1;
    the metrics are NaN where num_tokens is 0."""

    leaf: np.ndarray        # int64
    lowest: np.ndarray      # float64
    bottom10: np.ndarray    # float64
    tail: np.ndarray        # float64
    mean: np.ndarray        # float64
    num_tokens: np.ndarray  # int64

    @classmethod
    def from_proto(cls, message: pb.TraceConfidence) -> TraceConfidence:
        dtypes = (*_wire.INTEGER, *_wire.FLOAT)
        return cls(*(_wire.decode(getattr(message, name), name, dtypes=dtypes, ndim=1) for name in cls._fields))


def wire_floats(array) -> tuple[np.ndarray, int]:
    """`(array, wire dtype)` of floats given as numpy or torch, without a copy where possible: float32 and
    float16 as they are, bfloat16 as its uint16 words, anything else cast to float32."""
    if hasattr(array, "detach"):  # a torch tensor
        torch = sys.modules[type(array).__module__.split(".")[0]]
        array = array.detach().cpu().contiguous()
        if array.dtype == torch.bfloat16:
            return array.view(torch.int16).numpy().view(np.uint16), fpb.DATA_TYPE_BFLOAT16
    array = np.asarray(array)
    if array.dtype.name == "bfloat16":  # ml_dtypes
        return array.view(np.uint16), fpb.DATA_TYPE_BFLOAT16
    if array.dtype not in _FLOAT_WIRE:
        array = array.astype(np.float32)
    return array, _FLOAT_WIRE[array.dtype]


def encode_floats(words: np.ndarray, wire_dtype: int, into: fpb.Tensor) -> None:
    if wire_dtype == fpb.DATA_TYPE_BFLOAT16:
        _wire.encode_bfloat16(words, into=into)
    else:
        _wire.encode(words, into=into)


def _integers(ids) -> np.ndarray:
    ids = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids)
    return ids if ids.dtype in (np.int32, np.int64) else ids.astype(np.int64)


def token_stats_call(logits=None, ids=None, *, topk_logprobs=None, k: int = 20, temperature: float = 1.0,
                     chunk_rows: int | None = None, shared_memory=None) -> tuple[str, object]:
    """`(method, request)`: the TokenStats request, or TokenStatsStream's chunks when the logits exceed
    STREAM_BYTES or `chunk_rows` is given."""
    given = [name for name, value in (("logits", logits), ("topk_logprobs", topk_logprobs),
                                      ("shared_memory", shared_memory)) if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of logits, topk_logprobs or shared_memory, got {given or 'none'}")
    if topk_logprobs is not None:
        request = pb.TokenStatsRequest()
        encode_floats(*wire_floats(topk_logprobs), request.topk_logprobs)
        return "TokenStats", request
    if ids is None:
        raise ValueError("ids (the sampled tokens) are required with logits")
    if shared_memory is not None:
        request = pb.TokenStatsRequest(shared_logits=shared_memory.to_proto(), k=k, temperature=temperature)
        _wire.encode(_integers(ids), into=request.ids)
        return "TokenStats", request
    words, wire_dtype = wire_floats(logits)
    if chunk_rows is None and words.nbytes <= STREAM_BYTES:
        request = pb.TokenStatsRequest(k=k, temperature=temperature)
        encode_floats(words, wire_dtype, request.logits)
        _wire.encode(_integers(ids), into=request.ids)
        return "TokenStats", request
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_BYTES // max(1, words.nbytes // max(1, len(words))))
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return "TokenStatsStream", _chunks(words, wire_dtype, _integers(ids), chunk_rows, k, temperature)


def _chunks(words: np.ndarray, wire_dtype: int, ids: np.ndarray, rows: int, k: int,
            temperature: float) -> Iterator[pb.TokenStatsChunk]:
    for start in range(0, max(len(words), 1), rows):
        chunk = pb.TokenStatsChunk(k=k, temperature=temperature) if start == 0 else pb.TokenStatsChunk()
        encode_floats(words[start:start + rows], wire_dtype, chunk.logits)
        _wire.encode(ids[start:start + rows], into=chunk.ids)
        yield chunk
