from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CurriculumMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURRICULUM_MODE_UNSPECIFIED: _ClassVar[CurriculumMode]
    CURRICULUM_MODE_STAGED: _ClassVar[CurriculumMode]
    CURRICULUM_MODE_MIXED: _ClassVar[CurriculumMode]
CURRICULUM_MODE_UNSPECIFIED: CurriculumMode
CURRICULUM_MODE_STAGED: CurriculumMode
CURRICULUM_MODE_MIXED: CurriculumMode

class CurriculumRequest(_message.Message):
    __slots__ = ("forest", "trunk_end", "mode", "window", "advance_at", "success_at")
    FOREST_FIELD_NUMBER: _ClassVar[int]
    TRUNK_END_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ADVANCE_AT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_AT_FIELD_NUMBER: _ClassVar[int]
    forest: _forest_pb2.Forest
    trunk_end: _forest_pb2.Tensor
    mode: CurriculumMode
    window: int
    advance_at: float
    success_at: float
    def __init__(self, forest: _Optional[_Union[_forest_pb2.Forest, _Mapping]] = ..., trunk_end: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., mode: _Optional[_Union[CurriculumMode, str]] = ..., window: _Optional[int] = ..., advance_at: _Optional[float] = ..., success_at: _Optional[float] = ...) -> None: ...

class CurriculumResponse(_message.Message):
    __slots__ = ("num_steps", "stage", "complete", "sample_probability", "success_rate", "rollouts", "failing_step", "rollouts_before_advance")
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    FAILING_STEP_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_BEFORE_ADVANCE_FIELD_NUMBER: _ClassVar[int]
    num_steps: _forest_pb2.Tensor
    stage: _forest_pb2.Tensor
    complete: _forest_pb2.Tensor
    sample_probability: _forest_pb2.Tensor
    success_rate: _forest_pb2.Tensor
    rollouts: _forest_pb2.Tensor
    failing_step: _forest_pb2.Tensor
    rollouts_before_advance: _forest_pb2.Tensor
    def __init__(self, num_steps: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., stage: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., complete: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., sample_probability: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., success_rate: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., rollouts: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., failing_step: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., rollouts_before_advance: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
