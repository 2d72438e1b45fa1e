"""TokenStats and shared-memory messages (tokens.proto) <-> `compute.tokens`. Decoding validates; no math here,
and no reading: a shared-memory region is read by the computation that uses it.

Logits are checked (dtype, shape, byte count against --max-logits-mb) before anything is allocated and are
never copied: inline bytes, streamed chunks and shared-memory regions are all viewed in place.
"""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import forest_pb2 as fpb
from treecredit.v1 import tokens_pb2 as pb
from treecredit_server.codec.fields import TOPK_PROBLEM, refuse_first, unusable_topk
from treecredit_server.codec.forest import MAX_TOPK
from treecredit_server.compute.tokens import DEFAULT_K, MAX_K, LogitsInput, SharedLogitsInput, Stats, TopkInput
from treecredit_server.config import MiB, Limits
from treecredit_server.shared_memory import Region

# Logit element types and the numpy dtype their bytes are viewed as (bfloat16: its raw words).
_LOGIT_DTYPES = {
    fpb.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    fpb.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    fpb.DATA_TYPE_BFLOAT16: np.dtype("<u2"),
}


def decode_token_stats(request: pb.TokenStatsRequest, limits: Limits) -> LogitsInput | SharedLogitsInput | TopkInput:
    """The computation a TokenStats request asks for, every field checked (shared logits: all but the region's
    registration and bounds, which `SharedMemoryRegistry.read` checks as it maps them)."""
    source = request.WhichOneof("input")
    if source is None:
        raise InvalidArgument("input", "one of logits, shared_logits or topk_logprobs is required")
    if source == "topk_logprobs":
        for field in ("ids", "k", "temperature"):
            if request.HasField(field):
                raise InvalidArgument(field, "applies to logits only, not to topk_logprobs")
        return TopkInput(_topk(request.topk_logprobs, limits))
    k, temperature = _options(request, "")
    budget = limits.max_logits_mb * MiB
    if source == "logits":
        logits = _logits(request.logits, "logits", budget, limits.max_tokens)
        return LogitsInput(logits, request.logits.dtype == fpb.DATA_TYPE_BFLOAT16,
                           _ids(request, "ids", logits.shape), k, temperature)
    ref, field = request.shared_logits, "shared_logits"
    dtype, shape = _shared_layout(ref, field, budget, limits.max_tokens)
    return SharedLogitsInput(ref.region, ref.offset, dtype, shape, ref.dtype == fpb.DATA_TYPE_BFLOAT16,
                             _ids(request, "ids", shape), k, temperature, field)


class ChunkDecoder:
    """Validates the chunks of one TokenStatsStream in order: each is [R, V] rows with the same V and dtype as
    the first, k and temperature only on the first, and all of them within --max-logits-mb."""

    def __init__(self, limits: Limits):
        self._budget = limits.max_logits_mb * MiB
        self._rows_left = limits.max_tokens  # the response holds a row of statistics per row of logits
        self.count = 0
        self._first: tuple[int, int] | None = None  # (dtype, V)
        self._k, self._temperature = DEFAULT_K, 1.0

    def decode(self, chunk: pb.TokenStatsChunk) -> LogitsInput:
        name = f"chunks[{self.count}]"
        if self.count == 0:
            self._k, self._temperature = _options(chunk, name + ".")
        else:
            for field in ("k", "temperature"):
                if chunk.HasField(field):
                    raise InvalidArgument(f"{name}.{field}", "may be set on the first chunk only")
        if not chunk.HasField("logits"):
            raise InvalidArgument(f"{name}.logits", "is required")
        logits = _logits(chunk.logits, f"{name}.logits", self._budget, self._rows_left)
        layout = (chunk.logits.dtype, logits.shape[1])
        if self._first is None:
            self._first = layout
        elif layout[0] != self._first[0]:
            raise InvalidArgument(f"{name}.logits.dtype", f"{fpb.DataType.Name(layout[0])} differs from the first "
                                                          f"chunk's {fpb.DataType.Name(self._first[0])}")
        elif layout[1] != self._first[1]:
            raise InvalidArgument(f"{name}.logits.shape", f"V = {layout[1]} differs from the first chunk's "
                                                          f"V = {self._first[1]}")
        self._budget -= logits.nbytes
        self._rows_left -= len(logits)
        ids = _ids(chunk, f"{name}.ids", logits.shape)
        self.count += 1
        return LogitsInput(logits, layout[0] == fpb.DATA_TYPE_BFLOAT16, ids, self._k, self._temperature)

    def finish(self) -> None:
        if self.count == 0:
            raise InvalidArgument("chunks", "the stream carried no chunk")


def encode_stats(stats: Stats) -> pb.TokenStatsResponse:
    response = pb.TokenStatsResponse()
    for name in Stats.__dataclass_fields__:
        value = getattr(stats, name)
        if value is not None:
            _wire.encode(value, np.float32, into=getattr(response, name))
    return response


def encode_regions(regions: list[Region]) -> pb.SharedMemoryStatusResponse:
    return pb.SharedMemoryStatusResponse(regions=[
        pb.SharedMemoryRegion(name=r.name, key=r.key, offset=r.offset, byte_size=r.byte_size) for r in regions
    ])


def _options(message, prefix: str) -> tuple[int, float]:
    k = message.k if message.HasField("k") else DEFAULT_K
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"{prefix}k", f"must be in [1, {MAX_K}], got {k}")
    temperature = message.temperature if message.HasField("temperature") else 1.0
    if not (np.isfinite(temperature) and temperature > 0):
        raise InvalidArgument(f"{prefix}temperature", f"must be finite and > 0, got {temperature}")
    return k, temperature


def _logits(tensor: fpb.Tensor, field: str, budget: int, max_rows: int) -> np.ndarray:
    """The [T, V] logits a Tensor holds, viewed in place (bfloat16 as its uint16 words), at most `budget` bytes
    and `max_rows` rows."""
    logits = _wire.decode_words(tensor, field, dtypes=tuple(_LOGIT_DTYPES), ndim=2)
    _check_layout(f"{field}.shape", logits.shape, logits.itemsize, budget, max_rows)
    return logits


def _check_layout(field: str, shape: tuple[int, int], itemsize: int, budget: int, max_rows: int) -> None:
    """[T, V] logits of `itemsize` bytes: within `budget` bytes, T within `max_rows` (a row of statistics each), and
    one row of V within the budget even when T is 0; T > 0 needs V > 0."""
    rows, vocab = shape
    if rows * vocab * itemsize > budget:  # Python ints: cannot wrap
        raise ResourceExhausted(field, f"{rows * vocab * itemsize} bytes of logits exceed the {budget} bytes left of "
                                       "the server's --max-logits-mb")
    _wire.check_size(rows, field, max_rows, "rows")
    _wire.check_size(vocab, field, budget // itemsize, "vocabulary entries")
    if rows and not vocab:
        raise InvalidArgument(field, f"{list(shape)} has an empty vocabulary")


def _shared_layout(ref: pb.SharedMemoryTensor, field: str, budget: int,
                   max_rows: int) -> tuple[np.dtype, tuple[int, int]]:
    if ref.dtype not in _LOGIT_DTYPES:
        allowed = ", ".join(fpb.DataType.Name(d) for d in _LOGIT_DTYPES)
        given = fpb.DataType.Name(ref.dtype) if ref.dtype in fpb.DataType.values() else f"data type {ref.dtype}"
        raise InvalidArgument(f"{field}.dtype", f"{given} is not one of {allowed}")
    shape = tuple(ref.shape)
    if len(shape) != 2 or min(shape) < 0:
        raise InvalidArgument(f"{field}.shape", f"must be [T, V] with T, V >= 0, got {list(shape)}")
    dtype = _LOGIT_DTYPES[ref.dtype]
    _check_layout(f"{field}.shape", shape, dtype.itemsize, budget, max_rows)
    if ref.offset < 0:
        raise InvalidArgument(f"{field}.offset", f"must be >= 0, got {ref.offset}")
    return dtype, shape


def _ids(message, field: str, shape: tuple[int, int]) -> np.ndarray:
    """The sampled token ids `[T]` of logits of `shape` [T, V], each in [0, V)."""
    if not message.HasField("ids"):
        raise InvalidArgument(field, "is required with logits")
    rows, vocab = shape
    ids = _wire.decode(message.ids, field, dtypes=_wire.INTEGER, ndim=1)
    if len(ids) != rows:
        raise InvalidArgument(f"{field}.shape", f"has {len(ids)} ids for {rows} rows of logits")
    bad = (ids < 0) | (ids >= vocab)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidArgument(f"{field}[{index}]", f"token id {ids[index]} is outside the vocabulary [0, {vocab})")
    return ids


def _topk(tensor: fpb.Tensor, limits: Limits) -> np.ndarray:
    topk = _wire.decode(tensor, "topk_logprobs", dtypes=_wire.LOW_FLOAT, ndim=2,
                        max_elements=limits.max_tokens * MAX_TOPK)
    if topk.shape[1] > MAX_TOPK:
        raise InvalidArgument("topk_logprobs.shape", f"k = {topk.shape[1]} exceeds {MAX_TOPK}")
    _wire.check_size(len(topk), "topk_logprobs.shape", limits.max_tokens, "rows")  # even when k is 0
    refuse_first("topk_logprobs", unusable_topk(topk), TOPK_PROBLEM)
    return topk
