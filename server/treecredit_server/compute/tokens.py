"""Per-token statistics (ALGORITHMS.md section 4) on validated arrays: the `token_stats` and `topk_confidence`
kernels, on the GPU when there is one. Knows nothing of protobuf or gRPC; torch and the kernels are imported
inside the functions that call them.

Arrays arrive as read-only views of request bytes, or of a shared-memory region that `compute` maps for the
computation, and are handed to torch without a copy (`tensors.as_tensor`).
bfloat16 logits arrive as their raw uint16 words and are viewed as torch.bfloat16, never widened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from treecredit_server.compute.tensors import as_tensor
from treecredit_server.shared_memory import SharedMemoryRegistry

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_K = 20
MAX_K = 64


@dataclass(frozen=True)
class LogitsInput:
    """Logits `[T, V]` (float32, float16, or bfloat16 as uint16 words when `bfloat16`) and sampled `ids [T]`."""

    logits: np.ndarray
    bfloat16: bool
    ids: np.ndarray  # int32 | int64, each in [0, V)
    k: int = DEFAULT_K
    temperature: float = 1.0


@dataclass(frozen=True)
class SharedLogitsInput:
    """Logits `[T, V]` of `dtype` in bytes [offset, offset + T V itemsize) of the registered shared-memory region
    `region`, read for the duration of the computation; the rest as in `LogitsInput`."""

    region: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, int]
    bfloat16: bool
    ids: np.ndarray
    k: int = DEFAULT_K
    temperature: float = 1.0
    field: str = "shared_logits"  # the request's name for it, in errors

    def logits(self, view: memoryview) -> LogitsInput:
        return LogitsInput(np.frombuffer(view, self.dtype).reshape(self.shape), self.bfloat16, self.ids, self.k,
                           self.temperature)


@dataclass(frozen=True)
class TopkInput:
    topk_logprobs: np.ndarray  # float [T, k], no NaN or +inf


@dataclass(frozen=True)
class Stats:
    """float32 `[T]` each; from logits the first four, from top-k log-probs confidence and entropy_topk."""

    confidence: np.ndarray
    logprob: np.ndarray | None = None
    entropy: np.ndarray | None = None
    logsumexp: np.ndarray | None = None
    entropy_topk: np.ndarray | None = None


def check_device(device: str) -> str:
    """`device` if it is one of DEVICES; an explicit "cuda" must be available (checked at startup)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and resolve_device(device) != "cuda":
        raise ValueError("device is cuda but torch sees no CUDA device")
    return device


@functools.cache
def resolve_device(device: str) -> str:
    """"cuda" or "cpu": where computations on `device` ("auto", "cpu" or "cuda") run."""
    if device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute(job: LogitsInput | SharedLogitsInput | TopkInput, device: str = "auto",
            shared_memory: SharedMemoryRegistry | None = None) -> Stats:
    """The statistics of `job`, computed on `device` ("auto", "cpu" or "cuda"); results are on the host. Shared
    logits are read from `shared_memory`, the region mapped while they are computed on."""
    import torch
    from treecredit_kernels import token_stats, topk_confidence

    if isinstance(job, SharedLogitsInput):
        nbytes = job.dtype.itemsize * job.shape[0] * job.shape[1]
        return shared_memory.read(job.region, job.offset, nbytes, job.field,
                                  lambda view: compute(job.logits(view), device), alignment=job.dtype.itemsize)
    where = resolve_device(device)
    if isinstance(job, TopkInput):
        result = topk_confidence(as_tensor(job.topk_logprobs).to(where))
        return Stats(**{name: _host(value) for name, value in result._asdict().items()})
    logits = as_tensor(job.logits.view(np.int16) if job.bfloat16 else job.logits)
    if job.bfloat16:
        logits = logits.view(torch.bfloat16)
    result = token_stats(logits.to(where), as_tensor(job.ids).to(where), k=job.k, temperature=job.temperature)
    return Stats(**{name: _host(value) for name, value in result._asdict().items()})


def concatenate(parts: list[Stats]) -> Stats:
    """The statistics of consecutive row blocks, joined in order (at least one part)."""
    joined = {}
    for name in Stats.__dataclass_fields__:
        values = [getattr(part, name) for part in parts]
        joined[name] = None if values[0] is None else np.concatenate(values)
    return Stats(**joined)


def _host(tensor) -> np.ndarray:
    return tensor.cpu().numpy()
