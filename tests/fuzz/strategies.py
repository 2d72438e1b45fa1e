"""Hypothesis strategies for malformed requests: tensors, forests, any message of the API, Watch event streams.

Everything here is built from the proto descriptors, so a field added to the API is fuzzed without a change here.
Most values are near-valid (small counts, short arrays) so that requests get past the first checks and reach the
deeper ones; the rest are extremes (negative and huge dimensions, NaN/inf, unknown enum values).
"""

from __future__ import annotations

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

from treecredit import _wire
from treecredit.v1 import confidence_pb2, forest_pb2

HUGE_INTS = (2**31 - 1, 2**31, 2**32 + 3, 2**40, 2**62, 2**63 - 1, -(2**63), -(2**31), -1)
# The numpy types the wire carries (bfloat16 as its 16-bit words), and any other code.
WIRE_DTYPES = {code: dtype for code, dtype in _wire._NUMPY_OF.items()}

small_ints = st.integers(-3, 12)
any_int64 = st.one_of(small_ints, st.sampled_from(HUGE_INTS), st.integers(-(2**63), 2**63 - 1))
any_float = st.one_of(st.floats(-4, 4), st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1e308,
                                                          -1e-300, 100.0, 100.0001]), st.floats())
dtype_codes = st.one_of(st.sampled_from(sorted(forest_pb2.DataType.values())), st.integers(-(2**31), 2**31 - 1))
dimensions = st.one_of(st.integers(-2, 6), st.sampled_from(HUGE_INTS))


@st.composite
def raw_tensors(draw) -> forest_pb2.Tensor:
    """Any dtype code, any shape, a few bytes: mostly inconsistent."""
    return forest_pb2.Tensor(dtype=draw(dtype_codes), shape=draw(st.lists(dimensions, max_size=4)),
                             data=draw(st.binary(max_size=80)))


@st.composite
def array_tensors(draw, length: int | None = None, ndim: int | None = None) -> forest_pb2.Tensor:
    """A consistent Tensor (dtype, shape and bytes agree) of a random wire type and small values."""
    code = draw(st.sampled_from(sorted(WIRE_DTYPES)))
    dtype = WIRE_DTYPES[code]
    ndim = draw(st.integers(1, 2)) if ndim is None else ndim
    rows = draw(st.integers(0, 8)) if length is None else length
    shape = (rows,) if ndim == 1 else (rows, draw(st.integers(0, 3)))
    count = int(np.prod(shape))
    if dtype.kind == "f":
        values = draw(st.lists(any_float, min_size=count, max_size=count))
    else:
        values = draw(st.lists(st.integers(-2, 9), min_size=count, max_size=count))
    with np.errstate(all="ignore"):
        array = np.array(values, dtype=np.float64).astype(dtype).reshape(shape)
    return forest_pb2.Tensor(dtype=code, shape=shape, data=array.tobytes())


def tensors(length: int | None = None, ndim: int | None = None):
    return st.one_of(array_tensors(length, ndim), array_tensors(length, ndim), raw_tensors())


@st.composite
def forests(draw) -> forest_pb2.Forest:
    """A valid random forest with up to two fields broken: entries changed, lengths off, fields dropped or
    replaced by malformed tensors."""
    n = draw(st.integers(0, 7))
    parent = np.array([draw(st.integers(-1, i - 1)) for i in range(n)], np.int64)
    is_leaf = np.ones(n, bool)
    is_leaf[parent[parent >= 0]] = False
    group = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    reward = np.where(is_leaf, np.array(draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))), np.nan)
    num_tokens = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    total = int(num_tokens.sum())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    k = draw(st.integers(1, 4))
    fields = {
        "parent": parent, "group": group, "reward": reward, "num_tokens": num_tokens,
        "token_ids": rng.integers(0, 50, total), "loss_mask": rng.random(total) < 0.8,
        "logprobs": -rng.exponential(1.0, total), "topk_logprobs": -np.sort(rng.exponential(1.0, (total, k)), axis=1),
        "confidence": rng.exponential(1.0, total),
    }
    present = {name: value for name, value in fields.items()
               if name in ("parent", "group", "reward", "num_tokens") or draw(st.booleans())}
    message = forest_pb2.Forest(**{name: _wire.encode(value) for name, value in present.items()})
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(sorted(fields)))
        how = draw(st.sampled_from(["entry", "length", "drop", "tensor", "dtype"]))
        values = np.array(fields[field], copy=True)
        if how == "entry" and len(values):
            index = draw(st.integers(0, len(values) - 1))
            values[index] = draw(any_float if values.dtype.kind == "f" else st.sampled_from([-2, -1, 0, n, 2**40]))
            getattr(message, field).CopyFrom(_wire.encode(values))
        elif how == "length":
            getattr(message, field).CopyFrom(_wire.encode(values[:max(len(values) - 1, 0)] if draw(st.booleans())
                                                          else np.concatenate([values, values[:1]])))
        elif how == "drop":
            message.ClearField(field)
        elif how == "tensor":
            getattr(message, field).CopyFrom(draw(tensors()))
        else:
            getattr(message, field).CopyFrom(_wire.encode(values.astype(draw(st.sampled_from(
                [np.int32, np.int64, np.float32, np.float64, np.uint8, np.bool_, np.float16])))))
    return message


def _scalar(field: FieldDescriptor):
    kind = field.type
    if kind == FieldDescriptor.TYPE_DOUBLE or kind == FieldDescriptor.TYPE_FLOAT:
        return any_float
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-1, 99))
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(small_ints, st.integers(-(2**31), 2**31 - 1))
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return any_int64


@st.composite
def messages(draw, message_class, depth: int = 0):
    """Any message of `message_class`: each field set or not, values near-valid or extreme; a `Tensor` is a
    random tensor, a `Forest` a broken forest."""
    if message_class is forest_pb2.Tensor:
        return draw(tensors())
    if message_class is forest_pb2.Forest:
        return draw(forests())
    message = message_class()
    for field in message_class.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.message_type is not None:
            if depth >= 3:
                continue
            sub = _message_class(field)
            if repeated:
                getattr(message, field.name).extend(draw(st.lists(messages(sub, depth + 1), max_size=3)))
            else:
                getattr(message, field.name).CopyFrom(draw(messages(sub, depth + 1)))
        elif repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=4)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


def _message_class(field: FieldDescriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(field.message_type)


# -- Watch event streams ------------------------------------------------------------------------------
trajectory_ids = st.one_of(st.integers(0, 4), st.sampled_from([-1, 2**62, -(2**63)]))


@st.composite
def watch_events(draw) -> list[confidence_pb2.WatchRequest]:
    """A stream of Watch requests: usually an open first, then starts (some forks, some from unknown parents or
    at bad offsets), token chunks (some with mismatched shapes, unknown or finished trajectories, NaN), finishes
    (some twice), a second open, or any random request."""
    pb = confidence_pb2
    requests = []
    if draw(st.integers(0, 9)):
        options = {"window": draw(st.one_of(st.integers(1, 4), any_int64)), "warmup": draw(st.integers(0, 3))}
        if draw(st.booleans()):
            options["threshold"] = draw(st.one_of(st.floats(0, 2), any_float))
        for name, values in (("keep_percent", any_float), ("consensus", any_float), ("budget", any_int64),
                             ("fork_history", st.one_of(st.integers(0, 4), any_int64))):
            if not draw(st.integers(0, 3)):
                options[name] = draw(values)
        requests.append(pb.WatchRequest(open=pb.WatchOpen(**options)))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["start", "start", "fork", "chunk", "chunk", "chunk", "finish", "open", "raw"]))
        if kind in ("start", "fork"):
            start = pb.TrajectoryStart(trajectory=draw(trajectory_ids))
            if kind == "fork":
                start.parent = draw(trajectory_ids)
                start.fork_offset = draw(st.one_of(st.integers(-1, 6), st.sampled_from(HUGE_INTS)))
            requests.append(pb.WatchRequest(starts=[start]))
        elif kind == "chunk":
            trajectory = draw(st.lists(trajectory_ids, max_size=3))
            counts = draw(st.lists(st.integers(-1, 4), min_size=len(trajectory), max_size=len(trajectory)))
            if not draw(st.integers(0, 5)):
                counts = counts[:-1] + [draw(st.integers(-1, 4))] * 2  # a length off
            total = max(sum(counts), 0) + draw(st.sampled_from([0, 0, 0, 1, -1]))
            chunk = pb.TokenChunk(trajectory=_wire.encode(np.array(trajectory, np.int64)),
                                  num_tokens=_wire.encode(np.array(counts, np.int64)))
            which = draw(st.sampled_from(["confidence", "topk_logprobs", "both", "raw"]))
            if which in ("confidence", "both"):
                chunk.confidence.CopyFrom(draw(tensors(length=max(total, 0), ndim=1)))
            if which in ("topk_logprobs", "both"):
                chunk.topk_logprobs.CopyFrom(draw(tensors(length=max(total, 0), ndim=2)))
            if which == "raw":
                chunk = draw(messages(pb.TokenChunk))
            requests.append(pb.WatchRequest(chunk=chunk))
        elif kind == "finish":
            finish = pb.TrajectoryFinish(trajectory=draw(trajectory_ids))
            if draw(st.booleans()):
                finish.answer = draw(st.sampled_from(["", "a", "b", "\u00e9"]))
            requests.append(pb.WatchRequest(finishes=[finish]))
        elif kind == "open":
            requests.append(pb.WatchRequest(open=draw(messages(pb.WatchOpen))))
        else:
            requests.append(draw(messages(pb.WatchRequest)))
    return requests
