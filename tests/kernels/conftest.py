"""Shared fixtures for the kernel tests: run each test on both backends, poison fresh allocations."""

from __future__ import annotations

import math

import pytest
import torch

from treecredit_kernels import backend


def triton_available() -> bool:
    return backend.interpreting() or torch.cuda.is_available()


@pytest.fixture(params=["torch", "triton"])
def backend_name(request, monkeypatch):
    """Forces the backend through the public override; the triton path needs CUDA or the interpreter."""
    if request.param == "triton" and not triton_available():
        pytest.skip("triton path needs CUDA or TRITON_INTERPRET=1")
    monkeypatch.setenv("TREECREDIT_BACKEND", request.param)
    return request.param


@pytest.fixture
def device():
    return "cuda" if torch.cuda.is_available() and not backend.interpreting() else "cpu"


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Every torch.empty / empty_like comes back filled with NaN (floats) or a sentinel (ints),
    so an output element the implementation forgets to write shows up as a mismatch."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def fill(t):
        if t.is_floating_point():
            t.fill_(math.nan)
        elif t.dtype != torch.bool:
            t.fill_(-987654321 if t.dtype in (torch.int32, torch.int64) else 0)
        return t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: fill(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: fill(real_empty_like(*a, **k)))


def assert_close(got: torch.Tensor, ref: torch.Tensor, *, rtol: float, atol) -> None:
    """Elementwise |got - ref| <= atol + rtol |ref| (atol may be a tensor); infinities must match
    exactly, and NaN only where the reference has NaN."""
    got = got.detach().cpu().double()
    ref = ref.detach().cpu().double()
    assert got.shape == ref.shape
    atol = torch.as_tensor(atol, dtype=torch.float64).cpu().expand_as(ref)
    nan_ref = torch.isnan(ref)
    assert torch.equal(torch.isnan(got), nan_ref), f"NaN mismatch:\n got={got}\n ref={ref}"
    inf_ref = torch.isinf(ref)
    assert torch.equal(got[inf_ref], ref[inf_ref]) and not torch.isinf(got[~inf_ref]).any(), (
        f"inf mismatch:\n got={got}\n ref={ref}"
    )
    fin = ~nan_ref & ~inf_ref
    err = (got[fin] - ref[fin]).abs()
    tol = atol[fin] + rtol * ref[fin].abs()
    bad = err > tol
    assert not bad.any(), (
        f"{int(bad.sum())} mismatches, worst err {float((err - tol).max()):.3g} over tol;\n"
        f" got={got[fin][bad][:8]}\n ref={ref[fin][bad][:8]}"
    )


@pytest.fixture
def close():
    """The `assert_close` above, as a fixture so test modules need not import conftest."""
    return assert_close
