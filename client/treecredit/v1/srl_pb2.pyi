from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepSimilarity(_message.Message):
    __slots__ = ("expert_steps", "num_steps", "actions", "parsed", "min_std")
    EXPERT_STEPS_FIELD_NUMBER: _ClassVar[int]
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PARSED_FIELD_NUMBER: _ClassVar[int]
    MIN_STD_FIELD_NUMBER: _ClassVar[int]
    expert_steps: _containers.RepeatedScalarFieldContainer[str]
    num_steps: _forest_pb2.Tensor
    actions: _containers.RepeatedScalarFieldContainer[str]
    parsed: _forest_pb2.Tensor
    min_std: float
    def __init__(self, expert_steps: _Optional[_Iterable[str]] = ..., num_steps: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., actions: _Optional[_Iterable[str]] = ..., parsed: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., min_std: _Optional[float] = ...) -> None: ...

class StepSimilarityResult(_message.Message):
    __slots__ = ("step_reward", "step_prompt", "kept")
    STEP_REWARD_FIELD_NUMBER: _ClassVar[int]
    STEP_PROMPT_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    step_reward: _forest_pb2.Tensor
    step_prompt: _forest_pb2.Tensor
    kept: _forest_pb2.Tensor
    def __init__(self, step_reward: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., step_prompt: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., kept: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
