from treecredit.v1 import forest_pb2 as _forest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SharedMemoryTensor(_message.Message):
    __slots__ = ("region", "offset", "dtype", "shape")
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    region: str
    offset: int
    dtype: _forest_pb2.DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, region: _Optional[str] = ..., offset: _Optional[int] = ..., dtype: _Optional[_Union[_forest_pb2.DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class TokenStatsRequest(_message.Message):
    __slots__ = ("logits", "shared_logits", "topk_logprobs", "ids", "k", "temperature")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    SHARED_LOGITS_FIELD_NUMBER: _ClassVar[int]
    TOPK_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    logits: _forest_pb2.Tensor
    shared_logits: SharedMemoryTensor
    topk_logprobs: _forest_pb2.Tensor
    ids: _forest_pb2.Tensor
    k: int
    temperature: float
    def __init__(self, logits: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., shared_logits: _Optional[_Union[SharedMemoryTensor, _Mapping]] = ..., topk_logprobs: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., ids: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., k: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class TokenStatsChunk(_message.Message):
    __slots__ = ("logits", "ids", "k", "temperature")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    logits: _forest_pb2.Tensor
    ids: _forest_pb2.Tensor
    k: int
    temperature: float
    def __init__(self, logits: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., ids: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., k: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class TokenStatsResponse(_message.Message):
    __slots__ = ("logprob", "entropy", "confidence", "logsumexp", "entropy_topk")
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOGSUMEXP_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_TOPK_FIELD_NUMBER: _ClassVar[int]
    logprob: _forest_pb2.Tensor
    entropy: _forest_pb2.Tensor
    confidence: _forest_pb2.Tensor
    logsumexp: _forest_pb2.Tensor
    entropy_topk: _forest_pb2.Tensor
    def __init__(self, logprob: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., entropy: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., confidence: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., logsumexp: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., entropy_topk: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...

class RegisterSharedMemoryRequest(_message.Message):
    __slots__ = ("name", "key", "offset", "byte_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    offset: int
    byte_size: int
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ..., offset: _Optional[int] = ..., byte_size: _Optional[int] = ...) -> None: ...

class RegisterSharedMemoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnregisterSharedMemoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnregisterSharedMemoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SharedMemoryStatusRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SharedMemoryRegion(_message.Message):
    __slots__ = ("name", "key", "offset", "byte_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    offset: int
    byte_size: int
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ..., offset: _Optional[int] = ..., byte_size: _Optional[int] = ...) -> None: ...

class SharedMemoryStatusResponse(_message.Message):
    __slots__ = ("regions",)
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedCompositeFieldContainer[SharedMemoryRegion]
    def __init__(self, regions: _Optional[_Iterable[_Union[SharedMemoryRegion, _Mapping]]] = ...) -> None: ...

class TraceConfidence(_message.Message):
    __slots__ = ("leaf", "lowest", "bottom10", "tail", "mean", "num_tokens")
    LEAF_FIELD_NUMBER: _ClassVar[int]
    LOWEST_FIELD_NUMBER: _ClassVar[int]
    BOTTOM10_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    leaf: _forest_pb2.Tensor
    lowest: _forest_pb2.Tensor
    bottom10: _forest_pb2.Tensor
    tail: _forest_pb2.Tensor
    mean: _forest_pb2.Tensor
    num_tokens: _forest_pb2.Tensor
    def __init__(self, leaf: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., lowest: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., bottom10: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., tail: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., mean: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ..., num_tokens: _Optional[_Union[_forest_pb2.Tensor, _Mapping]] = ...) -> None: ...
