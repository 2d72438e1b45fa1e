"""Coverage-guided fuzzing of the wire decoder with atheris (optional: `pip install atheris`).

    python tests/fuzz/wire_atheris.py -runs=100000        # or without -runs: until stopped

Each input is split into a decode call's arguments and the bytes of a `Tensor` message; the decoder must
return an array that matches the bytes, or raise `treecredit._request_errors.RequestError`, and nothing else. Or it is
a list of int64 counts and a limit: `check_sizes` must return their exact sum when every count and the sum
are within the limit, and refuse them otherwise, however the int64 sum would wrap.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from treecredit import _wire
    from treecredit._request_errors import RequestError
    from treecredit.v1 import forest_pb2

GROUPS = (_wire.INTEGER, _wire.FLOAT, _wire.LOW_FLOAT, _wire.MASK)


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    if provider.ConsumeBool():
        check_counts(provider)
        return
    dtypes = GROUPS[provider.ConsumeIntInRange(0, len(GROUPS) - 1)]
    ndim = provider.ConsumeIntInRange(1, 3)
    max_elements = provider.ConsumeIntInRange(-1, 1 << 20)
    tensor = forest_pb2.Tensor()
    try:
        tensor.ParseFromString(provider.ConsumeBytes(provider.remaining_bytes()))
    except DecodeError:
        return
    try:
        array = _wire.decode(tensor, "x", dtypes=dtypes, ndim=ndim, max_elements=None if max_elements < 0 else max_elements)
    except RequestError:
        return
    itemsize = 2 if tensor.dtype == forest_pb2.DATA_TYPE_BFLOAT16 else array.itemsize
    assert array.size * itemsize == len(tensor.data) and list(array.shape) == list(tensor.shape)


def check_counts(provider: atheris.FuzzedDataProvider) -> None:
    counts = provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 8), -(2**63), 2**63 - 1)
    limit = provider.ConsumeIntInRange(0, 2**63 - 1)
    within = all(0 <= c <= limit for c in counts) and sum(counts) <= limit
    try:
        total = _wire.check_sizes(np.array(counts, np.int64), "x", limit, "things")
    except RequestError:
        assert not within
        return
    assert within and total == sum(counts)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
