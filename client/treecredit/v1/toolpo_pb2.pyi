from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ToolCalls(_message.Message):
    __slots__ = ("action_reward", "tool_call_mask")
    ACTION_REWARD_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_MASK_FIELD_NUMBER: _ClassVar[int]
    action_reward: _forest_pb2.Tensor
    tool_call_mask: _forest_pb2.Tensor
    def __init__(self, action_reward: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tool_call_mask: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
