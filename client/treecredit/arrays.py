"""Arrays and labels as callers hold them, as numpy: numpy arrays, torch tensors on any device and of any dtype
(bfloat16 and float16 included; torch is never imported here, a tensor is recognised by its `detach` method),
scalars and nested lists. Problems raise ValueError naming the field and the first bad index.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np


def as_numpy(values, dtype=None) -> np.ndarray:
    """`values` as a numpy array (of `dtype` if given). Floating tensors narrower than float32 (bfloat16, which
    numpy lacks, and float16) are widened to float32 first, exactly."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
        if values.is_floating_point() and values.element_size() < 4:
            values = values.float()
        values = values.numpy()
    return np.asarray(values, dtype=dtype)


def integers(values, field: str) -> np.ndarray:
    """int64 ids or counts: integers, or floats that hold whole numbers (never truncated)."""
    array = as_numpy(values)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            first = tuple(np.argwhere(bad)[0])
            raise ValueError(f"{field}{_index(bad)}: {array[first]} is not a whole number")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"{field}: expected integers, got {array.dtype} values")
    return array.astype(np.int64, copy=False)


def label(value) -> Hashable:
    """A group or tree label as a plain hashable: numpy and torch scalars count as the number they hold, so that
    `torch.tensor(3)`, `np.int64(3)` and `3` are one label."""
    if hasattr(value, "detach") or isinstance(value, (np.generic, np.ndarray)):
        array = as_numpy(value)
        if array.size != 1:
            raise ValueError(f"a label must be one value, got an array of shape {list(array.shape)}")
        return array.reshape(()).item()
    return value


def label_codes(labels, field: str) -> tuple[np.ndarray, list]:
    """Dense int64 codes `[n]` of hashable labels, and the distinct labels in code order (None is refused)."""
    labels = label_array(labels, field)
    missing = is_none(labels)
    if missing.any():
        raise ValueError(f"{field}{_index(missing)}: None is not a label")
    try:
        distinct, first, codes = np.unique(labels, return_index=True, return_inverse=True)
    except TypeError:  # labels that cannot be ordered against each other: hash them instead
        index: dict[Hashable, int] = {}
        try:
            codes = np.fromiter((index.setdefault(v, len(index)) for v in labels), np.int64, len(labels))
        except TypeError as error:
            raise ValueError(f"{field}: labels must be hashable ({error})") from None
        return codes, list(index)
    order = np.argsort(first, kind="stable")  # number the labels in order of first appearance
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes.reshape(-1)], distinct[order].tolist()


def is_none(labels: np.ndarray) -> np.ndarray:
    """bool `[n]`: where a label array holds None."""
    return np.equal(labels, None) if labels.dtype == object else np.zeros(labels.shape, bool)


def label_array(labels, field: str) -> np.ndarray:
    """A 1-d array of labels, never broadcast into more dimensions: numeric or text as numpy holds them,
    anything else as objects with numpy and torch scalars unwrapped."""
    if hasattr(labels, "detach") or (isinstance(labels, np.ndarray) and labels.dtype != object):
        array = as_numpy(labels)
        if array.ndim != 1:
            raise ValueError(f"{field}: expected one label per entry, got shape {list(array.shape)}")
        return array
    return np.fromiter(map(label, labels), dtype=object, count=len(labels))


def _index(bad: np.ndarray) -> str:
    """`[i]` or `[i, j]`: the first True entry of `bad`."""
    return "[" + ", ".join(map(str, np.argwhere(bad)[0].tolist())) + "]" if bad.ndim else ""
