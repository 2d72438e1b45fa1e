"""tree_window_confidence on random forests against a reference that materialises every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from treecredit_kernels import path_window_means, tree_window_confidence
from treecredit_kernels.tree_window_confidence import WindowConfidence


def tree_window_confidence_reference(confidence, node_offsets, parent, leaves, *, window=2048, tail=2048):
    """Float64, materialising every trajectory (ALGORITHMS.md section 5)."""
    c = np.asarray(confidence, dtype=np.float64)
    off = np.asarray(node_offsets, dtype=np.int64)
    par = np.asarray(parent, dtype=np.int64)
    rows = []
    for leaf in np.asarray(leaves, dtype=np.int64):
        path, n = [], int(leaf)
        while n >= 0:
            path.append(n)
            n = int(par[n])
        x = np.concatenate([c[off[n]:off[n + 1]] for n in reversed(path)])
        T = len(x)
        if T == 0:
            rows.append((np.nan,) * 4 + (0,))
            continue
        if T < window:
            groups = np.array([x.mean()])
        else:
            groups = np.array([x[i - window:i].sum() / window for i in range(window, T + 1)])
        m = max(1, int(np.floor(0.1 * len(groups))))
        rows.append((groups.min(), np.sort(groups)[:m].mean(), x[T - min(T, tail):].mean(), x.mean(), T))
    a = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return WindowConfidence(*(torch.from_numpy(a[:, i].copy()) for i in range(4)),
                            torch.from_numpy(a[:, 4].astype(np.int64)))


def random_forest(rng, n_nodes, max_len, p_root=0.1, p_empty=0.2):
    par = np.array([-1 if i == 0 or rng.random() < p_root else int(rng.integers(0, i)) for i in range(n_nodes)],
                   dtype=np.int64)
    ln = rng.integers(0, max_len + 1, n_nodes)
    ln[rng.random(n_nodes) < p_empty] = 0
    off = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
    c = (rng.random(int(off[-1])) * 10).astype(np.float32)
    leaf = np.ones(n_nodes, bool)
    leaf[par[par >= 0]] = False
    return c, off, par, np.nonzero(leaf)[0].astype(np.int64)


def run(close, device, c, off, par, leaves, W, Wt):
    got = tree_window_confidence(torch.from_numpy(c).to(device), torch.from_numpy(off), torch.from_numpy(par),
                                 torch.from_numpy(leaves), window=W, tail=Wt)
    ref = tree_window_confidence_reference(c, off, par, leaves, window=W, tail=Wt)
    for name in ("lowest", "bottom10", "tail", "mean"):
        assert getattr(got, name).dtype == torch.float64
        close(getattr(got, name), getattr(ref, name), rtol=1e-12, atol=1e-11)
    assert torch.equal(got.num_tokens.cpu(), ref.num_tokens)


@pytest.mark.parametrize("seed", range(12))
def test_random_forests(backend_name, device, close, seed):
    rng = np.random.default_rng(seed)
    c, off, par, leaves = random_forest(rng, int(rng.integers(1, 60)), int(rng.integers(0, 15)))
    T_max = 60
    for W, Wt in [(1, 1), (int(rng.integers(2, 12)), int(rng.integers(1, 30))), (T_max * 20, 3), (7, T_max * 20)]:
        run(close, device, c, off, par, leaves, W, Wt)
    # leaves in any order, repeated, and internal nodes as path ends
    ends = rng.integers(0, len(par), 10)
    run(close, device, c, off, par, ends, 5, 4)


def test_deep_chain_and_long_windows(backend_name, device, close):
    """Depth 300 (many binary-lifting levels); windows that cross dozens of nodes."""
    rng = np.random.default_rng(5)
    n = 300
    par = np.arange(-1, n - 1, dtype=np.int64)
    par[150] = 20  # a branch
    ln = rng.integers(0, 6, n)
    off = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
    c = rng.random(int(off[-1])).astype(np.float32)
    leaves = np.array([149, n - 1, 20, 0], dtype=np.int64)
    for W in (1, 37, 128, 400, 5000):
        run(close, device, c, off, par, leaves, W, 97)


def test_empty_trajectories(backend_name, device, close):
    off = np.array([0, 0, 0, 3], dtype=np.int64)
    par = np.array([-1, 0, 0], dtype=np.int64)
    c = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    got = tree_window_confidence(torch.from_numpy(c), torch.from_numpy(off), torch.from_numpy(par),
                                 torch.tensor([1, 2]), window=2, tail=2)
    assert torch.isnan(got.lowest[0]) and torch.isnan(got.bottom10[0]) and torch.isnan(got.mean[0])
    assert torch.isnan(got.tail[0]) and got.num_tokens.tolist() == [0, 3]
    close(got.lowest[1:], torch.tensor([1.5]), rtol=0, atol=1e-15)
    close(got.bottom10[1:], torch.tensor([1.5]), rtol=0, atol=1e-15)
    close(got.tail[1:], torch.tensor([3.0]), rtol=0, atol=1e-15)
    close(got.mean[1:], torch.tensor([7 / 3], dtype=torch.float64), rtol=0, atol=1e-15)
    none = tree_window_confidence(torch.zeros(0), torch.zeros(1, dtype=torch.long),
                                  torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert all(t.numel() == 0 for t in none)


def path_window_means_reference(confidence, node_offsets, parent, *, window):
    """Per value: the mean of the last min(window, p + 1) values of its path ending at it, path by path."""
    c = np.asarray(confidence, dtype=np.float64)
    out = np.full(len(c), np.nan)
    for n in range(len(parent)):
        path, m = [], n
        while m >= 0:
            path.append(m)
            m = int(parent[m])
        x = np.concatenate([c[node_offsets[m]:node_offsets[m + 1]] for m in reversed(path)])
        own = node_offsets[n + 1] - node_offsets[n]
        for k in range(own):
            p = len(x) - own + k
            out[node_offsets[n] + k] = x[max(0, p + 1 - window):p + 1].mean()
    return torch.from_numpy(out)


@pytest.mark.parametrize("seed", range(4))
def test_path_window_means(backend_name, device, close, seed):
    rng = np.random.default_rng(40 + seed)
    c, off, par, _ = random_forest(rng, int(rng.integers(1, 40)), int(rng.integers(0, 12)))
    for W in (1, 3, int(rng.integers(4, 30)), 1000):
        got = path_window_means(torch.from_numpy(c).to(device), torch.from_numpy(off), torch.from_numpy(par),
                                window=W)
        assert got.dtype == torch.float64
        close(got, path_window_means_reference(c, off, par, window=W), rtol=1e-12, atol=1e-11)


def test_over_many_tiles(monkeypatch, close):
    """tree_window_confidence and path_window_means on the Triton kernel with tiles of 16 tokens."""
    from treecredit_kernels import backend

    if not (backend.interpreting() or torch.cuda.is_available()):
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    mod = _twc_module()
    real = mod._window_groups_triton
    monkeypatch.setattr(mod, "_window_groups_triton", lambda *a: real(*a, block=16))
    monkeypatch.setenv("TREECREDIT_BACKEND", "triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(77)
    c, off, par, leaves = random_forest(rng, 40, 12, p_root=0.05)
    assert len(c) >= 3 * 16
    for W in (2, 7, 40):
        run(close, dev, c, off, par, leaves, W, 5)
        got = path_window_means(torch.from_numpy(c).to(dev), torch.from_numpy(off), torch.from_numpy(par), window=W)
        close(got, path_window_means_reference(c, off, par, window=W), rtol=1e-12, atol=1e-11)


def test_bottom10_chunking(monkeypatch, close):
    """Trajectories split across several bottom10 chunks give the same values."""
    import sys

    mod = sys.modules["treecredit_kernels.tree_window_confidence"]

    rng = np.random.default_rng(9)
    c, off, par, leaves = random_forest(rng, 80, 20, p_root=0.05)
    monkeypatch.setattr(mod, "_BOTTOM_CHUNK", 7)
    run(close, "cpu", c, off, par, leaves, 4, 9)


def test_rejects_bad_trees():
    with pytest.raises(ValueError):
        tree_window_confidence(torch.zeros(2), torch.tensor([0, 1, 2]), torch.tensor([-1, 1]), torch.tensor([1]))
    with pytest.raises(ValueError):
        tree_window_confidence(torch.zeros(2), torch.tensor([0, 1, 3]), torch.tensor([-1, 0]), torch.tensor([1]))


def _twc_module():
    import sys

    return sys.modules["treecredit_kernels.tree_window_confidence"]


def test_dispatch_runs_the_backends_kernel(backend_name, monkeypatch):
    """The public function runs the Triton kernel on the triton path and the torch code otherwise."""
    mod = _twc_module()
    calls = []
    for name in ("_window_groups_triton", "_window_groups_torch"):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    rng = np.random.default_rng(3)
    c, off, par, leaves = random_forest(rng, 20, 8)
    tree_window_confidence(torch.from_numpy(c), torch.from_numpy(off), torch.from_numpy(par),
                           torch.from_numpy(leaves), window=4, tail=4)
    assert calls == [f"_window_groups_{backend_name}"]


def random_segments(rng, n_seg, max_len, W):
    """Random inputs for window_groups: segments (some empty), positions, bases, far values."""
    ln = rng.integers(0, max_len + 1, n_seg)
    ln[rng.random(n_seg) < 0.2] = 0
    off = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
    v = rng.normal(size=int(off[-1])) * 5  # negative values too (float atomic min of both signs)
    prefix = np.concatenate([[0.0], np.cumsum(v)])
    pos = rng.integers(0, 3 * W + 2, n_seg).astype(np.int64)
    base = rng.normal(size=n_seg) * 50
    k0 = np.maximum(W - 1 - pos, 0)
    cnt = np.maximum(np.minimum(ln, W - 1) - k0, 0)
    far_off = (np.cumsum(cnt) - cnt).astype(np.int64)
    far = rng.normal(size=int(cnt.sum())) * 50
    return tuple(torch.from_numpy(a) for a in (prefix, off, base, pos, far, far_off))


@pytest.mark.parametrize("seed", range(3))
def test_window_groups_kernel_matches_torch(seed):
    """The Triton kernel alone against the torch implementation of the same contract: ragged and
    non-power-of-two sizes, segments spanning several tiles, empty segments; bit-identical."""
    from treecredit_kernels import backend

    if not (backend.interpreting() or torch.cuda.is_available()):
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    mod = _twc_module()
    rng = np.random.default_rng(100 + seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for W in (1, 2, int(rng.integers(3, 20)), 1000):
        args = random_segments(rng, int(rng.integers(30, 40)), int(rng.integers(20, 70)), W)
        args = tuple(a.to(dev) for a in args)
        assert args[0].numel() - 1 >= 3 * 16  # three tiles of 16 or more
        want = mod._window_groups_torch(*args, W)
        for block in (16, None):  # several tiles: segment runs cut by tile edges
            got = mod._window_groups_triton(*args, W, block=block)
            for g, r in zip(got, want):
                assert g.dtype == torch.float64 and torch.equal(g.cpu(), r.cpu()), (W, block)


def test_window_groups_empty_and_all_empty_segments(backend_name):
    mod = _twc_module()
    z = torch.zeros(0, dtype=torch.float64)
    zi = torch.zeros(0, dtype=torch.int64)
    out, smin = mod.window_groups(torch.zeros(1, dtype=torch.float64), torch.zeros(4, dtype=torch.int64),
                                  torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.int64), z,
                                  torch.zeros(3, dtype=torch.int64), 3)
    assert out.numel() == 0 and torch.equal(smin, torch.full((3,), float("inf"), dtype=torch.float64))
    out, smin = mod.window_groups(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.int64), z, zi,
                                  z, zi, 3)
    assert out.numel() == 0 and smin.numel() == 0
