from treecredit.v1 import forest_pb2 as _forest_pb2
from treecredit.v1 import toolpo_pb2 as _toolpo_pb2
from treecredit.v1 import srl_pb2 as _srl_pb2
from treecredit.v1 import reflection_pb2 as _reflection_pb2
from treecredit.v1 import curriculum_pb2 as _curriculum_pb2
from treecredit.v1 import confidence_pb2 as _confidence_pb2
from treecredit.v1 import tokens_pb2 as _tokens_pb2
from treecredit.v1 import packing_pb2 as _packing_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Estimator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESTIMATOR_UNSPECIFIED: _ClassVar[Estimator]
    ESTIMATOR_GRPO: _ClassVar[Estimator]
    ESTIMATOR_TREE_GRPO: _ClassVar[Estimator]
    ESTIMATOR_TREERL: _ClassVar[Estimator]
    ESTIMATOR_VALUE_DIFF: _ClassVar[Estimator]
    ESTIMATOR_TOOLPO: _ClassVar[Estimator]
    ESTIMATOR_SRL: _ClassVar[Estimator]

class AdvantageScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADVANTAGE_SCOPE_UNSPECIFIED: _ClassVar[AdvantageScope]
    ADVANTAGE_SCOPE_LEAF: _ClassVar[AdvantageScope]
    ADVANTAGE_SCOPE_NODE: _ClassVar[AdvantageScope]
    ADVANTAGE_SCOPE_TOOL_CALL: _ClassVar[AdvantageScope]
ESTIMATOR_UNSPECIFIED: Estimator
ESTIMATOR_GRPO: Estimator
ESTIMATOR_TREE_GRPO: Estimator
ESTIMATOR_TREERL: Estimator
ESTIMATOR_VALUE_DIFF: Estimator
ESTIMATOR_TOOLPO: Estimator
ESTIMATOR_SRL: Estimator
ADVANTAGE_SCOPE_UNSPECIFIED: AdvantageScope
ADVANTAGE_SCOPE_LEAF: AdvantageScope
ADVANTAGE_SCOPE_NODE: AdvantageScope
ADVANTAGE_SCOPE_TOOL_CALL: AdvantageScope

class ScoreOptions(_message.Message):
    __slots__ = ("normalize_std", "sibling_std", "min_margin", "window", "tail")
    NORMALIZE_STD_FIELD_NUMBER: _ClassVar[int]
    SIBLING_STD_FIELD_NUMBER: _ClassVar[int]
    MIN_MARGIN_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    normalize_std: bool
    sibling_std: bool
    min_margin: float
    window: int
    tail: int
    def __init__(self, normalize_std: bool = ..., sibling_std: bool = ..., min_margin: _Optional[float] = ..., window: _Optional[int] = ..., tail: _Optional[int] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("forest", "estimator", "options", "tool_calls", "step_similarity", "reflection")
    FOREST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    STEP_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    forest: _forest_pb2.Forest
    estimator: Estimator
    options: ScoreOptions
    tool_calls: _toolpo_pb2.ToolCalls
    step_similarity: _srl_pb2.StepSimilarity
    reflection: _reflection_pb2.ReflectRequest
    def __init__(self, forest: _Optional[_Union[_forest_pb2.Forest, _Mapping]] = ..., estimator: _Optional[_Union[Estimator, str]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ..., tool_calls: _Optional[_Union[_toolpo_pb2.ToolCalls, _Mapping]] = ..., step_similarity: _Optional[_Union[_srl_pb2.StepSimilarity, _Mapping]] = ..., reflection: _Optional[_Union[_reflection_pb2.ReflectRequest, _Mapping]] = ...) -> None: ...

class PackRequest(_message.Message):
    __slots__ = ("score", "options")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    score: ScoreRequest
    options: _packing_pb2.PackOptions
    def __init__(self, score: _Optional[_Union[ScoreRequest, _Mapping]] = ..., options: _Optional[_Union[_packing_pb2.PackOptions, _Mapping]] = ...) -> None: ...

class Preferences(_message.Message):
    __slots__ = ("winner", "loser", "margin", "depth")
    WINNER_FIELD_NUMBER: _ClassVar[int]
    LOSER_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    winner: _forest_pb2.Tensor
    loser: _forest_pb2.Tensor
    margin: _forest_pb2.Tensor
    depth: _forest_pb2.Tensor
    def __init__(self, winner: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., loser: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., margin: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., depth: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class DepthProfile(_message.Message):
    __slots__ = ("depth", "branch_points", "sibling_pairs", "mean_abs_advantage", "tokens")
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    BRANCH_POINTS_FIELD_NUMBER: _ClassVar[int]
    SIBLING_PAIRS_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABS_ADVANTAGE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    depth: _forest_pb2.Tensor
    branch_points: _forest_pb2.Tensor
    sibling_pairs: _forest_pb2.Tensor
    mean_abs_advantage: _forest_pb2.Tensor
    tokens: _forest_pb2.Tensor
    def __init__(self, depth: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., branch_points: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., sibling_pairs: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., mean_abs_advantage: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tokens: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PrefixSharing(_message.Message):
    __slots__ = ("unique_tokens", "trajectory_tokens", "sharing", "trajectories_per_1k_tokens")
    UNIQUE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SHARING_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORIES_PER_1K_TOKENS_FIELD_NUMBER: _ClassVar[int]
    unique_tokens: int
    trajectory_tokens: int
    sharing: float
    trajectories_per_1k_tokens: float
    def __init__(self, unique_tokens: _Optional[int] = ..., trajectory_tokens: _Optional[int] = ..., sharing: _Optional[float] = ..., trajectories_per_1k_tokens: _Optional[float] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("scope", "node_advantages", "leaf_advantages", "preferences", "depth_profile", "sharing", "action_advantages", "step_similarity", "reflection", "trace_confidence")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NODE_ADVANTAGES_FIELD_NUMBER: _ClassVar[int]
    LEAF_ADVANTAGES_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    DEPTH_PROFILE_FIELD_NUMBER: _ClassVar[int]
    SHARING_FIELD_NUMBER: _ClassVar[int]
    ACTION_ADVANTAGES_FIELD_NUMBER: _ClassVar[int]
    STEP_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    scope: AdvantageScope
    node_advantages: _forest_pb2.Tensor
    leaf_advantages: _forest_pb2.Tensor
    preferences: Preferences
    depth_profile: DepthProfile
    sharing: PrefixSharing
    action_advantages: _forest_pb2.Tensor
    step_similarity: _srl_pb2.StepSimilarityResult
    reflection: _reflection_pb2.ReflectResponse
    trace_confidence: _tokens_pb2.TraceConfidence
    def __init__(self, scope: _Optional[_Union[AdvantageScope, str]] = ..., node_advantages: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., leaf_advantages: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., preferences: _Optional[_Union[Preferences, _Mapping]] = ..., depth_profile: _Optional[_Union[DepthProfile, _Mapping]] = ..., sharing: _Optional[_Union[PrefixSharing, _Mapping]] = ..., action_advantages: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., step_similarity: _Optional[_Union[_srl_pb2.StepSimilarityResult, _Mapping]] = ..., reflection: _Optional[_Union[_reflection_pb2.ReflectResponse, _Mapping]] = ..., trace_confidence: _Optional[_Union[_tokens_pb2.TraceConfidence, _Mapping]] = ...) -> None: ...
