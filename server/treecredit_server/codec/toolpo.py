"""ToolPO's `ToolCalls` (toolpo.proto) -> the action rewards of `compute.toolpo`, checked against the forest."""

from __future__ import annotations

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import toolpo_pb2 as pb
from treecredit_server.codec.fields import array
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.config import Limits


def decode_tool_calls(message: pb.ToolCalls, forest: ForestArrays, limits: Limits) -> np.ndarray:
    """`action_reward` float64 `[N]`, finite at every leaf; `tool_call_mask` is checked (the client expands it)."""
    action_reward = array(message, "action_reward", "tool_calls.action_reward", _wire.FLOAT,
                          length=forest.num_nodes, counted="one per node of forest.parent",
                          max_elements=limits.max_nodes).astype(np.float64)
    array(message, "tool_call_mask", "tool_calls.tool_call_mask", _wire.MASK, length=int(forest.num_tokens.sum()),
          counted="forest.num_tokens summed", max_elements=limits.max_tokens)
    leaves = forest.leaves
    bad = ~np.isfinite(action_reward[leaves])
    if bad.any():
        leaf = int(leaves[np.argmax(bad)])
        raise InvalidArgument(f"tool_calls.action_reward[{leaf}]", f"leaf {leaf} has no finite action reward")
    return action_reward
