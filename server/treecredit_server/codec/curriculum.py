"""R³'s reverse curriculum (curriculum.proto) <-> `compute.curriculum`. Decoding validates the demonstrations
against the forest and names the offending field; nothing here does math."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import curriculum_pb2 as pb
from treecredit_server.codec.fields import array, finite
from treecredit_server.codec.forest import decode_forest
from treecredit_server.compute import curriculum
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.config import Limits


def decode_curriculum(request: pb.CurriculumRequest, limits: Limits) -> tuple[ForestArrays, np.ndarray, dict]:
    """`(forest, trunk_end [D], keyword options of curriculum.plan)`: one demonstration trunk per tree, every
    other leaf a rollout in a demonstration's tree."""
    forest = decode_forest(request.forest, limits)
    trunk_end = array(request, "trunk_end", "trunk_end", _wire.INTEGER, max_elements=limits.max_nodes).astype(np.int64)
    _check_trunks(forest, trunk_end)
    # The answer's per-depth arrays are [D, S_max + 1]: one deep trunk and many shallow ones make few nodes but
    # D x S_max cells.
    deepest = int(forest.topology.depth[trunk_end].max(initial=0))
    _wire.check_size(len(trunk_end) * (deepest + 1), "trunk_end", limits.max_nodes,
                     "cells of [D, S_max + 1] per-depth arrays")
    if request.mode not in (pb.CURRICULUM_MODE_UNSPECIFIED, pb.CURRICULUM_MODE_STAGED, pb.CURRICULUM_MODE_MIXED):
        raise InvalidArgument("mode", f"unknown curriculum mode {request.mode}")
    window = request.window if request.HasField("window") else curriculum.WINDOW
    if window < 1:
        raise InvalidArgument("window", f"must be >= 1, got {window}")
    options = {
        "mixed": request.mode == pb.CURRICULUM_MODE_MIXED,
        "window": window,
        "advance_at": (finite(request.advance_at, "advance_at", low=0.0, high=1.0)
                       if request.HasField("advance_at") else curriculum.ADVANCE_AT),
        "success_at": (finite(request.success_at, "success_at")
                       if request.HasField("success_at") else curriculum.SUCCESS_AT),
    }
    return forest, trunk_end, options


def _check_trunks(forest: ForestArrays, trunk_end: np.ndarray) -> None:
    topology = forest.topology
    bad = (trunk_end < 0) | (trunk_end >= forest.num_nodes)
    if bad.any():
        d = int(np.argmax(bad))
        raise InvalidArgument(f"trunk_end[{d}]", f"node {trunk_end[d]} is not in the forest of {forest.num_nodes} nodes")
    num_steps = topology.depth[trunk_end]
    if (num_steps < 1).any():
        d = int(np.argmax(num_steps < 1))
        raise InvalidArgument(f"trunk_end[{d}]", f"node {trunk_end[d]} is a root; a demonstration needs a step")
    has_children = ~topology.is_leaf
    if has_children[trunk_end].any():
        d = int(np.argmax(has_children[trunk_end]))
        raise InvalidArgument(f"trunk_end[{d}]", f"node {trunk_end[d]} has children; the trunk ends at a leaf "
                                                 f"(a rollout from depth S = {num_steps[d]} would have no step to take)")
    root = topology.root[trunk_end]
    _, first = np.unique(root, return_index=True)
    if len(first) < len(root):
        d = int(np.setdiff1d(np.arange(len(root)), first)[0])
        raise InvalidArgument(f"trunk_end[{d}]", f"shares tree {root[d]} with another demonstration")
    orphan = ~np.isin(topology.root[forest.leaves], root)
    if orphan.any():
        raise InvalidArgument("trunk_end", f"leaf {forest.leaves[np.argmax(orphan)]} is in a tree without a "
                                           "demonstration trunk")


def encode_plan(plan: curriculum.Plan) -> pb.CurriculumResponse:
    out = pb.CurriculumResponse()
    for field, dtype in (("num_steps", np.int64), ("stage", np.int64), ("complete", np.bool_),
                         ("sample_probability", np.float64), ("success_rate", np.float64),
                         ("rollouts", np.int64), ("failing_step", np.int64), ("rollouts_before_advance", np.int64)):
        _wire.encode(getattr(plan, field), dtype, into=getattr(out, field))
    return out
