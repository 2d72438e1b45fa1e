"""Protobuf messages of structures.proto <-> the arrays of toolpo, srl, reflection and curriculum.

Decoding validates and names the offending field; nothing here does math.
"""

from __future__ import annotations

import math

import numpy as np

from treecredit import _wire
from treecredit.errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import structures_pb2 as spb
from treecredit_server.compute import curriculum, srl
from treecredit_server.codec.score import decode_forest
from treecredit_server.config import Limits
from treecredit_server.compute.credit import Estimator
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.reflection import Reflection, check_queries
from treecredit_server.compute.structured import Prepared, StructureInputs


def _array(message, field: str, name: str, dtypes, *, length: int | None = None,
           max_elements: int | None = None, required: bool = True) -> np.ndarray | None:
    """The 1-d array in `message.<field>` (wire name `name`), of `length` entries if given."""
    if not message.HasField(field):
        if required:
            raise InvalidArgument(name, "is required")
        return None
    values = _wire.decode(getattr(message, field), name, dtypes=dtypes, ndim=1, max_elements=max_elements)
    if length is not None and len(values) != length:
        raise InvalidArgument(name, f"has {len(values)} entries, expected {length}")
    return values


def _finite(value: float, name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidArgument(name, f"must be finite and in [{low}, {high}], got {value}")
    return value


# -- Score -------------------------------------------------------------------------------------------
def decode_score_inputs(request: pb.ScoreRequest, forest: ForestArrays, estimator: Estimator,
                        limits: Limits) -> StructureInputs:
    """The ToolPO / SRL / reflection parts of a Score request, checked against the forest."""
    for field, wanted in (("tool_calls", Estimator.TOOLPO), ("step_similarity", Estimator.SRL)):
        if request.HasField(field) != (estimator is wanted):
            problem = "is required" if estimator is wanted else f"is only read by ESTIMATOR_{wanted.name}"
            raise InvalidArgument(field, problem)
    action_reward = step_similarity = reflection = None
    total_tokens = int(forest.num_tokens.sum())
    if estimator is Estimator.TOOLPO:
        calls = request.tool_calls
        action_reward = _array(calls, "action_reward", "tool_calls.action_reward", _wire.FLOAT,
                               length=forest.num_nodes, max_elements=limits.max_nodes).astype(np.float64)
        _array(calls, "tool_call_mask", "tool_calls.tool_call_mask", _wire.MASK, length=total_tokens,
               max_elements=limits.max_tokens)
    if estimator is Estimator.SRL:
        step_similarity = _decode_step_similarity(request.step_similarity, forest, limits)
    if request.HasField("reflection"):
        if estimator is Estimator.SRL:
            raise InvalidArgument("reflection", "srl scores step similarity, not a reflection reward")
        reflection = decode_reflect(request.reflection, limits, "reflection")
        check_queries(forest, reflection["rows"], "reflection")
    return StructureInputs(action_reward, step_similarity, reflection)


def _decode_step_similarity(message: spb.StepSimilarity, forest: ForestArrays, limits: Limits) -> dict:
    num_leaves = len(forest.leaves)
    if message.actions and len(message.actions) != num_leaves:
        raise InvalidArgument("step_similarity.actions", f"has {len(message.actions)} texts for {num_leaves} leaves")
    parsed = _array(message, "parsed", "step_similarity.parsed", _wire.MASK, length=num_leaves,
                    max_elements=limits.max_nodes, required=False)
    options = {
        "parsed": np.ones(num_leaves, bool) if parsed is None else parsed.astype(bool),
        "min_std": (_finite(message.min_std, "step_similarity.min_std", low=0.0)
                    if message.HasField("min_std") else srl.MIN_STD),
    }
    if not message.actions:
        return options
    num_steps = _array(message, "num_steps", "step_similarity.num_steps", _wire.INTEGER,
                       max_elements=limits.max_nodes).astype(np.int64)
    return {**options, "expert_steps": message.expert_steps, "num_steps": num_steps, "actions": message.actions}


def encode_score_extras(response: pb.ScoreResponse, prepared: Prepared) -> pb.ScoreResponse:
    """Add what ToolPO, SRL and the reflection reward give to a Score response, in place."""
    if prepared.action_advantage is not None:
        response.scope = pb.ADVANTAGE_SCOPE_TOOL_CALL
        _wire.encode(prepared.action_advantage, np.float64, into=response.action_advantages)
    step = prepared.step_credit
    if step is not None:
        out = response.step_similarity
        _wire.encode(step.step_reward, np.float64, into=out.step_reward)
        _wire.encode(step.step_prompt, np.int64, into=out.step_prompt)
        _wire.encode(step.kept, np.bool_, into=out.kept)
    if prepared.reflection is not None:
        encode_reflection(prepared.reflection, into=response.reflection)
    return response


# -- Reflect -----------------------------------------------------------------------------------------
def decode_reflect(message: spb.ReflectRequest, limits: Limits, name: str = "") -> dict:
    """Keyword arguments of `reflection.reflect`, checked: ragged shapes agree, values are finite."""
    prefix = f"{name}." if name else ""
    rows = _array(message, "rows", prefix + "rows", _wire.INTEGER, max_elements=limits.max_nodes).astype(np.int64)
    cols = _array(message, "cols", prefix + "cols", _wire.INTEGER, length=len(rows),
                  max_elements=limits.max_nodes).astype(np.int64)
    for field, sizes in (("rows", rows), ("cols", cols)):
        if (sizes < 0).any():
            q = int(np.argmax(sizes < 0))
            raise InvalidArgument(f"{prefix}{field}[{q}]", f"negative size {sizes[q]}")
    elements = int((rows * cols).sum())
    if elements > limits.max_tokens:
        raise ResourceExhausted(prefix + "ell", f"{elements} entries exceed the limit of {limits.max_tokens}")
    ell = _array(message, "ell", prefix + "ell", _wire.FLOAT, length=elements, max_elements=limits.max_tokens)
    baseline = _array(message, "baseline", prefix + "baseline", _wire.FLOAT, length=int(cols.sum()),
                      max_elements=limits.max_tokens, required=False)
    for field, values in (("ell", ell), ("baseline", baseline)):
        if values is not None and not np.isfinite(values).all():
            i = int(np.argmax(~np.isfinite(values)))
            raise InvalidArgument(f"{prefix}{field}[{i}]", f"{values[i]} is not finite")
    power = message.power if message.HasField("power") else 1.0
    if not (math.isfinite(power) and power > 0):
        raise InvalidArgument(prefix + "power", f"must be finite and > 0, got {power}")
    which = message.WhichOneof("filter")
    min_spread = _finite(message.min_spread, prefix + "min_spread") if which == "min_spread" else None
    drop_percent = (_finite(message.drop_percent, prefix + "drop_percent", low=0.0, high=100.0)
                    if which == "drop_percent" else None)
    return {"ell": ell, "rows": rows, "cols": cols, "baseline": baseline, "power": power,
            "min_spread": min_spread, "drop_percent": drop_percent}


def encode_reflection(reflection: Reflection, into: spb.ReflectResponse | None = None) -> spb.ReflectResponse:
    out = spb.ReflectResponse() if into is None else into
    for field in ("reward", "weights", "sigma", "spread"):
        _wire.encode(getattr(reflection, field), np.float64, into=getattr(out, field))
    _wire.encode(reflection.kept, np.bool_, into=out.kept)
    return out


# -- Curriculum --------------------------------------------------------------------------------------
def decode_curriculum(request: spb.CurriculumRequest, limits: Limits) -> tuple[ForestArrays, np.ndarray, dict]:
    """`(forest, trunk_end [D], keyword options of curriculum.plan)`."""
    forest = decode_forest(request.forest, limits)
    trunk_end = _array(request, "trunk_end", "trunk_end", _wire.INTEGER, max_elements=limits.max_nodes)
    if request.mode not in (spb.CURRICULUM_MODE_UNSPECIFIED, spb.CURRICULUM_MODE_STAGED, spb.CURRICULUM_MODE_MIXED):
        raise InvalidArgument("mode", f"unknown curriculum mode {request.mode}")
    window = request.window if request.HasField("window") else curriculum.WINDOW
    if window < 1:
        raise InvalidArgument("window", f"must be >= 1, got {window}")
    options = {
        "mixed": request.mode == spb.CURRICULUM_MODE_MIXED,
        "window": window,
        "advance_at": (_finite(request.advance_at, "advance_at", low=0.0, high=1.0)
                       if request.HasField("advance_at") else curriculum.ADVANCE_AT),
        "success_at": (_finite(request.success_at, "success_at")
                       if request.HasField("success_at") else curriculum.SUCCESS_AT),
    }
    return forest, trunk_end.astype(np.int64), options


def encode_plan(plan: curriculum.Plan) -> spb.CurriculumResponse:
    out = spb.CurriculumResponse()
    for field, dtype in (("num_steps", np.int64), ("stage", np.int64), ("complete", np.bool_),
                         ("sample_probability", np.float64), ("success_rate", np.float64),
                         ("rollouts", np.int64), ("failing_step", np.int64), ("rollouts_before_advance", np.int64)):
        _wire.encode(getattr(plan, field), dtype, into=getattr(out, field))
    return out
