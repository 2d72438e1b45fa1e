"""topk_confidence on both backends against a float64 reference."""

from __future__ import annotations

import pytest
import torch

from treecredit_kernels import topk_confidence
from treecredit_kernels.topk_confidence import TopkConfidence


def topk_confidence_reference(topk_logprobs: torch.Tensor) -> TopkConfidence:
    """Float64, row by row from the definitions (ALGORITHMS.md section 4); -inf entries are padding."""
    T = topk_logprobs.shape[0]
    conf = torch.zeros(T, dtype=torch.float64)
    ent = torch.zeros(T, dtype=torch.float64)
    for r in range(T):
        l = topk_logprobs[r].double().cpu()
        l = l[l > float("-inf")]
        if l.numel() == 0:
            continue
        conf[r] = -l.mean()
        q = torch.softmax(l, 0)
        ent[r] = -torch.special.xlogy(q, q).sum()
    return TopkConfidence(conf, ent)


def make(T, k, dtype, seed, pad_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    V = max(k, 1) + 100
    lp = torch.log_softmax(torch.randn(T, V, generator=g) * 4, -1)
    x = torch.topk(lp, k, -1).values if k else lp[:, :0]
    if pad_frac:
        # engines pad the tail of a row
        n_real = torch.randint(0, k + 1, (T,), generator=g)
        x[torch.arange(k)[None, :] >= n_real[:, None]] = float("-inf")
    return x.to(dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "T,k,dtype,pad",
    [(17, 20, torch.float32, 0.0), (5, 1, torch.float32, 0.0), (9, 64, torch.bfloat16, 0.0),
     (33, 5, torch.float16, 0.5), (12, 20, torch.float32, 0.5), (4, 100, torch.float32, 0.0),
     (3, 20, torch.float64, 0.0)],
)
def test_matches_reference(backend_name, device, close, T, k, dtype, pad, seed):
    x = make(T, k, dtype, seed * 97 + k, pad)
    got = topk_confidence(x.to(device))
    ref = topk_confidence_reference(x)
    close(got.confidence, ref.confidence, rtol=1e-5, atol=1e-6)
    close(got.entropy_topk, ref.entropy_topk, rtol=1e-5, atol=1e-6)
    assert got.confidence.dtype == torch.float32 and got.entropy_topk.dtype == torch.float32


def test_padding_and_edges(backend_name, device, close):
    x = torch.tensor([[-0.1, -2.0, float("-inf")], [float("-inf")] * 3, [-1.0, -1.0, -1.0]])
    got = topk_confidence(x.to(device))
    close(got.confidence, torch.tensor([1.05, 0.0, 1.0]), rtol=1e-6, atol=1e-7)
    q = torch.softmax(torch.tensor([-0.1, -2.0], dtype=torch.float64), 0)
    h = float(-(q * q.log()).sum())
    close(got.entropy_topk, torch.tensor([h, 0.0, float(torch.log(torch.tensor(3.0)))]), rtol=1e-6, atol=1e-7)
    for shape in [(0, 20), (4, 0)]:
        got = topk_confidence(torch.zeros(shape, device=device))
        close(got.confidence, torch.zeros(shape[0]), rtol=0, atol=0)
        close(got.entropy_topk, torch.zeros(shape[0]), rtol=0, atol=0)


@pytest.mark.parametrize("block_t", [1, 4, 16])
def test_triton_over_many_row_tiles(close, device, block_t):
    """The Triton kernel with row tiles much smaller than T (a partial last tile), padded rows included."""
    import sys

    from conftest import triton_available

    if not triton_available():
        pytest.skip("triton path needs CUDA or TRITON_INTERPRET=1")
    mod = sys.modules["treecredit_kernels.topk_confidence"]
    x = make(50, 20, torch.float32, 3 + block_t, pad_frac=0.5)
    assert x.shape[0] >= 3 * block_t
    got = mod._topk_confidence_triton(x.to(device), block_t=block_t)
    ref = topk_confidence_reference(x)
    close(got.confidence, ref.confidence, rtol=1e-5, atol=1e-6)
    close(got.entropy_topk, ref.entropy_topk, rtol=1e-5, atol=1e-6)


def test_torch_path_in_row_blocks_matches_reference(monkeypatch, close):
    """The torch path splits T rows into blocks to bound its temporaries; across block edges nothing changes."""
    import importlib

    module = importlib.import_module("treecredit_kernels.topk_confidence")
    monkeypatch.setattr(module, "TORCH_BLOCK_ROWS", 4)
    x = make(11, 20, torch.float16, 5, pad_frac=0.5)
    got = module._topk_confidence_torch(x)
    ref = topk_confidence_reference(x)
    close(got.confidence, ref.confidence, rtol=1e-5, atol=1e-6)
    close(got.entropy_topk, ref.entropy_topk, rtol=1e-5, atol=1e-6)
