"""reflection_reward (DRO R3) against a per-query numpy float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from treecredit_kernels import reflection_reward
from treecredit_kernels.reflection_reward import ReflectionReward


def reflection_reward_reference(ell, rows, cols, baseline=None, *, power=1.0) -> ReflectionReward:
    """Float64, one query at a time with numpy (ALGORITHMS.md section 7)."""
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


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_baseline", [True, False])
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_matches_reference(backend_name, device, close, seed, with_baseline, power):
    rng = np.random.default_rng(seed)
    Q = int(rng.integers(0, 7))
    G = rng.integers(0, 6, Q)
    L = rng.integers(0, 9, Q)
    ell = -np.abs(rng.normal(size=int((G * L).sum()))) * 3
    if Q:  # one query whose every column is constant: uniform weights, spread 0
        q = int(rng.integers(0, Q))
        e0 = int((G[:q] * L[:q]).sum())
        ell[e0:e0 + G[q] * L[q]] = -1.25
    b = rng.normal(size=int(L.sum())) if with_baseline else None
    got = reflection_reward(
        torch.from_numpy(ell).to(device), torch.from_numpy(G), torch.from_numpy(L),
        None if b is None else torch.from_numpy(b).to(device), power=power,
    )
    ref = reflection_reward_reference(ell, G, L, b, power=power)
    for name in ref._fields:
        close(getattr(got, name), getattr(ref, name), rtol=1e-12, atol=1e-12)


def test_known_values(backend_name, device, close):
    # query 0: G=2, L=2, columns [0, 2] and [1, 1]: sigma = [1, 0], weights = [1, 0]
    # query 1: G=1, L=1: sigma 0, uniform weight 1; query 2: G=2, L=0
    ell = torch.tensor([0.0, 1.0, 2.0, 1.0, 5.0], device=device)
    got = reflection_reward(ell, torch.tensor([2, 1, 2]), torch.tensor([2, 1, 0]),
                            torch.tensor([1.0, 0.0, 0.5], device=device))
    close(got.sigma, torch.tensor([1.0, 0.0, 0.0]), rtol=0, atol=1e-15)
    close(got.weights, torch.tensor([1.0, 0.0, 1.0]), rtol=0, atol=1e-15)
    close(got.reward, torch.tensor([-1.0, 1.0, 4.5, 0.0, 0.0]), rtol=0, atol=1e-15)
    close(got.spread, torch.tensor([1.0, 0.0, 0.0]), rtol=0, atol=0)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        reflection_reward(torch.zeros(5), torch.tensor([2]), torch.tensor([2]))
    with pytest.raises(ValueError):
        reflection_reward(torch.zeros(4), torch.tensor([2]), torch.tensor([2]), torch.zeros(3))


def _rr_module():
    import sys

    return sys.modules["treecredit_kernels.reflection_reward"]


def test_dispatch_runs_the_backends_kernel(backend_name, monkeypatch):
    """The triton path runs the Triton kernel; the torch path does not."""
    mod = _rr_module()
    calls = []
    real = mod._reflection_reward_triton
    monkeypatch.setattr(mod, "_reflection_reward_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    reflection_reward(torch.randn(6), torch.tensor([2, 1]), torch.tensor([2, 2]))
    assert len(calls) == (1 if backend_name == "triton" else 0)


@pytest.mark.parametrize("seed", range(2))
def test_kernel_matches_torch_path(monkeypatch, close, seed):
    """The kernel alone against the torch path: ragged non-power-of-two shapes, tiles smaller than
    the matrices (several row and column tiles per query), empty queries, any power."""
    from treecredit_kernels import backend

    if not (backend.interpreting() or torch.cuda.is_available()):
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    mod = _rr_module()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(50 + seed)
    Q = 5
    G = rng.integers(0, 13, Q)
    L = rng.integers(0, 40, Q)
    G[0], L[1] = 0, 0
    G[2], L[2] = 13, 40  # four row tiles of 4 and three column tiles of 16
    x = torch.from_numpy(rng.normal(size=int((G * L).sum())) * 2 - 3).to(dev)
    b = torch.from_numpy(rng.normal(size=int(L.sum()))).to(dev)
    Gt, Lt = torch.from_numpy(G).to(dev), torch.from_numpy(L).to(dev)
    monkeypatch.setenv("TREECREDIT_BACKEND", "torch")
    for power in (1.0, 0.3):
        for base in (b, None):
            want = reflection_reward(x, Gt, Lt, base, power=power)
            for blocks in ((4, 16), (2, 16), (None, None)):
                got = mod._reflection_reward_triton(x, Gt, Lt, base, power, *blocks)
                for name in want._fields:
                    close(getattr(got, name), getattr(want, name), rtol=1e-13, atol=1e-13)


def test_sizes_that_wrap_in_int64_are_refused():
    """2^32 x 2^32 is 0 in int64: an empty ell must not pass for it."""
    with pytest.raises(ValueError, match="rows\\*cols overflow int64"):
        reflection_reward(torch.zeros(0, dtype=torch.float64), torch.tensor([2**32]), torch.tensor([2**32]))
