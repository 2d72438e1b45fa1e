from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
