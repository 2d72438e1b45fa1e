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
log-probabilities keep their precision). Vectorised segment ops (index_add / scatter_reduce),
the same code on every device; no Triton kernel (the work is tiny next to the forward passes
that produce ell).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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
    sizes = G * L
    if int(sizes.sum()) != x.numel():
        raise ValueError(f"ell has {x.numel()} values, rows*cols sum to {int(sizes.sum())}")
    nL, nG = int(L.sum()), int(G.sum())
    if baseline is not None:
        b = baseline.reshape(-1).to(device=dev, dtype=torch.float64)
        if b.numel() != nL:
            raise ValueError(f"baseline must have sum(cols)={nL} values, got {b.numel()}")
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


def reflection_reward_reference(ell, rows, cols, baseline=None, *, power=1.0) -> ReflectionReward:
    """Float64 reference, one query at a time with numpy (slow; for tests)."""
    import numpy as np

    x = np.asarray(ell, dtype=np.float64)
    b = None if baseline is None else np.asarray(baseline, dtype=np.float64)
    sig, wts, rew, spr = [], [], [], []
    e0 = c0 = 0
    for g, l in zip(np.asarray(rows).tolist(), np.asarray(cols).tolist()):
        m = x[e0:e0 + g * l].reshape(g, l)
        l0 = np.zeros(l) if b is None else b[c0:c0 + l]
        s = m.std(axis=0) if g > 0 else np.zeros(l)
        sp = s ** power
        w = sp / sp.sum() if sp.sum() > 0 else np.full(l, 1.0 / l) if l else np.zeros(0)
        sig.append(s)
        wts.append(w)
        rew.append((m - l0[None, :]) @ w if l else np.zeros(g))
        spr.append(s.max() if l else 0.0)
        e0 += g * l
        c0 += l
    cat = lambda a: torch.from_numpy(np.concatenate(a) if a else np.zeros(0))  # noqa: E731
    return ReflectionReward(cat(sig), cat(wts), cat(rew), torch.tensor(spr, dtype=torch.float64))
