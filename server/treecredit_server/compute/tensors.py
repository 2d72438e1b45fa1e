"""numpy arrays -> torch tensors for the kernels, sharing memory. torch is imported on first use.

Arrays decoded from the wire are read-only views of the request's bytes (or of a shared-memory region);
the kernels never write their inputs, so they are handed over without a copy and torch's warning about
non-writable arrays is silenced here, once.
"""

from __future__ import annotations

import warnings

import numpy as np

warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


def as_tensor(array: np.ndarray):
    """A CPU torch tensor over `array`'s memory (copied only when `array` is not contiguous)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))
