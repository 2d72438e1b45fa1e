"""Extreme values in every field of a request, walked from its descriptor: what the sweep test and bench/fuzz.py send.

`substitutions(request)` yields `(path, changed request)` for every field reachable from the request's type, set or
not: each scalar (and each entry of a repeated one, alone and all at once) set to int64 min/max, 2^62, 2^31, -1, 0,
NaN, +-inf or empty, as its type allows; each `Tensor` with its dtype, shape and bytes set to those, its entries set
to them (the first alone, and every one at once), a huge shape over no data, and emptied. A field added to the API
is swept without a change here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from treecredit import _wire
from treecredit.v1 import forest_pb2

INT64 = (-(2**63), 2**63 - 1, 2**62, 2**31, -1, 0)
INT32 = (-(2**31), 2**31 - 1, -1, 0)
FLOATS = (math.nan, math.inf, -math.inf, 0.0, -1.0, float(2**62))
HUGE_SHAPES = (2**62, 2**31)
_TENSOR = forest_pb2.Tensor.DESCRIPTOR
_INT32_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32,
                FieldDescriptor.TYPE_ENUM)
_UNSIGNED = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_UINT64,
             FieldDescriptor.TYPE_FIXED64)


def scalar_values(field: FieldDescriptor) -> tuple:
    """The extremes a scalar field of this type can hold."""
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return FLOATS
    if kind == FieldDescriptor.TYPE_BOOL:
        return (False, True)
    if kind == FieldDescriptor.TYPE_STRING:
        return ("", "\u00e9" * 64)
    if kind == FieldDescriptor.TYPE_BYTES:
        return (b"",)
    if kind in _INT32_TYPES:
        return INT32
    if kind in _UNSIGNED:
        return (0, 2**31, 2**32 - 1) if kind in _UNSIGNED[:2] else (0, 2**62, 2**63, 2**64 - 1)
    return INT64


def entry_values(dtype: np.dtype) -> list:
    """The extremes an array of `dtype` can hold, cast to it."""
    if dtype.kind == "f":
        values = FLOATS
    elif dtype.kind == "b":
        values = (False, True)
    else:
        info = np.iinfo(dtype)
        values = sorted({v for v in (*INT64, info.min, info.max) if info.min <= v <= info.max})
    with np.errstate(all="ignore"):
        return [np.array(v).astype(dtype) for v in values]


def substitutions(request) -> Iterator[tuple[str, str, object]]:
    """`(path, what, a copy of request with the field at path changed as `what` says)`, for every field reachable
    from the request's type: fields unset in `request` are swept from their defaults."""
    for steps, name, what, change in _changes(request, ()):
        changed = type(request)()
        changed.CopyFrom(request)
        change(_walk(changed, steps))
        path = ".".join(step + ("" if index is None else f"[{index}]") for step, index in steps)
        yield ".".join(part for part in (path, name) if part), what, changed


def _walk(message, steps):
    """The sub-message `steps` ((field name, element index or None), ...) lead to, made present on the way."""
    for name, index in steps:
        current = getattr(message, name)
        if index is None:
            current.SetInParent()
            message = current
        else:
            while len(current) <= index:
                current.add()
            message = current[index]
    return message


def _changes(message, steps: tuple, depth: int = 0):
    """`(steps, name, what, change)`: `change(target)` alters, in place, the Tensor that `steps` lead to (name
    None), or the scalar field `name` of the message they lead to."""
    for field in message.DESCRIPTOR.fields:
        here = (*steps, (field.name, 0 if field.is_repeated else None))
        if field.message_type is None:
            for what, change in _scalar_changes(field):
                yield steps, field.name, what, change
            continue
        current = getattr(message, field.name)
        if field.is_repeated:  # the first element, or a default one (the request itself is left as it is)
            element = current[0] if len(current) else message_class(field.message_type)()
        else:
            element = current
        if field.message_type is _TENSOR:
            for what, change in _tensor_changes(element):
                yield here, None, what, change
        elif depth < 4:
            yield from _changes(element, here, depth + 1)


def _scalar_changes(field: FieldDescriptor):
    """`(what, change)` for a scalar field: each extreme of its type; a repeated one emptied, or each extreme in
    its first entry alone and in every entry at once."""
    name = field.name
    for value in scalar_values(field):
        if not field.is_repeated:
            yield f"= {value!r}", lambda m, v=value: setattr(m, name, v)
            continue
        yield f"[0] = {value!r}", lambda m, v=value: _set_first(getattr(m, name), v)
        yield f"[:] = {value!r}", lambda m, v=value: getattr(m, name).__setitem__(
            slice(None), [v] * max(len(getattr(m, name)), 1))
    if field.is_repeated:
        yield "empty", lambda m: m.ClearField(name)


def _set_first(values, value) -> None:
    if len(values):
        values[0] = value
    else:
        values.append(value)


def _tensor_changes(tensor: forest_pb2.Tensor):
    """`(what, change)` for a Tensor (set or not): its dtype, shape and bytes alone; a huge shape over no data; no
    rows; each extreme of its dtype in its first entry and in every entry (four int64 or float64 entries for a
    tensor that holds none)."""
    for code in INT32:
        yield f"dtype = {code}", lambda t, c=code: setattr(t, "dtype", c)
    yield "shape = []", lambda t: t.ClearField("shape")
    for value in INT64:
        yield f"shape[:] = {value}", lambda t, v=value: t.shape.__setitem__(slice(None), [v] * max(len(t.shape), 1))
        yield f"shape[0] = {value}", lambda t, v=value: _set_first(t.shape, v)
    yield "data = b''", lambda t: setattr(t, "data", b"")
    dtype = _wire._NUMPY_OF.get(tensor.dtype)
    shape = list(tensor.shape)
    consistent = (dtype is not None and bool(shape) and min(shape) >= 0
                  and len(tensor.data) == math.prod(shape) * dtype.itemsize)
    ndim = len(shape) if consistent else 1
    for huge in HUGE_SHAPES:  # a huge dimension over no data, the others 0
        for dim in range(max(ndim, 2)):
            claim = [huge if d == dim else 0 for d in range(max(ndim, dim + 1))]
            yield f"shape = {claim}, no data", lambda t, c=claim: _replace(t, None, c)
    if consistent and tensor.data:
        arrays = [np.frombuffer(tensor.data, dtype).reshape(shape)]
    else:
        arrays = [np.zeros(4, "<i8"), np.zeros(4, "<f8")]
    for array in arrays:
        yield f"{array.dtype} with no rows", lambda t, a=array[:0]: _replace(t, a)
        if array.dtype == np.dtype("<i8") and array.size >= 4:  # four 2^62, the rest 0: int64 sums give 0
            wraps = np.zeros_like(array)
            wraps.reshape(-1)[:4] = 2**62
            yield "int64[:4] = 2^62, the rest 0", lambda t, a=wraps: _replace(t, a)
        for value in entry_values(array.dtype):
            for first in (True, False):
                changed = array.copy()
                changed.reshape(-1)[: 1 if first else None] = value
                yield (f"{array.dtype}[{'0' if first else ':'}] = {value!r}",
                       lambda t, a=changed: _replace(t, a))


def _replace(tensor: forest_pb2.Tensor, array: np.ndarray | None, shape: list[int] | None = None) -> None:
    """`tensor` holding `array` (its dtype kept when it is bfloat16 words), or claiming `shape` over no data."""
    if array is None:
        tensor.shape[:] = shape
        tensor.data = b""
        if tensor.dtype not in _wire._NUMPY_OF:
            tensor.dtype = forest_pb2.DATA_TYPE_INT64
        return
    if tensor.dtype == forest_pb2.DATA_TYPE_BFLOAT16 and array.dtype == np.dtype("<u2"):
        tensor.shape[:] = array.shape
        tensor.data = array.tobytes()
        return
    _wire.encode(array, into=tensor)


_INDEX = re.compile(r"\[\d+\]")


def blames(details: str, path: str, descriptor: Descriptor, *, later_requests: bool = False) -> bool:
    """Whether a refusal's `details` (`field.path: problem`) blames the change at `path` of a request of type
    `descriptor`: the blamed path is a field of the request, and it is the changed field, one on the way to it,
    below it or beside it (a sibling checked against it, or required with it), or the problem names the changed
    field (`ell: has 6 entries, but rows x cols sum to 0`). Indices, and a stream's leading `requests`/`chunks`
    element, are ignored. With `later_requests` (the change was in a stream message with others after it), a
    field of a later message may be blamed: a trajectory finished early, then sent tokens."""
    blamed, _, problem = details.partition(": ")
    blamed, wanted = _normal(blamed), _normal(path)
    if not _resolves(blamed, descriptor):
        return False
    if later_requests:
        return True
    enclosing = wanted.rpartition(".")[0]
    if not enclosing or blamed == enclosing or blamed.startswith(enclosing + ".") or \
            wanted.startswith(blamed + "."):
        return True
    return re.search(rf"\b{re.escape(wanted.rsplit('.', 1)[-1])}\b", problem) is not None


def _resolves(path: str, descriptor: Descriptor) -> bool:
    """Whether `path` (no indices) names a field reachable from `descriptor`; `request`/`response` name the call."""
    if path in ("request", "response"):
        return True
    for name in path.split("."):
        field = descriptor.fields_by_name.get(name) if descriptor is not None else None
        if field is None:
            return False
        descriptor = field.message_type
    return True


def _normal(path: str) -> str:
    path = _INDEX.sub("", path)
    for stream in ("requests.", "chunks."):
        path = path.removeprefix(stream)
    return path


def message_class(descriptor: Descriptor):
    return message_factory.GetMessageClass(descriptor)
