"""numpy arrays <-> `treecredit.v1.Tensor`: little-endian row-major bytes, decoded without copies."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import ClassVar

import numpy as np

from treecredit._request_errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import forest_pb2 as pb

# bfloat16 has no numpy dtype: it travels as raw 2-byte words and is decoded to float32.
_NUMPY_OF = {
    pb.DATA_TYPE_BOOL: np.dtype("?"),
    pb.DATA_TYPE_UINT8: np.dtype("u1"),
    pb.DATA_TYPE_INT32: np.dtype("<i4"),
    pb.DATA_TYPE_INT64: np.dtype("<i8"),
    pb.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    pb.DATA_TYPE_BFLOAT16: np.dtype("<u2"),
    pb.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    pb.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}
_WIRE_OF = {dt.newbyteorder("<"): code for code, dt in _NUMPY_OF.items() if code != pb.DATA_TYPE_BFLOAT16}

INTEGER = (pb.DATA_TYPE_INT32, pb.DATA_TYPE_INT64)
FLOAT = (pb.DATA_TYPE_FLOAT32, pb.DATA_TYPE_FLOAT64)
LOW_FLOAT = (pb.DATA_TYPE_FLOAT16, pb.DATA_TYPE_BFLOAT16, *FLOAT)
MASK = (pb.DATA_TYPE_BOOL, pb.DATA_TYPE_UINT8)


def encode(array, dtype: np.dtype | str | None = None, *, into: pb.Tensor | None = None) -> pb.Tensor:
    """A Tensor holding `array` (cast to `dtype` if given) as little-endian row-major bytes.

    With `into`, fill that message in place: nested protobuf constructors copy their arguments, and
    for large arrays the copies cost more than the encoding itself.
    """
    array = np.asarray(array, dtype=dtype)
    wire_dtype = array.dtype.newbyteorder("<")
    if wire_dtype not in _WIRE_OF:
        raise TypeError(f"no wire type for numpy dtype {array.dtype}")
    tensor = pb.Tensor() if into is None else into
    tensor.dtype = _WIRE_OF[wire_dtype]
    tensor.shape[:] = array.shape
    tensor.data = np.ascontiguousarray(array, dtype=wire_dtype).tobytes()
    return tensor


def encode_bfloat16(words: np.ndarray, *, into: pb.Tensor | None = None) -> pb.Tensor:
    """A bfloat16 Tensor from the raw uint16 words of bfloat16 values (numpy has no bfloat16 dtype)."""
    words = np.asarray(words)
    if words.dtype.itemsize != 2 or words.dtype.kind not in "ui":
        raise TypeError(f"bfloat16 words must be 16-bit integers, got {words.dtype}")
    tensor = pb.Tensor() if into is None else into
    tensor.dtype = pb.DATA_TYPE_BFLOAT16
    tensor.shape[:] = words.shape
    tensor.data = np.ascontiguousarray(words, dtype=words.dtype.newbyteorder("<")).tobytes()
    return tensor


def decode(
    tensor: pb.Tensor,
    field: str,
    *,
    dtypes: Collection[int],
    ndim: int,
    max_elements: int | None = None,
) -> np.ndarray:
    """The array a Tensor holds, read-only and without a copy (bfloat16 is widened to float32).

    Checks, before anything is allocated: the dtype is one of `dtypes`, the shape has `ndim`
    non-negative dimensions, `max_elements` bounds every dimension and their product (a zero-sized
    dimension does not exempt the others), and the bytes match dtype and shape.
    """
    array = decode_words(tensor, field, dtypes=dtypes, ndim=ndim, max_elements=max_elements)
    if tensor.dtype == pb.DATA_TYPE_BFLOAT16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def decode_words(
    tensor: pb.Tensor,
    field: str,
    *,
    dtypes: Collection[int],
    ndim: int,
    max_elements: int | None = None,
) -> np.ndarray:
    """As `decode`, but bfloat16 stays as its raw uint16 words (for callers that view them as bfloat16)."""
    if tensor.dtype not in _NUMPY_OF:
        raise InvalidArgument(f"{field}.dtype", f"unknown data type {tensor.dtype}")
    if tensor.dtype not in dtypes:
        allowed = ", ".join(pb.DataType.Name(d) for d in dtypes)
        raise InvalidArgument(f"{field}.dtype", f"{pb.DataType.Name(tensor.dtype)} is not one of {allowed}")
    shape = tuple(tensor.shape)
    if len(shape) != ndim:
        raise InvalidArgument(f"{field}.shape", f"expected {ndim} dimensions, got {list(shape)}")
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"{field}.shape", f"negative dimension in {list(shape)}")
    if math.prod(max(d, 1) for d in shape) * _NUMPY_OF[tensor.dtype].itemsize >= 1 << 63:
        raise InvalidArgument(f"{field}.shape", f"{list(shape)} is too large to address, even when empty")
    elements = math.prod(shape)  # Python ints: cannot wrap
    if max_elements is not None and elements > max_elements:
        raise ResourceExhausted(f"{field}.shape", f"{elements} elements exceed the limit of {max_elements}")
    if max_elements is not None and max(shape, default=0) > max_elements:
        raise ResourceExhausted(f"{field}.shape", f"{list(shape)} has a dimension over the limit of {max_elements} "
                                                  "elements, though it holds none")
    itemsize = _NUMPY_OF[tensor.dtype].itemsize
    data = tensor.data  # each read of a bytes field copies it: read once
    if len(data) != elements * itemsize:
        raise InvalidArgument(
            f"{field}.data",
            f"{len(data)} bytes do not match shape {list(shape)} of "
            f"{pb.DataType.Name(tensor.dtype)} ({elements * itemsize} bytes)",
        )
    return np.frombuffer(data, dtype=_NUMPY_OF[tensor.dtype]).reshape(shape)



def decode_result(tensor: pb.Tensor, field: str, ndim: int = 1) -> np.ndarray:
    """An array of a response: any integer, float or mask dtype, `ndim` dimensions (the server chose the type)."""
    return decode(tensor, field, dtypes=(*INTEGER, *FLOAT, *MASK), ndim=ndim)


class Results:
    """A dataclass of response arrays, one per Tensor field of the same name; `NDIM` names those that are not 1-d."""

    NDIM: ClassVar[dict[str, int]] = {}

    @classmethod
    def from_proto(cls, message):
        return cls(**{f: decode_result(getattr(message, f), f, cls.NDIM.get(f, 1)) for f in cls.__dataclass_fields__})


# -- sizes a request asks for ------------------------------------------------------------------------
# Every count, sum of counts and product of counts that a request implies goes through these before the
# server sums, multiplies or allocates anything with it: each entry is checked against the limit first,
# then the total is taken in arithmetic that cannot wrap.

def check_size(value: int, field: str, limit: int, unit: str) -> int:
    """`value` (a Python int: a count, or a product of counts taken in Python ints), checked to lie in
    [0, limit]: InvalidArgument when negative, ResourceExhausted when over."""
    value = int(value)
    if value < 0:
        raise InvalidArgument(field, f"is negative ({value})")
    if value > limit:
        raise ResourceExhausted(field, f"{value} {unit} exceed the limit of {limit}")
    return value


def check_sizes(counts: np.ndarray, field: str, limit: int, unit: str) -> int:
    """The exact total of the integer counts `[n]`: each entry checked to lie in [0, limit] (the error names
    `field[i]`), then their sum checked against `limit` (the error names `field`)."""
    counts = np.asarray(counts)
    negative = counts < 0
    if negative.any():
        index = int(np.argmax(negative))
        raise InvalidArgument(f"{field}[{index}]", f"is negative ({counts[index]})")
    over = counts > limit
    if over.any():
        index = int(np.argmax(over))
        raise ResourceExhausted(f"{field}[{index}]", f"{counts[index]} {unit} exceed the limit of {limit}")
    total = exact_sum(counts)
    if total > limit:
        raise ResourceExhausted(field, f"{total} {unit} in all exceed the limit of {limit}")
    return total


def check_products(first: np.ndarray, second: np.ndarray, field: str, limit: int, unit: str) -> np.ndarray:
    """int64 `first * second`, entry by entry, for counts already checked to be non-negative: each product is
    checked against `limit` by division before it is formed (the error names `field[i]`), so none wraps."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    over = (first > 0) & (second > limit // np.maximum(first, 1))
    if over.any():
        index = int(np.argmax(over))
        raise ResourceExhausted(f"{field}[{index}]", f"{first[index]} x {second[index]} = "
                                                     f"{int(first[index]) * int(second[index])} {unit} exceed the "
                                                     f"limit of {limit}")
    return first * second


def exact_sum(counts: np.ndarray) -> int:
    """The sum of non-negative integers `[n]` as a Python int, whatever their size: the high and low 32 bits
    are summed apart (each partial sum fits in int64 for n < 2^31), then joined."""
    counts = np.asarray(counts).astype(np.int64, copy=False)
    return (int((counts >> 32).sum()) << 32) + int((counts & 0xFFFFFFFF).sum())
