"""ToolPO's tool-call credit (ALGORITHMS.md section 8): the inputs a Score call with estimator "toolpo" carries.

    result = client.score(forest, "toolpo", tool_calls=ToolCalls(action_reward, tool_call_mask))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from treecredit import _wire
from treecredit.arrays import as_numpy
from treecredit.v1 import toolpo_pb2 as pb


@dataclass
class ToolCalls:
    """ToolPO's inputs beside the forest, whose leaf rewards are the success rewards.

    `action_reward`: float `[N]`, R_act at leaves (NaN elsewhere); `tool_call_mask`: bool `[T]`, 1 on
    tool-call tokens, laid out by node like the forest's loss mask."""

    action_reward: np.ndarray
    tool_call_mask: np.ndarray

    def __post_init__(self) -> None:
        self.action_reward = as_numpy(self.action_reward, np.float64)
        self.tool_call_mask = as_numpy(self.tool_call_mask, np.bool_)

    def to_proto(self) -> pb.ToolCalls:
        return pb.ToolCalls(action_reward=_wire.encode(self.action_reward),
                            tool_call_mask=_wire.encode(self.tool_call_mask))
