"""token_stats on both backends against a float64 reference computed from the same rounded inputs."""

from __future__ import annotations

import pytest
import torch

from treecredit_kernels import token_stats
from treecredit_kernels.token_stats import TokenStats

EPS32 = 2.0**-23


def token_stats_reference(
    logits: torch.Tensor, ids: torch.Tensor, *, k: int = 20, temperature: float = 1.0
) -> TokenStats:
    """Float64, row by row and straight from the definitions (ALGORITHMS.md section 4)."""
    T, V = logits.shape
    out = torch.zeros(4, T, dtype=torch.float64)
    for r in range(T):
        z = logits[r].double().cpu() / temperature
        finite = z[z > float("-inf")]
        if finite.numel() == 0:
            out[:, r] = torch.tensor([float("-inf"), 0.0, 0.0, float("-inf")], dtype=torch.float64)
            continue
        lse = torch.logsumexp(z, 0)
        p = torch.softmax(z, 0)
        ent = -torch.special.xlogy(p, p).sum()
        kk = min(k, finite.numel())
        conf = lse - torch.sort(finite, descending=True).values[:kk].mean()
        y = int(ids[r])
        out[:, r] = torch.stack([z[y] - lse, ent, conf, lse])
    return TokenStats(out[0], out[1], out[2], out[3])


def make_logits(T, V, dtype, seed, *, scale=3.0, mask_frac=0.0, ties=False, extreme=False):
    g = torch.Generator().manual_seed(seed)
    if ties:
        x = torch.randint(-3, 4, (T, V), generator=g).float()
    elif extreme:
        x = (torch.rand(T, V, generator=g) * 2 - 1) * 1e4
        x[:, :: max(1, V // 7)] = 1e4  # a few exact ties at the top
    else:
        x = torch.randn(T, V, generator=g) * scale
    if mask_frac:
        x[torch.rand(T, V, generator=g) < mask_frac] = float("-inf")
    ids = torch.randint(0, V, (T,), generator=g)
    return x.to(dtype), ids


def check(close, logits, ids, k, temperature, got=None):
    got = token_stats(logits, ids, k=k, temperature=temperature) if got is None else got
    ref = token_stats_reference(logits.cpu(), ids.cpu(), k=k, temperature=temperature)
    z = logits.cpu().double() / temperature
    zmax = torch.where(torch.isinf(z), 0.0, z).abs().amax(-1) if z.numel() else torch.zeros(0)
    scale = 16 * EPS32 * (1 + zmax)  # fp32 rounding of |z|-sized values (lse, z_y, top-k mean)
    for name in ("logsumexp", "logprob", "confidence"):
        close(getattr(got, name), getattr(ref, name), rtol=1e-5, atol=1e-6 + scale)
    close(got.entropy, ref.entropy, rtol=1e-5, atol=2e-5 + scale)
    for t in got:
        assert t.dtype == torch.float32 and t.device == logits.device


CASES = [
    # T, V, dtype, k, temperature, options
    (5, 1000, torch.float32, 20, 1.0, {}),
    (3, 4097, torch.float16, 1, 0.7, {}),
    (2, 32003, torch.bfloat16, 64, 1.3, {}),
    (4, 50, torch.float32, 100, 1.0, {}),  # k > V
    (3, 7, torch.bfloat16, 20, 1.0, {}),  # k > V, tiny V
    (4, 2000, torch.float32, 20, 1.0, {"extreme": True}),
    (3, 2000, torch.float16, 5, 1.0, {"scale": 8.0}),
    (6, 3000, torch.float32, 20, 1.0, {"mask_frac": 0.3}),
    (4, 5000, torch.bfloat16, 33, 2.0, {"ties": True}),
    (1, 1, torch.float32, 1, 1.0, {}),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"T{c[0]}V{c[1]}{str(c[2])[6:]}k{c[3]}")
def test_token_stats_matches_reference(backend_name, device, close, case, seed):
    T, V, dtype, k, tau, opts = case
    logits, ids = make_logits(T, V, dtype, seed * 1000 + V, **opts)
    check(close, logits.to(device), ids.to(device), k, tau)


def test_masked_rows(backend_name, device, close):
    """Rows with fewer finite entries than k, a fully masked row, and ids on masked entries."""
    logits, ids = make_logits(5, 1500, torch.float32, 7, mask_frac=0.5)
    logits[0, 3:] = float("-inf")  # 3 finite entries < k
    logits[1] = float("-inf")  # nothing finite
    logits[2, 1400:] = float("-inf")
    ids[2] = 1450  # sampled a masked token: logprob -inf
    logits[3, :1499] = float("-inf")  # one finite entry, at the end of the last tile
    logits[3, 1499] = 2.5
    ids[3] = 1499
    got = token_stats(logits.to(device), ids.to(device), k=20)
    assert got.logsumexp[1] == float("-inf") and got.logprob[1] == float("-inf")
    assert got.entropy[1] == 0 and got.confidence[1] == 0
    assert got.logprob[2] == float("-inf")
    assert got.entropy[3] == 0 and got.confidence[3] == 0 and got.logprob[3] == 0
    check(close, logits.to(device), ids.to(device), 20, 1.0)



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nan_or_inf_logits_give_nan_statistics(backend_name, device, close, dtype):
    """A NaN or +inf logit anywhere in a row (first tile, last entry) makes all four of its statistics NaN on both
    backends; the other rows are untouched. (The Triton kernel once ignored a NaN and returned plausible numbers.)"""
    logits, ids = make_logits(6, 1500, torch.float32, 11)
    logits[0, 3] = float("nan")
    logits[1, 1499] = float("nan")
    logits[2, 700] = float("inf")
    logits[3, :] = float("nan")
    logits[4, 5] = float("-inf")  # masked, not poisoned
    ids[0] = 4  # the sampled token itself is finite
    x = logits.to(dtype).to(device)
    got = token_stats(x, ids.to(device), k=20)
    for name in ("logprob", "entropy", "confidence", "logsumexp"):
        column = getattr(got, name).cpu()
        assert column[:4].isnan().all(), (name, column)
        assert not column[4:].isnan().any(), (name, column)
    check(close, x[4:], ids[4:].to(device), 20, 1.0, got=type(got)(*(t[4:] for t in got)))

def test_strided_rows(backend_name, device, close):
    big, ids = make_logits(4, 3000, torch.float32, 3)
    logits = big[:, 100:2100]  # row stride 3000, last-dim contiguous
    ids = ids % 2000
    check(close, logits.to(device), ids.to(device), 20, 1.0)
    check(close, big.t().contiguous().t()[:, :777].to(device), ids % 777, 8, 1.0)


def test_ragged_rows_vary_seed(backend_name, device, close):
    for seed in range(3):
        T = 1 + seed * 2
        V = [777, 2049, 3001][seed]
        logits, ids = make_logits(T, V, torch.float32, 100 + seed, scale=1.0 + seed)
        check(close, logits.to(device), ids.to(device), 1 + 7 * seed, 1.0)


def test_empty(backend_name, device):
    got = token_stats(torch.zeros(0, 100, device=device), torch.zeros(0, dtype=torch.long, device=device))
    assert all(t.numel() == 0 and t.dtype == torch.float32 for t in got)


def test_torch_backend_chunking_matches(close):
    """The torch backend's row chunks (here one row at a time) do not change the values."""
    from treecredit_kernels.token_stats import _token_stats_torch

    logits, ids = make_logits(7, 1000, torch.bfloat16, 11, mask_frac=0.1)
    a = _token_stats_torch(logits, ids, 20, 1.0, chunk_bytes=1)
    b = _token_stats_torch(logits, ids, 20, 1.0)
    for x, y in zip(a, b):
        close(x, y, rtol=0, atol=0)


def test_rejects_bad_arguments():
    x = torch.zeros(2, 100)
    ids = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError):
        token_stats(x, ids, k=65)
    with pytest.raises(ValueError):
        token_stats(x, ids, temperature=0.0)
    with pytest.raises(ValueError):
        token_stats(x, ids[:1])
    with pytest.raises(TypeError):
        token_stats(x.long(), ids)


@pytest.mark.parametrize("block_v,k", [(64, 20), (32, 1), (64, 64), (128, 5)])
def test_triton_over_many_vocabulary_tiles(close, device, block_v, k):
    """The Triton kernel with a vocabulary tile much smaller than V: the running softmax is rescaled from
    tile to tile and the running top-k merges each tile's candidates into the earlier ones."""
    import sys

    from conftest import triton_available

    if not triton_available():
        pytest.skip("triton path needs CUDA or TRITON_INTERPRET=1")
    mod = sys.modules["treecredit_kernels.token_stats"]
    V = 1000
    assert V >= 3 * block_v
    logits, ids = make_logits(7, V, torch.float32, block_v + k)
    logits[0] = torch.linspace(-6, 6, V)  # each tile's max beats the last: every tile rescales, every tile merges
    logits[1] = torch.linspace(6, -6, V)  # the top k all sit in the first tile; later tiles offer nothing
    logits[2, : V - 40] = float("-inf")  # only the last tile is finite
    logits[3] = torch.randint(-2, 3, (V,)).float()  # ties within and across tiles
    logits[4, 1::2] = float("-inf")  # half of every tile masked
    for dtype, tau in ((torch.float32, 1.0), (torch.bfloat16, 0.7)):
        x, y = logits.to(dtype).to(device), ids.to(device)
        got = mod._token_stats_triton(x, y, min(k, V), tau, block_v=block_v)
        check(close, x, y, k, tau, got=got)
