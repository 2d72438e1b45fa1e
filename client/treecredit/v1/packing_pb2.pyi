from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LossAggMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOSS_AGG_MODE_UNSPECIFIED: _ClassVar[LossAggMode]
    LOSS_AGG_MODE_TOKEN_MEAN: _ClassVar[LossAggMode]
    LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM: _ClassVar[LossAggMode]
    LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN: _ClassVar[LossAggMode]
    LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM_NORM: _ClassVar[LossAggMode]
LOSS_AGG_MODE_UNSPECIFIED: LossAggMode
LOSS_AGG_MODE_TOKEN_MEAN: LossAggMode
LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM: LossAggMode
LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN: LossAggMode
LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM_NORM: LossAggMode

class PackOptions(_message.Message):
    __slots__ = ("loss_agg_mode", "max_response_length", "microbatch_tokens", "align")
    LOSS_AGG_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MICROBATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ALIGN_FIELD_NUMBER: _ClassVar[int]
    loss_agg_mode: LossAggMode
    max_response_length: int
    microbatch_tokens: int
    align: int
    def __init__(self, loss_agg_mode: _Optional[_Union[LossAggMode, str]] = ..., max_response_length: _Optional[int] = ..., microbatch_tokens: _Optional[int] = ..., align: _Optional[int] = ...) -> None: ...

class PackLayout(_message.Message):
    __slots__ = ("microbatch_offsets", "microbatch_tokens", "node", "owned", "start", "previous", "position", "subtree_end")
    MICROBATCH_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    MICROBATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    OWNED_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SUBTREE_END_FIELD_NUMBER: _ClassVar[int]
    microbatch_offsets: _forest_pb2.Tensor
    microbatch_tokens: _forest_pb2.Tensor
    node: _forest_pb2.Tensor
    owned: _forest_pb2.Tensor
    start: _forest_pb2.Tensor
    previous: _forest_pb2.Tensor
    position: _forest_pb2.Tensor
    subtree_end: _forest_pb2.Tensor
    def __init__(self, microbatch_offsets: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., microbatch_tokens: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., node: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., owned: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., start: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., previous: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., position: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., subtree_end: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PackResponse(_message.Message):
    __slots__ = ("layout", "weight", "advantage_pos", "advantage_neg", "tool_call_advantage_pos", "tool_call_advantage_neg")
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ADVANTAGE_POS_FIELD_NUMBER: _ClassVar[int]
    ADVANTAGE_NEG_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ADVANTAGE_POS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ADVANTAGE_NEG_FIELD_NUMBER: _ClassVar[int]
    layout: PackLayout
    weight: _forest_pb2.Tensor
    advantage_pos: _forest_pb2.Tensor
    advantage_neg: _forest_pb2.Tensor
    tool_call_advantage_pos: _forest_pb2.Tensor
    tool_call_advantage_neg: _forest_pb2.Tensor
    def __init__(self, layout: _Optional[_Union[PackLayout, _Mapping]] = ..., weight: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., advantage_pos: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., advantage_neg: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tool_call_advantage_pos: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tool_call_advantage_neg: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
