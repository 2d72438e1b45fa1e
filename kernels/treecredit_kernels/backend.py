"""Which implementation runs a kernel: Triton on CUDA devices, vectorised torch elsewhere.

`TREECREDIT_BACKEND=triton|torch` overrides the automatic choice. Triton on CPU tensors only
works in Triton's interpreter (`TRITON_INTERPRET=1`, set before triton is imported), which is how
the Triton kernels are tested on machines without a GPU.
"""

from __future__ import annotations

import os

import torch

BACKENDS = ("triton", "torch")


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def select(device: torch.device | str) -> str:
    """The backend for tensors on `device`: the override if set, else triton on CUDA, torch otherwise."""
    override = os.environ.get("TREECREDIT_BACKEND", "").strip().lower()
    if override:
        if override not in BACKENDS:
            raise ValueError(f"TREECREDIT_BACKEND must be one of {BACKENDS}, got {override!r}")
        return override
    return "triton" if torch.device(device).type == "cuda" else "torch"
