"""SRL's step similarity (srl.proto) <-> `compute.srl`, checked against the forest: each tree one expert trajectory,
an action for step k a leaf at depth k. Decoding validates and names the offending field; nothing here does math."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import srl_pb2 as pb
from treecredit_server.codec.fields import array, finite
from treecredit_server.compute import srl
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.config import Limits


def decode_step_similarity(message: pb.StepSimilarity, forest: ForestArrays, limits: Limits) -> srl.StepInputs:
    leaves = forest.leaves
    rooted = forest.parent[leaves] < 0
    if rooted.any():
        leaf = int(leaves[np.argmax(rooted)])
        raise InvalidArgument(f"forest.parent[{leaf}]", f"leaf {leaf} is a root; an action forks from a trunk node")
    num_leaves = len(leaves)
    if message.actions and len(message.actions) != num_leaves:
        raise InvalidArgument("step_similarity.actions", f"has {len(message.actions)} texts for {num_leaves} leaves")
    parsed = array(message, "parsed", "step_similarity.parsed", _wire.MASK, length=num_leaves,
                   max_elements=limits.max_nodes, required=False)
    inputs = srl.StepInputs(
        parsed=np.ones(num_leaves, bool) if parsed is None else parsed.astype(bool),
        min_std=(finite(message.min_std, "step_similarity.min_std", low=0.0)
                 if message.HasField("min_std") else srl.MIN_STD),
    )
    if not message.actions:
        return inputs
    num_steps = array(message, "num_steps", "step_similarity.num_steps", _wire.INTEGER,
                      max_elements=limits.max_nodes).astype(np.int64)
    total_steps = _wire.check_sizes(num_steps, "step_similarity.num_steps", limits.max_nodes, "expert steps")
    expert_step = _expert_step_of_leaves(forest, num_steps)
    if len(message.expert_steps) != total_steps:
        raise InvalidArgument("step_similarity.expert_steps",
                              f"has {len(message.expert_steps)} texts but num_steps sums to {total_steps}")
    return srl.StepInputs(inputs.parsed, inputs.min_std, message.expert_steps, expert_step, message.actions)


def _expert_step_of_leaves(forest: ForestArrays, num_steps: np.ndarray) -> np.ndarray:
    """int64 `[P]`: index into the concatenated expert steps of the step each leaf's action answers
    (step k = the leaf's depth, of its own tree's steps)."""
    roots = np.flatnonzero(forest.parent < 0)
    if len(num_steps) != len(roots):
        raise InvalidArgument("step_similarity.num_steps", f"has {len(num_steps)} entries for {len(roots)} trees")
    if (num_steps < 0).any():
        tree = int(np.argmax(num_steps < 0))
        raise InvalidArgument(f"step_similarity.num_steps[{tree}]", f"negative step count {num_steps[tree]}")
    leaves = forest.leaves
    tree = np.searchsorted(roots, forest.topology.root[leaves])
    step = forest.topology.depth[leaves]
    bad = (step < 1) | (step > num_steps[tree])
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(
            f"step_similarity.num_steps[{tree[i]}]",
            f"leaf {leaves[i]} at depth {step[i]} answers step {step[i]}, but its tree has {num_steps[tree[i]]} steps",
        )
    return (np.cumsum(num_steps) - num_steps)[tree] + step - 1


def encode_step_credit(step: srl.StepCredit, out: pb.StepSimilarityResult) -> None:
    _wire.encode(step.step_reward, np.float64, into=out.step_reward)
    _wire.encode(step.step_prompt, np.int64, into=out.step_prompt)
    _wire.encode(step.kept, np.bool_, into=out.kept)
