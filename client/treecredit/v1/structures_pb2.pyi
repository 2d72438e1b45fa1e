from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CurriculumMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURRICULUM_MODE_UNSPECIFIED: _ClassVar[CurriculumMode]
    CURRICULUM_MODE_STAGED: _ClassVar[CurriculumMode]
    CURRICULUM_MODE_MIXED: _ClassVar[CurriculumMode]
CURRICULUM_MODE_UNSPECIFIED: CurriculumMode
CURRICULUM_MODE_STAGED: CurriculumMode
CURRICULUM_MODE_MIXED: CurriculumMode

class ToolCalls(_message.Message):
    __slots__ = ("action_reward", "tool_call_mask")
    ACTION_REWARD_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_MASK_FIELD_NUMBER: _ClassVar[int]
    action_reward: _forest_pb2.Tensor
    tool_call_mask: _forest_pb2.Tensor
    def __init__(self, action_reward: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tool_call_mask: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

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

class ReflectRequest(_message.Message):
    __slots__ = ("ell", "rows", "cols", "baseline", "power", "min_spread", "drop_percent")
    ELL_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    MIN_SPREAD_FIELD_NUMBER: _ClassVar[int]
    DROP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ell: _forest_pb2.Tensor
    rows: _forest_pb2.Tensor
    cols: _forest_pb2.Tensor
    baseline: _forest_pb2.Tensor
    power: float
    min_spread: float
    drop_percent: float
    def __init__(self, ell: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., rows: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., cols: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., baseline: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., power: _Optional[float] = ..., min_spread: _Optional[float] = ..., drop_percent: _Optional[float] = ...) -> None: ...

class ReflectResponse(_message.Message):
    __slots__ = ("reward", "weights", "sigma", "spread", "kept")
    REWARD_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    reward: _forest_pb2.Tensor
    weights: _forest_pb2.Tensor
    sigma: _forest_pb2.Tensor
    spread: _forest_pb2.Tensor
    kept: _forest_pb2.Tensor
    def __init__(self, reward: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., weights: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., sigma: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., spread: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., kept: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

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
