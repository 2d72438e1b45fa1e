"""Readers of the scalar and array fields every codec shares; each raises InvalidArgument naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument

MAX_WINDOW = 1 << 20


def optional(message, field: str, default):
    return getattr(message, field) if message.HasField(field) else default


def window(message, field: str, prefix: str, default: int = 2048) -> int:
    value = optional(message, field, default)
    if not 1 <= value <= MAX_WINDOW:
        raise InvalidArgument(f"{prefix}{field}", f"must be in [1, {MAX_WINDOW}], got {value}")
    return value


def percent(message, field: str, prefix: str, default: float, *, low_open: bool = True) -> float:
    value = optional(message, field, default)
    if not (math.isfinite(value) and (0 < value if low_open else 0 <= value) and value <= 100):
        raise InvalidArgument(f"{prefix}{field}", f"must be in {'(0' if low_open else '[0'}, 100], got {value}")
    return value


def enum(table: dict, value: int, field: str, enum_type) -> object:
    if value not in table:
        raise InvalidArgument(field, f"unknown value {value}; expected one of "
                                     f"{', '.join(enum_type.Name(v) for v in table if v)}")
    return table[value]


def array(message, field: str, name: str, dtypes, *, length: int | None = None, counted: str = "",
          max_elements: int | None = None, required: bool = True) -> np.ndarray | None:
    """The 1-d array in `message.<field>` (wire name `name`), of `length` entries if given (`counted` says which
    fields that length comes from)."""
    if not message.HasField(field):
        if required:
            raise InvalidArgument(name, "is required")
        return None
    values = _wire.decode(getattr(message, field), name, dtypes=dtypes, ndim=1, max_elements=max_elements)
    if length is not None and len(values) != length:
        raise InvalidArgument(name, f"has {len(values)} entries, expected {length}"
                                    + (f" ({counted})" if counted else ""))
    return values


def finite(value: float, name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidArgument(name, f"must be finite and in [{low}, {high}], got {value}")
    return value


def refuse_first(field: str, bad: np.ndarray, problem: str | Callable[[int], str]) -> None:
    """InvalidArgument naming `field[i]` for the first i where `bad` holds; `problem`, or `problem(i)`, says why."""
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidArgument(f"{field}[{index}]", problem(index) if callable(problem) else problem)


TOPK_PROBLEM = "is NaN or above 0: no log-probability"


def unusable_topk(topk_logprobs: np.ndarray) -> np.ndarray:
    """bool `[T]`: rows of top-k log-probs `[T, k]` that hold NaN or a value above 0, which no log-probability is
    (+inf included; -inf is padding)."""
    return (np.isnan(topk_logprobs) | (topk_logprobs > 0)).any(axis=1)
