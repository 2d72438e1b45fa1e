"""GPU kernels over flat token arrays; each has a torch reference beside it. Knows nothing of trees' meaning."""

from treecredit_kernels.backend import select as select_backend

__all__ = ["select_backend"]
