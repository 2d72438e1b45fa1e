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
        how = draw(st.sampled_from(["entry", "length", "drop", "tensor", "dtype", "wrap"]))
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
        elif how == "wrap":  # counts of 2^62: four of them sum to 0 in int64, the token arrays empty to match
            message.num_tokens.CopyFrom(_wire.encode(np.where(np.arange(n) < 4, 2**62, 0)))
            for name in ("token_ids", "loss_mask", "logprobs", "topk_logprobs", "confidence"):
                if message.HasField(name):
                    getattr(message, name).CopyFrom(_wire.encode(np.asarray(fields[name])[:0]))
        elif how == "tensor":
            getattr(message, field).CopyFrom(draw(tensors()))
        else:
            cast = draw(st.sampled_from([np.int32, np.int64, np.float32, np.float64, np.uint8, np.bool_, np.float16]))
            with np.errstate(all="ignore"):  # NaN rewards cast to integers
                getattr(message, field).CopyFrom(_wire.encode(values.astype(cast)))
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
        repeated = field.is_repeated
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
trajectory_ids = st.one_of(st.integers(0, 4), st.integers(0, 4), st.sampled_from([-1, 2**62, -(2**63)]))


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
        kind = draw(st.sampled_from(["start"] * 3 + ["fork"] * 2 + ["chunk"] * 4 + ["finish"] * 2 + ["open", "raw"]))
        if kind in ("start", "fork"):
            start = pb.TrajectoryStart(trajectory=draw(trajectory_ids))
            if kind == "fork":
                start.parent = draw(trajectory_ids)
                start.fork_offset = draw(st.one_of(st.integers(-1, 6), st.sampled_from(HUGE_INTS)))
            requests.append(pb.WatchRequest(starts=[start]))
        elif kind == "chunk":
            trajectory = draw(st.lists(trajectory_ids, max_size=3))
            counts = draw(st.lists(st.integers(0, 4), min_size=len(trajectory), max_size=len(trajectory)))
            if not draw(st.integers(0, 7)):
                counts = counts[:-1] + [draw(st.integers(-1, 4))] * 2  # a length off, or negative
            elif not draw(st.integers(0, 7)):
                trajectory, counts = [0, 1, 2, 3], [2**62] * 4  # int64 sums wrap to 0: no tokens to match
            total = max(sum(counts) % 2**64 if 2**62 in counts else sum(counts), 0) + draw(
                st.sampled_from([0] * 8 + [1, -1]))
            chunk = pb.TokenChunk(trajectory=_wire.encode(np.array(trajectory, np.int64)),
                                  num_tokens=_wire.encode(np.array(counts, np.int64)))
            which = draw(st.sampled_from(["confidence"] * 4 + ["topk_logprobs", "both", "raw"]))
            if which in ("confidence", "both"):
                good = st.lists(st.floats(0, 3), min_size=max(total, 0), max_size=max(total, 0)).map(
                    lambda values: _wire.encode(np.array(values, np.float64)))
                chunk.confidence.CopyFrom(draw(st.one_of(good, good, tensors(length=max(total, 0), ndim=1))))
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


# -- valid requests, then mutated ---------------------------------------------------------------------
def valid_request(name: str, rng: np.random.Generator):
    """A request `name` would answer OK (TokenStatsStream: a list of chunks), from the SDK's own builders."""
    import treecredit
    from forests import random_forest
    from treecredit.client import pack_request, score_request
    from treecredit.confidence import filter_request, forks_request
    from treecredit.curriculum import curriculum_request
    from treecredit.tokens import token_stats_call
    from treecredit.v1 import tokens_pb2

    forest = random_forest(rng, groups=2, trees_per_group=2, max_depth=3, max_tokens=4, topk=3)
    if name == "Score":
        return score_request(forest, str(rng.choice(["grpo", "tree_grpo", "treerl", "value_diff"])),
                             window=int(rng.integers(1, 5)), tail=int(rng.integers(1, 5)))
    if name == "Pack":
        modes = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
        longest = int(forest.topology.path_sum(forest.num_tokens)[forest.leaves].max())
        return pack_request(forest, str(rng.choice(["grpo", "tree_grpo", "treerl", "value_diff"])),
                            loss_agg_mode=str(rng.choice(modes)), align=int(rng.integers(1, 4)),
                            microbatch_tokens=int(3 * max(longest, 1) + rng.integers(0, 8)))
    if name == "Filter":
        leaves = forest.leaves
        return filter_request(forest, window=int(rng.integers(1, 5)), zero_variance=bool(rng.integers(2)),
                              answers=[str(a) for a in rng.integers(0, 3, len(leaves))])
    if name == "SuggestForks":
        request = forks_request(forest, window=int(rng.integers(1, 5)), tail_guard=int(rng.integers(0, 3)),
                                ranking=str(rng.choice(["neg_logprob", "window_confidence"])))
        request.forest.logprobs.CopyFrom(_wire.encode(-rng.exponential(1.0, int(forest.num_tokens.sum()))))
        return request
    if name == "Reflect":
        return treecredit.Reflection([rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 4))))
                                      for _ in range(int(rng.integers(1, 3)))]).to_proto()
    if name == "Curriculum":
        histories = []
        for _ in range(int(rng.integers(1, 3))):
            history = treecredit.CurriculumHistory(int(rng.integers(1, 4)))
            for _ in range(int(rng.integers(0, 5))):
                history.record(int(rng.integers(0, history.num_steps)), float(rng.integers(0, 2)))
            histories.append(history)
        return curriculum_request(histories, window=int(rng.integers(1, 5)))
    if name in ("TokenStats", "TokenStatsStream"):
        rows, vocab = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        logits = rng.normal(size=(rows, vocab)).astype(np.float32)
        method, request = token_stats_call(logits, rng.integers(0, vocab, rows), k=int(rng.integers(1, vocab + 1)),
                                           chunk_rows=2 if name == "TokenStatsStream" else None)
        return list(request) if name == "TokenStatsStream" else request
    if name == "RegisterSharedMemory":
        return tokens_pb2.RegisterSharedMemoryRequest(name="r", key="treecredit_fuzz_absent", byte_size=64)
    return None  # the others have no structure worth keeping


@st.composite
def perturbed_tensors(draw, tensor: forest_pb2.Tensor) -> forest_pb2.Tensor:
    """`tensor` with one thing wrong: an entry extreme, one entry more or less, another dtype, a shape claim the
    bytes do not back, or replaced outright."""
    how = draw(st.sampled_from(["entry", "length", "dtype", "shape", "replace", "wrap"]))
    dtype = WIRE_DTYPES.get(tensor.dtype)
    shape = list(tensor.shape)
    if (how == "replace" or dtype is None or not shape or min(shape) < 0
            or len(tensor.data) != int(np.prod(shape, dtype=object)) * dtype.itemsize):
        return draw(tensors())  # nothing consistent to perturb
    array = np.frombuffer(tensor.data, dtype).reshape(shape)
    if how == "shape":
        return forest_pb2.Tensor(dtype=tensor.dtype, shape=draw(st.lists(dimensions, max_size=3)), data=tensor.data)
    if how == "dtype":
        code = draw(st.sampled_from(sorted(WIRE_DTYPES)))
        with np.errstate(all="ignore"):
            cast = array.astype(np.float64).astype(WIRE_DTYPES[code])
        return forest_pb2.Tensor(dtype=code, shape=cast.shape, data=cast.tobytes())
    array = np.array(array)
    if how == "wrap" and dtype.kind == "i" and dtype.itemsize == 8:  # every entry 2^62: four or more wrap int64 sums
        array[...] = 2**62
    elif how == "length" or not array.size:
        array = array[:-1] if draw(st.booleans()) and len(array) else np.concatenate([array, array[:1]])
    else:
        flat = array.reshape(-1)
        index = draw(st.integers(0, flat.size - 1))
        extreme = (any_float if dtype.kind == "f" else
                   st.sampled_from([-2, -1, 0, 1, 2**40, -(2**40), 2**62]) if dtype.itemsize >= 8 else
                   st.sampled_from([-2, -1, 0, 1, 2**30, -(2**30)]) if dtype.itemsize == 4 else st.integers(0, 255))
        with np.errstate(all="ignore"):
            flat[index] = np.array(draw(extreme)).astype(dtype) if dtype.kind != "b" else draw(st.booleans())
    return forest_pb2.Tensor(dtype=tensor.dtype, shape=array.shape, data=array.tobytes())


@st.composite
def mutated(draw, message):
    """`message` (a copy) with 0-3 fields anywhere in it changed: a tensor perturbed, a scalar extreme, a
    sub-message random or cleared."""
    message = type(message).FromString(message.SerializeToString())
    for _ in range(draw(st.integers(0, 3))):
        target = message
        while True:
            field = draw(st.sampled_from(list(target.DESCRIPTOR.fields)))
            current = getattr(target, field.name)
            if field.message_type is None:
                values = _scalar(field)
                if field.is_repeated:
                    current[:] = draw(st.lists(values, max_size=4))
                else:
                    setattr(target, field.name, draw(values))
                break
            if field.is_repeated:
                if len(current) and draw(st.booleans()):
                    target = current[draw(st.integers(0, len(current) - 1))]
                    continue
                current.add().CopyFrom(draw(messages(_message_class(field), 1)))
                break
            if field.message_type is forest_pb2.Tensor.DESCRIPTOR:
                if draw(st.integers(0, 5)):
                    current.CopyFrom(draw(perturbed_tensors(current)))
                else:
                    target.ClearField(field.name)
                break
            if target.HasField(field.name) and draw(st.integers(0, 3)):
                target = current
                continue
            current.CopyFrom(draw(messages(_message_class(field), 1)))
            break
    return message


@st.composite
def requests(draw, name: str, message_class):
    """Mostly a valid request with a few things wrong; sometimes any message at all."""
    base = valid_request(name, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    if base is None or not draw(st.integers(0, 4)):
        return draw(messages(message_class))
    return draw(mutated(base))
