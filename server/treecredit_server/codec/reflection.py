"""DRO's reflection reward (reflection.proto) <-> `compute.reflection`: the Reflect RPC, and the reflection part of
Score and Filter. Decoding validates and names the offending field; nothing here does math."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import reflection_pb2 as pb
from treecredit_server.codec.fields import array, finite
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.reflection import Reflection
from treecredit_server.config import Limits


def decode_reflect(message: pb.ReflectRequest, limits: Limits, name: str = "") -> dict:
    """Keyword arguments of `reflection.reflect`, checked: ragged shapes agree, values are finite."""
    prefix = f"{name}." if name else ""
    rows = array(message, "rows", prefix + "rows", _wire.INTEGER, max_elements=limits.max_nodes).astype(np.int64)
    cols = array(message, "cols", prefix + "cols", _wire.INTEGER, length=len(rows), counted="one per query of rows",
                 max_elements=limits.max_nodes).astype(np.int64)
    # Each factor has its own limit (the response holds sum(rows) rewards and sum(cols) weights), so a zero
    # in one does not let the other grow without bound; then the products, each checked before the sum.
    _wire.check_sizes(rows, prefix + "rows", limits.max_nodes, "rollouts")
    columns = _wire.check_sizes(cols, prefix + "cols", limits.max_tokens, "reference tokens")
    elements = _wire.check_sizes(_wire.check_products(rows, cols, prefix + "cols", limits.max_tokens, "entries of ell"),
                                 prefix + "ell", limits.max_tokens, "entries")
    ell = array(message, "ell", prefix + "ell", _wire.FLOAT, length=elements, counted="rows x cols summed",
                max_elements=limits.max_tokens)
    baseline = array(message, "baseline", prefix + "baseline", _wire.FLOAT, length=columns, counted="cols summed",
                     max_elements=limits.max_tokens, required=False)
    for field, values in (("ell", ell), ("baseline", baseline)):
        if values is not None and not np.isfinite(values).all():
            i = int(np.argmax(~np.isfinite(values)))
            raise InvalidArgument(f"{prefix}{field}[{i}]", f"{values[i]} is not finite")
    power = message.power if message.HasField("power") else 1.0
    if not (np.isfinite(power) and power > 0):
        raise InvalidArgument(prefix + "power", f"must be finite and > 0, got {power}")
    which = message.WhichOneof("filter")
    min_spread = finite(message.min_spread, prefix + "min_spread") if which == "min_spread" else None
    drop_percent = (finite(message.drop_percent, prefix + "drop_percent", low=0.0, high=100.0)
                    if which == "drop_percent" else None)
    return {"ell": ell, "rows": rows, "cols": cols, "baseline": baseline, "power": power,
            "min_spread": min_spread, "drop_percent": drop_percent}


def decode_forest_reflection(message: pb.ReflectRequest, forest: ForestArrays, limits: Limits) -> dict:
    """`decode_reflect` of the `reflection` field of a forest's request: query q must be group q, with one rollout
    per leaf of the group."""
    reflection = decode_reflect(message, limits, "reflection")
    rows = reflection["rows"]
    leaves_per_group = np.bincount(forest.group[forest.leaves], minlength=forest.num_groups)
    if len(rows) != forest.num_groups:
        raise InvalidArgument("reflection.rows",
                              f"has {len(rows)} queries for the {forest.num_groups} groups of forest.group")
    bad = rows != leaves_per_group
    if bad.any():
        q = int(np.argmax(bad))
        raise InvalidArgument(f"reflection.rows[{q}]", f"{rows[q]} rollouts, but group {q} has {leaves_per_group[q]} "
                                                       "leaves")
    return reflection


def encode_reflection(reflection: Reflection, into: pb.ReflectResponse | None = None) -> pb.ReflectResponse:
    out = pb.ReflectResponse() if into is None else into
    for field in ("reward", "weights", "sigma", "spread"):
        _wire.encode(getattr(reflection, field), np.float64, into=getattr(out, field))
    _wire.encode(reflection.kept, np.bool_, into=out.kept)
    return out
