"""Confidence from the top-k log-probs an inference engine returns (ALGORITHMS.md section 4).

For each row t of `topk_logprobs` [T, k] (any order):

- ``confidence[t]   = -mean_j l[t, j]``
- ``entropy_topk[t] = -sum_j q_j log q_j`` with ``q = softmax(l[t])`` (the top-k probabilities
  renormalised): an estimate of the entropy, reported under its own name.

Padding (documented choice): ``-inf`` entries are padding (engines pad rows that returned fewer
than k alternatives). They are ignored: the mean runs over the finite entries only, and they
have q = 0 in the entropy. A row with no finite entry (or k = 0) gives confidence = 0 and
entropy_topk = 0, never NaN. +inf and NaN inputs are not supported.

Outputs are float32 [T]; accumulation is fp32 (the input is upcast), the torch backend computes
in float64 and rounds once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from treecredit_kernels import backend

MAX_K = 1024
# The torch path works on blocks of this many rows: its float64 temporaries stay a few MiB whatever T is
# (on the whole array they were about 40 times the float16 input).
TORCH_BLOCK_ROWS = 1 << 14


class TopkConfidence(NamedTuple):
    confidence: torch.Tensor  # float32 [T]
    entropy_topk: torch.Tensor  # float32 [T]


def topk_confidence(topk_logprobs: torch.Tensor) -> TopkConfidence:
    """Confidence and renormalised top-k entropy of each row of `topk_logprobs` [T, k]."""
    x = topk_logprobs
    if x.dim() != 2:
        raise ValueError(f"topk_logprobs must be [T, k], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"topk_logprobs must be floating point, got {x.dtype}")
    T, k = x.shape
    if T == 0 or k == 0:
        z = torch.zeros(T, dtype=torch.float32, device=x.device)
        return TopkConfidence(z, z.clone())
    if backend.select(x.device) == "triton" and k <= MAX_K and x.dtype != torch.float64:
        return _topk_confidence_triton(x)
    return _topk_confidence_torch(x)


def _topk_confidence_torch(x: torch.Tensor) -> TopkConfidence:
    if len(x) > TORCH_BLOCK_ROWS:
        blocks = [_topk_confidence_torch(block) for block in x.split(TORCH_BLOCK_ROWS)]
        return TopkConfidence(*(torch.cat(parts) for parts in zip(*blocks)))
    l = x.double()
    fin = l > float("-inf")
    cnt = fin.sum(-1)
    lz = torch.where(fin, l, 0.0)
    conf = torch.where(cnt > 0, -lz.sum(-1) / cnt.clamp(min=1), 0.0)
    m = torch.where(fin, l, float("-inf")).amax(-1, keepdim=True)
    m = torch.where(m > float("-inf"), m, 0.0)
    d = torch.where(fin, l - m, 0.0)
    e = torch.where(fin, d.exp(), 0.0)
    s = e.sum(-1)
    t = (e * d).sum(-1)
    ent = torch.where(s > 0, s.clamp(min=1e-300).log() - t / s.clamp(min=1e-300), 0.0)
    return TopkConfidence(conf.float(), ent.float())


_kernel = None


def _build_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def _topk_confidence_kernel(
        x_ptr, conf_ptr, ent_ptr, T, K, stride_row,
        BLOCK_T: tl.constexpr, K_PAD: tl.constexpr,
    ):
        NEG: tl.constexpr = float("-inf")
        rows = tl.program_id(0).to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
        cols = tl.arange(0, K_PAD)
        rmask = rows < T
        mask = rmask[:, None] & (cols[None, :] < K)
        l = tl.load(x_ptr + rows[:, None] * stride_row + cols[None, :], mask=mask, other=NEG)
        l = l.to(tl.float32)
        fin = l > NEG
        cnt = tl.sum(fin.to(tl.float32), 1)
        lsum = tl.sum(tl.where(fin, l, 0.0), 1)
        conf = tl.where(cnt > 0, -lsum / tl.maximum(cnt, 1.0), 0.0)
        m = tl.max(l, 1)
        m = tl.where(m > NEG, m, 0.0)
        d = tl.where(fin, l - m[:, None], 0.0)
        e = tl.where(fin, tl.exp(d), 0.0)
        s = tl.sum(e, 1)
        t = tl.sum(e * d, 1)
        ss = tl.where(s > 0, s, 1.0)
        ent = tl.where(s > 0, tl.log(ss) - t / ss, 0.0)
        tl.store(conf_ptr + rows, conf, mask=rmask)
        tl.store(ent_ptr + rows, ent, mask=rmask)

    return _topk_confidence_kernel


def _topk_confidence_triton(x: torch.Tensor, block_t: int | None = None) -> TopkConfidence:
    """Triton path of `topk_confidence`; `block_t` (a power of two) overrides the rows per tile."""
    import triton

    global _kernel
    if _kernel is None:
        _kernel = _build_kernel()
    T, k = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    conf = torch.empty(T, dtype=torch.float32, device=x.device)
    ent = torch.empty_like(conf)
    k_pad = triton.next_power_of_2(k)
    if block_t is None:  # few, large tiles in the interpreter
        block_t = max(1, min(triton.next_power_of_2(T), (65536 if backend.interpreting() else 4096) // k_pad))
    _kernel[(triton.cdiv(T, block_t),)](
        x, conf, ent, T, k, x.stride(0), BLOCK_T=block_t, K_PAD=k_pad, num_warps=4
    )
    return TopkConfidence(conf, ent)
