"""GPU kernels over flat token arrays: each file holds a Triton kernel and its torch path (the float64 references
live in tests/kernels). Knows nothing of trees' meaning."""

from treecredit_kernels.backend import select as select_backend
from treecredit_kernels.reflection_reward import ReflectionReward, reflection_reward
from treecredit_kernels.token_stats import TokenStats, token_stats
from treecredit_kernels.topk_confidence import TopkConfidence, topk_confidence
from treecredit_kernels.tree_window_confidence import WindowConfidence, path_window_means, tree_window_confidence

__all__ = [
    "select_backend",
    "ReflectionReward",
    "reflection_reward",
    "TokenStats",
    "token_stats",
    "TopkConfidence",
    "topk_confidence",
    "WindowConfidence",
    "tree_window_confidence",
    "path_window_means",
]
