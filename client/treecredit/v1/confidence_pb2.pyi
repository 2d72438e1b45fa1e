from treecredit.v1 import forest_pb2 as _forest_pb2
from treecredit.v1 import reflection_pb2 as _reflection_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfidenceMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIDENCE_METRIC_UNSPECIFIED: _ClassVar[ConfidenceMetric]
    CONFIDENCE_METRIC_LOWEST: _ClassVar[ConfidenceMetric]
    CONFIDENCE_METRIC_BOTTOM10: _ClassVar[ConfidenceMetric]
    CONFIDENCE_METRIC_TAIL: _ClassVar[ConfidenceMetric]
    CONFIDENCE_METRIC_MEAN: _ClassVar[ConfidenceMetric]

class TraceReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACE_REASON_UNSPECIFIED: _ClassVar[TraceReason]
    TRACE_REASON_CONFIDENT: _ClassVar[TraceReason]
    TRACE_REASON_LOW_CONFIDENCE: _ClassVar[TraceReason]
    TRACE_REASON_EMPTY: _ClassVar[TraceReason]

class QueryReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_REASON_UNSPECIFIED: _ClassVar[QueryReason]
    QUERY_REASON_INFORMATIVE: _ClassVar[QueryReason]
    QUERY_REASON_ZERO_VARIANCE: _ClassVar[QueryReason]
    QUERY_REASON_LOW_REFLECTION: _ClassVar[QueryReason]

class StopSamplingReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_SAMPLING_REASON_UNSPECIFIED: _ClassVar[StopSamplingReason]
    STOP_SAMPLING_REASON_CONSENSUS: _ClassVar[StopSamplingReason]
    STOP_SAMPLING_REASON_BUDGET: _ClassVar[StopSamplingReason]

class TrajectoryVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAJECTORY_VERDICT_UNSPECIFIED: _ClassVar[TrajectoryVerdict]
    TRAJECTORY_VERDICT_KEPT: _ClassVar[TrajectoryVerdict]
    TRAJECTORY_VERDICT_STOPPED: _ClassVar[TrajectoryVerdict]
    TRAJECTORY_VERDICT_CUT_OFF: _ClassVar[TrajectoryVerdict]

class ForkRanking(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORK_RANKING_UNSPECIFIED: _ClassVar[ForkRanking]
    FORK_RANKING_NEG_LOGPROB: _ClassVar[ForkRanking]
    FORK_RANKING_WINDOW_CONFIDENCE: _ClassVar[ForkRanking]
CONFIDENCE_METRIC_UNSPECIFIED: ConfidenceMetric
CONFIDENCE_METRIC_LOWEST: ConfidenceMetric
CONFIDENCE_METRIC_BOTTOM10: ConfidenceMetric
CONFIDENCE_METRIC_TAIL: ConfidenceMetric
CONFIDENCE_METRIC_MEAN: ConfidenceMetric
TRACE_REASON_UNSPECIFIED: TraceReason
TRACE_REASON_CONFIDENT: TraceReason
TRACE_REASON_LOW_CONFIDENCE: TraceReason
TRACE_REASON_EMPTY: TraceReason
QUERY_REASON_UNSPECIFIED: QueryReason
QUERY_REASON_INFORMATIVE: QueryReason
QUERY_REASON_ZERO_VARIANCE: QueryReason
QUERY_REASON_LOW_REFLECTION: QueryReason
STOP_SAMPLING_REASON_UNSPECIFIED: StopSamplingReason
STOP_SAMPLING_REASON_CONSENSUS: StopSamplingReason
STOP_SAMPLING_REASON_BUDGET: StopSamplingReason
TRAJECTORY_VERDICT_UNSPECIFIED: TrajectoryVerdict
TRAJECTORY_VERDICT_KEPT: TrajectoryVerdict
TRAJECTORY_VERDICT_STOPPED: TrajectoryVerdict
TRAJECTORY_VERDICT_CUT_OFF: TrajectoryVerdict
FORK_RANKING_UNSPECIFIED: ForkRanking
FORK_RANKING_NEG_LOGPROB: ForkRanking
FORK_RANKING_WINDOW_CONFIDENCE: ForkRanking

class FilterRequest(_message.Message):
    __slots__ = ("forest", "metric", "keep_percent", "window", "tail", "answer", "answer_labels", "zero_variance", "reflection")
    FOREST_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    KEEP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_LABELS_FIELD_NUMBER: _ClassVar[int]
    ZERO_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    forest: _forest_pb2.Forest
    metric: ConfidenceMetric
    keep_percent: float
    window: int
    tail: int
    answer: _forest_pb2.Tensor
    answer_labels: _containers.RepeatedScalarFieldContainer[str]
    zero_variance: bool
    reflection: _reflection_pb2.ReflectRequest
    def __init__(self, forest: _Optional[_Union[_forest_pb2.Forest, _Mapping]] = ..., metric: _Optional[_Union[ConfidenceMetric, str]] = ..., keep_percent: _Optional[float] = ..., window: _Optional[int] = ..., tail: _Optional[int] = ..., answer: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., answer_labels: _Optional[_Iterable[str]] = ..., zero_variance: bool = ..., reflection: _Optional[_Union[_reflection_pb2.ReflectRequest, _Mapping]] = ...) -> None: ...

class FilterResponse(_message.Message):
    __slots__ = ("keep", "metric", "reason", "threshold", "query_keep", "query_reason", "zero_variance", "reflection_spread", "vote_answer", "vote_consensus", "votes_group", "votes_answer", "votes_weight")
    KEEP_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUERY_KEEP_FIELD_NUMBER: _ClassVar[int]
    QUERY_REASON_FIELD_NUMBER: _ClassVar[int]
    ZERO_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_SPREAD_FIELD_NUMBER: _ClassVar[int]
    VOTE_ANSWER_FIELD_NUMBER: _ClassVar[int]
    VOTE_CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    VOTES_GROUP_FIELD_NUMBER: _ClassVar[int]
    VOTES_ANSWER_FIELD_NUMBER: _ClassVar[int]
    VOTES_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    keep: _forest_pb2.Tensor
    metric: _forest_pb2.Tensor
    reason: _forest_pb2.Tensor
    threshold: _forest_pb2.Tensor
    query_keep: _forest_pb2.Tensor
    query_reason: _forest_pb2.Tensor
    zero_variance: _forest_pb2.Tensor
    reflection_spread: _forest_pb2.Tensor
    vote_answer: _forest_pb2.Tensor
    vote_consensus: _forest_pb2.Tensor
    votes_group: _forest_pb2.Tensor
    votes_answer: _forest_pb2.Tensor
    votes_weight: _forest_pb2.Tensor
    def __init__(self, keep: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., metric: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., reason: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., threshold: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., query_keep: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., query_reason: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., zero_variance: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., reflection_spread: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., vote_answer: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., vote_consensus: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., votes_group: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., votes_answer: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., votes_weight: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class WatchOpen(_message.Message):
    __slots__ = ("warmup", "keep_percent", "threshold", "window", "consensus", "budget", "fork_history")
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    KEEP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    FORK_HISTORY_FIELD_NUMBER: _ClassVar[int]
    warmup: int
    keep_percent: float
    threshold: float
    window: int
    consensus: float
    budget: int
    fork_history: int
    def __init__(self, warmup: _Optional[int] = ..., keep_percent: _Optional[float] = ..., threshold: _Optional[float] = ..., window: _Optional[int] = ..., consensus: _Optional[float] = ..., budget: _Optional[int] = ..., fork_history: _Optional[int] = ...) -> None: ...

class TrajectoryStart(_message.Message):
    __slots__ = ("trajectory", "parent", "fork_offset")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FORK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    trajectory: int
    parent: int
    fork_offset: int
    def __init__(self, trajectory: _Optional[int] = ..., parent: _Optional[int] = ..., fork_offset: _Optional[int] = ...) -> None: ...

class TokenChunk(_message.Message):
    __slots__ = ("trajectory", "num_tokens", "topk_logprobs", "confidence")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOPK_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    trajectory: _forest_pb2.Tensor
    num_tokens: _forest_pb2.Tensor
    topk_logprobs: _forest_pb2.Tensor
    confidence: _forest_pb2.Tensor
    def __init__(self, trajectory: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., num_tokens: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., topk_logprobs: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., confidence: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class TrajectoryFinish(_message.Message):
    __slots__ = ("trajectory", "answer")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    trajectory: int
    answer: str
    def __init__(self, trajectory: _Optional[int] = ..., answer: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("open", "starts", "chunk", "finishes")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINISHES_FIELD_NUMBER: _ClassVar[int]
    open: WatchOpen
    starts: _containers.RepeatedCompositeFieldContainer[TrajectoryStart]
    chunk: TokenChunk
    finishes: _containers.RepeatedCompositeFieldContainer[TrajectoryFinish]
    def __init__(self, open: _Optional[_Union[WatchOpen, _Mapping]] = ..., starts: _Optional[_Iterable[_Union[TrajectoryStart, _Mapping]]] = ..., chunk: _Optional[_Union[TokenChunk, _Mapping]] = ..., finishes: _Optional[_Iterable[_Union[TrajectoryFinish, _Mapping]]] = ...) -> None: ...

class StopTrajectory(_message.Message):
    __slots__ = ("trajectory", "token", "window_mean", "threshold")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MEAN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    trajectory: int
    token: int
    window_mean: float
    threshold: float
    def __init__(self, trajectory: _Optional[int] = ..., token: _Optional[int] = ..., window_mean: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class StopSampling(_message.Message):
    __slots__ = ("reason", "answer", "consensus")
    REASON_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    reason: StopSamplingReason
    answer: str
    consensus: float
    def __init__(self, reason: _Optional[_Union[StopSamplingReason, str]] = ..., answer: _Optional[str] = ..., consensus: _Optional[float] = ...) -> None: ...

class WatchSummary(_message.Message):
    __slots__ = ("trajectory", "verdict", "num_tokens", "lowest", "stop_token", "threshold", "answer", "consensus", "vote_labels", "vote_weight", "idle_closed")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOWEST_FIELD_NUMBER: _ClassVar[int]
    STOP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    VOTE_LABELS_FIELD_NUMBER: _ClassVar[int]
    VOTE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IDLE_CLOSED_FIELD_NUMBER: _ClassVar[int]
    trajectory: _forest_pb2.Tensor
    verdict: _forest_pb2.Tensor
    num_tokens: _forest_pb2.Tensor
    lowest: _forest_pb2.Tensor
    stop_token: _forest_pb2.Tensor
    threshold: float
    answer: str
    consensus: float
    vote_labels: _containers.RepeatedScalarFieldContainer[str]
    vote_weight: _forest_pb2.Tensor
    idle_closed: bool
    def __init__(self, trajectory: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., verdict: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., num_tokens: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., lowest: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., stop_token: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., threshold: _Optional[float] = ..., answer: _Optional[str] = ..., consensus: _Optional[float] = ..., vote_labels: _Optional[_Iterable[str]] = ..., vote_weight: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., idle_closed: bool = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("stops", "threshold", "stop_sampling", "summary")
    STOPS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    STOP_SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    stops: _containers.RepeatedCompositeFieldContainer[StopTrajectory]
    threshold: float
    stop_sampling: StopSampling
    summary: WatchSummary
    def __init__(self, stops: _Optional[_Iterable[_Union[StopTrajectory, _Mapping]]] = ..., threshold: _Optional[float] = ..., stop_sampling: _Optional[_Union[StopSampling, _Mapping]] = ..., summary: _Optional[_Union[WatchSummary, _Mapping]] = ...) -> None: ...

class SuggestForksRequest(_message.Message):
    __slots__ = ("forest", "top_n", "ranking", "tail_guard", "window")
    FOREST_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    TAIL_GUARD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    forest: _forest_pb2.Forest
    top_n: int
    ranking: ForkRanking
    tail_guard: int
    window: int
    def __init__(self, forest: _Optional[_Union[_forest_pb2.Forest, _Mapping]] = ..., top_n: _Optional[int] = ..., ranking: _Optional[_Union[ForkRanking, str]] = ..., tail_guard: _Optional[int] = ..., window: _Optional[int] = ...) -> None: ...

class SuggestForksResponse(_message.Message):
    __slots__ = ("root", "node", "offset", "score", "rank")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    root: _forest_pb2.Tensor
    node: _forest_pb2.Tensor
    offset: _forest_pb2.Tensor
    score: _forest_pb2.Tensor
    rank: _forest_pb2.Tensor
    def __init__(self, root: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., node: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., offset: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., score: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., rank: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
