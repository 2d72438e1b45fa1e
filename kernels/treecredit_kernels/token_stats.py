"""Per-token statistics from full logits (ALGORITHMS.md section 4), in one pass over the vocabulary.

For each row t of `logits` [T, V] with z = x[t] / temperature:

- ``logsumexp[t]  = logsumexp_v z[v]``
- ``logprob[t]    = z[ids[t]] - logsumexp[t]``
- ``entropy[t]    = -sum_v p log p``, p = softmax(z)
- ``confidence[t] = -(1/k) sum_{j<=k} log p_(j) = logsumexp[t] - mean of the k largest z``

Masked vocabulary and degenerate rows (documented choices):

- ``-inf`` logits are masked tokens: p = 0 and they contribute 0 to the entropy (0 log 0 = 0).
- k_eff = min(k, number of finite logits in the row). A row with fewer finite entries than k
  (in particular any row when k > V) averages over its finite entries only, so confidence stays
  finite. k must satisfy min(k, V) <= 64.
- A row with no finite logit at all gives logsumexp = -inf, logprob = -inf, entropy = 0,
  confidence = 0: no NaN comes out of finite or -inf input.
- An id outside [0, V) gives logprob = NaN on the triton path (it is never read out of bounds);
  the torch path raises (index error in gather).
- A row with a NaN or +inf logit gives NaN for all four statistics, on both backends (found in the
  same pass; no second read of the logits).

Backends: "triton" runs one program per row that streams the row once in tiles of BLOCK_V, with
an online softmax (running max m, running sum s = sum e^(z-m), running t = sum e^(z-m)(z-m), so
entropy = log s - t/s) and a running top-k of K_PAD = next_pow2(k_eff) slots merged per tile by
repeated max + mask, only for the elements of the tile above the current k-th value. Accumulation
is fp32; no [T, V] fp32 copy is made; memory beyond the input is the four [T] outputs.
"torch" processes blocks of rows so that the fp32 temporaries stay under `chunk_bytes`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from treecredit_kernels import backend

MAX_K = 64
# Per-chunk budget for the fp32 temporaries of the torch backend. Small enough to stay cache
# friendly on CPU (and far below a [T, V] fp32 copy), large enough to amortise per-op overhead.
DEFAULT_CHUNK_BYTES = 8 << 20


class TokenStats(NamedTuple):
    logprob: torch.Tensor  # float32 [T]
    entropy: torch.Tensor  # float32 [T]
    confidence: torch.Tensor  # float32 [T]
    logsumexp: torch.Tensor  # float32 [T], of logits / temperature


def _check(logits: torch.Tensor, ids: torch.Tensor, k: int, temperature: float) -> int:
    if logits.dim() != 2:
        raise ValueError(f"logits must be [T, V], got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"logits must be float32, float16 or bfloat16, got {logits.dtype}")
    if ids.shape != logits.shape[:1]:
        raise ValueError(f"ids must be [T]={logits.shape[0]}, got shape {tuple(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ids must be int64 or int32, got {ids.dtype}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k_eff = min(k, logits.shape[1])
    if k_eff > MAX_K:
        raise ValueError(f"min(k, V) must be <= {MAX_K}, got {k_eff}")
    return k_eff


def token_stats(
    logits: torch.Tensor, ids: torch.Tensor, *, k: int = 20, temperature: float = 1.0
) -> TokenStats:
    """Statistics of each row of `logits` [T, V] for the sampled token `ids` [T]; see module doc."""
    k_eff = _check(logits, ids, k, temperature)
    T, V = logits.shape
    if T == 0 or V == 0:
        if V == 0 and T > 0:
            raise ValueError("logits has an empty vocabulary")
        e = torch.empty(0, dtype=torch.float32, device=logits.device)
        return TokenStats(e, e.clone(), e.clone(), e.clone())
    if backend.select(logits.device) == "triton":
        return _token_stats_triton(logits, ids, k_eff, float(temperature))
    return _token_stats_torch(logits, ids, k_eff, float(temperature))


# --------------------------------------------------------------------------- torch backend


def _token_stats_torch(
    logits: torch.Tensor,
    ids: torch.Tensor,
    k_eff: int,
    temperature: float,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> TokenStats:
    T, V = logits.shape
    dev = logits.device
    lp = torch.empty(T, dtype=torch.float32, device=dev)
    ent = torch.empty_like(lp)
    conf = torch.empty_like(lp)
    lse_out = torch.empty_like(lp)
    rows = max(1, chunk_bytes // (V * 4))
    ids = ids.long()
    neg_inf = torch.tensor(float("-inf"), device=dev)
    for r0 in range(0, T, rows):
        r1 = min(T, r0 + rows)
        z = logits[r0:r1].float()  # a view for fp32 input: never modified in place
        if temperature != 1.0:
            z = z / temperature
        lse = torch.logsumexp(z, dim=-1)
        finite_row = lse > float("-inf")
        zy = z.gather(1, ids[r0:r1, None]).squeeze(1)
        lp[r0:r1] = torch.where(finite_row, zy - lse, neg_inf)
        lse_out[r0:r1] = lse
        logp = z - lse[:, None]  # NaN on fully masked rows, -inf on masked entries
        p = logp.exp()
        # 0 * -inf = NaN on masked entries (and whole masked rows): nansum counts them as 0.
        ent[r0:r1] = torch.nansum(p.mul_(logp), dim=-1).neg_()
        del logp, p
        top = torch.topk(z, k_eff, dim=-1, sorted=False).values
        fin = top > float("-inf")
        cnt = fin.sum(-1)
        tsum = torch.where(fin, top, 0.0).sum(-1)
        conf[r0:r1] = torch.where(cnt > 0, lse - tsum / cnt.clamp(min=1), 0.0)
        poisoned = lse.isnan() | (lse == float("inf"))  # exactly the rows with a NaN or +inf logit
        for out in (lp, ent, conf, lse_out):
            out[r0:r1].masked_fill_(poisoned, float("nan"))
    return TokenStats(lp, ent, conf, lse_out)


# --------------------------------------------------------------------------- triton backend

_kernel = None


def _build_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def _token_stats_kernel(
        x_ptr,
        ids_ptr,
        lp_ptr,
        ent_ptr,
        conf_ptr,
        lse_ptr,
        V,
        stride_row,
        tau,
        K,
        BLOCK_V: tl.constexpr,
        K_PAD: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        base = x_ptr + row * stride_row
        offs = tl.arange(0, BLOCK_V)
        kofs = tl.arange(0, K_PAD)
        active = kofs < K
        NEG: tl.constexpr = float("-inf")
        POS: tl.constexpr = float("inf")
        top = tl.full([K_PAD], NEG, tl.float32)
        m = tl.max(tl.full([K_PAD], NEG, tl.float32), 0)
        s = tl.sum(tl.zeros([K_PAD], tl.float32), 0)
        t = tl.sum(tl.zeros([K_PAD], tl.float32), 0)
        poisoned = tl.sum(tl.zeros([K_PAD], tl.int32), 0)  # NaN or +inf logits seen in the row
        for start in range(0, V, BLOCK_V):
            cols = start + offs
            z = tl.load(base + cols, mask=cols < V, other=NEG).to(tl.float32) / tau
            poisoned += tl.sum(((z != z) | (z == POS)).to(tl.int32), 0)
            m_new = tl.maximum(m, tl.max(z, 0))
            m_safe = tl.where(m_new > NEG, m_new, 0.0)
            alpha = tl.where(m > NEG, tl.exp(m - m_safe), 0.0)
            dm = tl.where(m > NEG, m - m_safe, 0.0)
            fz = z > NEG
            d = tl.where(fz, z - m_safe, 0.0)
            e = tl.where(fz, tl.exp(d), 0.0)
            ed = e * d
            t = alpha * (t + dm * s) + tl.sum(ed, 0)
            s = alpha * s + tl.sum(e, 0)
            m = m_new
            # Running top-k: only elements above the current k-th largest can enter.
            rmin = tl.min(tl.where(active, top, POS), 0)
            n = tl.minimum(tl.sum((z > rmin).to(tl.int32), 0), K)
            cand = z
            for _ in range(0, n):
                v = tl.max(cand, 0)
                idx = tl.min(tl.where(cand == v, offs, BLOCK_V), 0)
                cand = tl.where(offs == idx, NEG, cand)
                cur = tl.min(tl.where(active, top, POS), 0)
                pos = tl.min(tl.where(active & (top == cur), kofs, K_PAD), 0)
                pos = tl.where(v > cur, pos, K_PAD)
                top = tl.where(kofs == pos, v, top)
        finite = m > NEG
        logs = tl.log(tl.where(s > 0, s, 1.0))
        lse = tl.where(finite, m + logs, NEG)
        ent = tl.where(s > 0, logs - t / tl.where(s > 0, s, 1.0), 0.0)
        y = tl.load(ids_ptr + row).to(tl.int64)
        ok = (y >= 0) & (y < V)
        zy = tl.load(base + y, mask=ok, other=float("nan")).to(tl.float32) / tau
        lp = tl.where(finite, zy - tl.where(finite, lse, 0.0), NEG)
        lp = tl.where(ok, lp, float("nan"))
        fin = active & (top > NEG)
        cnt = tl.sum(fin.to(tl.float32), 0)
        tsum = tl.sum(tl.where(fin, top, 0.0), 0)
        conf = tl.where(cnt > 0, lse - tsum / tl.maximum(cnt, 1.0), 0.0)
        nan = float("nan")
        lp = tl.where(poisoned > 0, nan, lp)
        ent = tl.where(poisoned > 0, nan, ent)
        conf = tl.where(poisoned > 0, nan, conf)
        lse = tl.where(poisoned > 0, nan, lse)
        tl.store(lp_ptr + row, lp)
        tl.store(ent_ptr + row, ent)
        tl.store(conf_ptr + row, conf)
        tl.store(lse_ptr + row, lse)

    return _token_stats_kernel


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _token_stats_triton(
    logits: torch.Tensor, ids: torch.Tensor, k_eff: int, temperature: float, block_v: int | None = None
) -> TokenStats:
    """Triton path of `token_stats`; `block_v` (a power of two >= K_PAD) overrides the vocabulary tile."""
    global _kernel
    if _kernel is None:
        _kernel = _build_kernel()
    T, V = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    ids = ids.contiguous()
    dev = logits.device
    lp = torch.empty(T, dtype=torch.float32, device=dev)
    ent = torch.empty_like(lp)
    conf = torch.empty_like(lp)
    lse = torch.empty_like(lp)
    k_pad = max(2, _next_pow2(k_eff))
    warps = 4 if backend.interpreting() else 8
    if block_v is None:  # few, large tiles in the interpreter: it is slow
        block_v = max(min(_next_pow2(V), 1 << 15 if backend.interpreting() else 4096), k_pad)
    elif block_v < k_pad or block_v & (block_v - 1):
        raise ValueError(f"block_v must be a power of two >= {k_pad}, got {block_v}")
    _kernel[(T,)](
        logits, ids, lp, ent, conf, lse,
        V, logits.stride(0), temperature, k_eff,
        BLOCK_V=block_v, K_PAD=k_pad, num_warps=warps,
    )
    return TokenStats(lp, ent, conf, lse)
