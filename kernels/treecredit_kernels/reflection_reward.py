"""DRO's reasoning reflection reward R3 (ALGORITHMS.md section 7) over ragged per-query matrices.

Query q has a [G_q, L_q] matrix ell_q (G_q rollouts x L_q reference-answer tokens), stored
row-major; the matrices are concatenated into ``ell`` [sum_q G_q L_q]. ``baseline`` (optional)
concatenates each query's l0_q [L_q].

- ``sigma_j``  = population std over rollouts i of ell_q[i, j]  -> ``sigma`` [sum_q L_q]
- ``w_j``      = sigma_j^p / sum_j sigma_j^p, uniform 1/L_q when every sigma_j^p is 0
                 -> ``weights`` [sum_q L_q]
- ``R3(i)``    = sum_j w_j (ell_q[i, j] - l0_q[j])  (l0 = 0 if not given) -> ``reward`` [sum_q G_q]
- ``spread_q`` = max_j sigma_j -> ``spread`` [Q]

Edge cases (documented choices): L_q = 0 gives spread 0 and R3 = 0 for its rollouts (an empty
sum); G_q = 0 gives sigma = 0 (so uniform weights) and no rewards. ``power`` must be > 0.
Everything is computed and returned in float64 (the data is small; the mean/variance of
log-probabilities keep their precision).

Backends (``backend.select``): "torch" uses vectorised segment ops (index_add / scatter_reduce);
"triton" runs ``_reflection_kernel``, one program per query over [BLOCK_R, BLOCK_C] tiles of its
matrix: per column tile a two-pass mean / population variance over the rows (sigma, sigma^p and
the spread), then the weights, then R3 row sums; three reads of ell_q in all, float64 throughout.
sigma^p is ``exp(p log sigma)`` for p != 1 (a few ulps from torch's pow).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from treecredit_kernels import backend


class ReflectionReward(NamedTuple):
    sigma: torch.Tensor  # float64 [sum L_q]
    weights: torch.Tensor  # float64 [sum L_q]
    reward: torch.Tensor  # float64 [sum G_q]
    spread: torch.Tensor  # float64 [Q]


def reflection_reward(
    ell: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    baseline: torch.Tensor | None = None,
    *,
    power: float = 1.0,
) -> ReflectionReward:
    """R3 rewards, token weights and reflection spread per query; see the module doc."""
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    dev = ell.device
    x = ell.reshape(-1).to(torch.float64)
    G = rows.reshape(-1).to(device=dev, dtype=torch.int64)
    L = cols.reshape(-1).to(device=dev, dtype=torch.int64)
    if G.shape != L.shape:
        raise ValueError("rows and cols must both be [Q]")
    if bool((G < 0).any()) or bool((L < 0).any()):
        raise ValueError("rows and cols must be >= 0")
    Q = G.numel()
    # int64 products and sums of huge sizes wrap (2^32 * 2^32 is 0): check by division, then in float64.
    if bool(((G > 0) & (L > torch.iinfo(torch.int64).max // G.clamp(min=1))).any()) or \
            float((G.double() * L.double()).sum()) >= 2.0**62:
        raise ValueError(f"rows*cols overflow int64; ell has {x.numel()} values")
    sizes = G * L
    if int(sizes.sum()) != x.numel():
        raise ValueError(f"ell has {x.numel()} values, rows*cols sum to {int(sizes.sum())}")
    nL, nG = int(L.sum()), int(G.sum())
    if baseline is not None:
        b = baseline.reshape(-1).to(device=dev, dtype=torch.float64)
        if b.numel() != nL:
            raise ValueError(f"baseline must have sum(cols)={nL} values, got {b.numel()}")
    if backend.select(dev) == "triton" and Q > 0:
        return _reflection_reward_triton(x, G, L, b if baseline is not None else None, float(power))
    qidx = torch.arange(Q, device=dev)
    col0 = torch.cumsum(L, 0) - L  # first global column of each query
    row0 = torch.cumsum(G, 0) - G  # first global row of each query
    # Per element: its query, local flat index, global column and global row.
    eq = torch.repeat_interleave(qidx, sizes)
    local = torch.arange(x.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    Le = L[eq]
    gcol = col0[eq] + local % Le.clamp(min=1)
    grow = row0[eq] + local // Le.clamp(min=1)
    colq = torch.repeat_interleave(qidx, L)  # query of each global column
    Gc = G[colq].to(torch.float64)

    mu = torch.zeros(nL, dtype=torch.float64, device=dev).index_add_(0, gcol, x) / Gc.clamp(min=1)
    dev2 = (x - mu[gcol]) ** 2
    var = torch.zeros(nL, dtype=torch.float64, device=dev).index_add_(0, gcol, dev2) / Gc.clamp(min=1)
    sigma = var.sqrt()
    sp = sigma.pow(power)
    tot = torch.zeros(Q, dtype=torch.float64, device=dev).index_add_(0, colq, sp)
    uniform = 1.0 / L[colq].to(torch.float64)
    weights = torch.where(tot[colq] > 0, sp / tot[colq].clamp(min=1e-300), uniform)

    y = x - b[gcol] if baseline is not None else x
    reward = torch.zeros(nG, dtype=torch.float64, device=dev).index_add_(0, grow, weights[gcol] * y)
    spread = torch.zeros(Q, dtype=torch.float64, device=dev).scatter_reduce_(
        0, colq, sigma, reduce="amax", include_self=True
    )
    return ReflectionReward(sigma, weights, reward, spread)


_kernel = None


def _build_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def _reflection_kernel(
        x_ptr, base_ptr, power_ptr, rows_ptr, cols_ptr, elem_off_ptr, col_off_ptr, row_off_ptr,
        sigma_ptr, weight_ptr, reward_ptr, spread_ptr,
        HAS_BASE: tl.constexpr, POWER_ONE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        q = tl.program_id(0).to(tl.int64)
        G = tl.load(rows_ptr + q)
        L = tl.load(cols_ptr + q)
        e0 = tl.load(elem_off_ptr + q)
        c0 = tl.load(col_off_ptr + q)
        r0 = tl.load(row_off_ptr + q)
        p = tl.load(power_ptr)
        rl = tl.arange(0, BLOCK_R).to(tl.int64)
        cl = tl.arange(0, BLOCK_C).to(tl.int64)
        g_f = tl.maximum(G, 1).to(tl.float64)
        tot = tl.zeros([BLOCK_C], tl.float64)
        spread = tl.zeros([BLOCK_C], tl.float64)
        # Pass 1, per column tile: mean, then population variance around it (two passes).
        for j0 in range(0, L, BLOCK_C):
            cj = j0 + cl
            cm = cj < L
            s1 = tl.zeros([BLOCK_C], tl.float64)
            for i0 in range(0, G, BLOCK_R):
                ri = i0 + rl
                m2 = (ri < G)[:, None] & cm[None, :]
                v = tl.load(x_ptr + e0 + ri[:, None] * L + cj[None, :], mask=m2, other=0.0)
                s1 += tl.sum(v, 0)
            mu = s1 / g_f
            s2 = tl.zeros([BLOCK_C], tl.float64)
            for i0 in range(0, G, BLOCK_R):
                ri = i0 + rl
                m2 = (ri < G)[:, None] & cm[None, :]
                v = tl.load(x_ptr + e0 + ri[:, None] * L + cj[None, :], mask=m2, other=0.0)
                d = tl.where(m2, v - mu[None, :], 0.0)
                s2 += tl.sum(d * d, 0)
            sig = tl.sqrt(s2 / g_f)
            tl.store(sigma_ptr + c0 + cj, sig, mask=cm)
            if POWER_ONE:
                sp = sig
            else:
                sp = tl.where(sig > 0, tl.exp(p * tl.log(tl.where(sig > 0, sig, 1.0))), 0.0)
            tot += tl.where(cm, sp, 0.0)
            spread = tl.maximum(spread, tl.where(cm, sig, 0.0))
        total = tl.sum(tot, 0)
        tl.store(spread_ptr + q, tl.max(spread, 0))
        tl.debug_barrier()  # sigma written by other threads of this program is read below
        # Pass 2: weights (uniform when every sigma^p is 0).
        uniform = 1.0 / tl.maximum(L, 1).to(tl.float64)
        safe_total = tl.where(total > 0, total, 1.0)
        for j0 in range(0, L, BLOCK_C):
            cj = j0 + cl
            cm = cj < L
            sig = tl.load(sigma_ptr + c0 + cj, mask=cm, other=0.0)
            if POWER_ONE:
                sp = sig
            else:
                sp = tl.where(sig > 0, tl.exp(p * tl.log(tl.where(sig > 0, sig, 1.0))), 0.0)
            w = tl.where(total > 0, sp / safe_total, uniform)
            tl.store(weight_ptr + c0 + cj, w, mask=cm)
        tl.debug_barrier()
        # Pass 3: R3(i) = sum_j w_j (ell[i, j] - l0[j]), one row tile at a time.
        for i0 in range(0, G, BLOCK_R):
            ri = i0 + rl
            rm = ri < G
            acc = tl.zeros([BLOCK_R], tl.float64)
            for j0 in range(0, L, BLOCK_C):
                cj = j0 + cl
                cm = cj < L
                w = tl.load(weight_ptr + c0 + cj, mask=cm, other=0.0)
                m2 = rm[:, None] & cm[None, :]
                v = tl.load(x_ptr + e0 + ri[:, None] * L + cj[None, :], mask=m2, other=0.0)
                if HAS_BASE:
                    b = tl.load(base_ptr + c0 + cj, mask=cm, other=0.0)
                    v = tl.where(m2, v - b[None, :], 0.0)
                acc += tl.sum(v * w[None, :], 1)
            tl.store(reward_ptr + r0 + ri, acc, mask=rm)

    return _reflection_kernel


def _reflection_reward_triton(x, G, L, b, power, block_r=None, block_c=None) -> ReflectionReward:
    """Triton path of `reflection_reward`; x float64 [sum G L], G, L int64 [Q >= 1], b float64 or None."""
    import triton

    global _kernel
    if _kernel is None:
        _kernel = _build_kernel()
    dev = x.device
    Q = G.numel()
    nL, nG = int(L.sum()), int(G.sum())
    sizes = G * L
    elem_off = torch.cumsum(sizes, 0) - sizes
    col_off = torch.cumsum(L, 0) - L
    row_off = torch.cumsum(G, 0) - G
    sigma = torch.empty(nL, dtype=torch.float64, device=dev)
    weights = torch.empty(nL, dtype=torch.float64, device=dev)
    reward = torch.empty(nG, dtype=torch.float64, device=dev)
    spread = torch.empty(Q, dtype=torch.float64, device=dev)
    p = torch.tensor([power], dtype=torch.float64, device=dev)
    g_max, l_max = int(G.max()), int(L.max())
    if block_r is None:
        block_r = min(max(triton.next_power_of_2(max(g_max, 1)), 2), 64)
    if block_c is None:  # elements per tile: few, large tiles in the interpreter
        budget = (1 << 16) if backend.interpreting() else 4096
        block_c = min(max(triton.next_power_of_2(max(l_max, 1)), 16), max(16, budget // block_r))
    x = x.contiguous()
    dummy = x if x.numel() else p  # empty arrays still need valid pointers (never accessed)
    _kernel[(Q,)](
        dummy, b.contiguous() if b is not None and b.numel() else dummy, p,
        G.contiguous(), L.contiguous(), elem_off, col_off, row_off,
        sigma if nL else dummy, weights if nL else dummy, reward if nG else dummy, spread,
        HAS_BASE=b is not None, POWER_ONE=power == 1.0, BLOCK_R=block_r, BLOCK_C=block_c,
        num_warps=4,
    )
    return ReflectionReward(sigma, weights, reward, spread)
