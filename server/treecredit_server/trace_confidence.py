"""The trace confidence of every trajectory of a forest (ALGORITHMS.md section 5), for Score and Filter.

Token confidences come from the forest (`filtering.token_confidence`: its `confidence`, else -mean of its
`topk_logprobs`); tokens whose loss mask is 0 are dropped and the per-node counts recomputed
(`filtering.masked_confidence`) before one call of the `tree_window_confidence` kernel gives all four metrics.
torch and the kernels are imported inside the function that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from treecredit_server.filtering import masked_confidence, token_confidence
from treecredit_server.forest import ForestArrays


@dataclass(frozen=True)
class TraceConfidence:
    """Per trajectory, leaves ascending, `[P]` each; the metrics are NaN where `num_tokens` is 0."""

    leaf: np.ndarray        # int64
    lowest: np.ndarray      # float64
    bottom10: np.ndarray    # float64
    tail: np.ndarray        # float64
    mean: np.ndarray        # float64
    num_tokens: np.ndarray  # int64; loss-mask-1 tokens on the path


def has_token_confidence(forest: ForestArrays) -> bool:
    """Whether the forest carries token confidences or top-k log-probs."""
    return "confidence" in forest.tokens or "topk_logprobs" in forest.tokens


def trajectory_confidence(forest: ForestArrays, *, window: int = 2048, tail: int = 2048,
                          name: str = "forest") -> TraceConfidence:
    """Lowest, bottom-10%, tail and mean confidence of every trajectory; InvalidArgument (naming `name`'s field)
    when the forest has no token confidences or they are NaN / +inf."""
    import torch
    from treecredit_kernels import tree_window_confidence

    confidence, offsets = masked_confidence(forest, token_confidence(forest, name))
    leaves = forest.leaves
    result = tree_window_confidence(
        torch.from_numpy(np.ascontiguousarray(confidence)), torch.from_numpy(offsets),
        torch.from_numpy(forest.parent), torch.from_numpy(leaves), window=window, tail=tail,
    )
    return TraceConfidence(leaves.astype(np.int64), *(part.numpy() for part in result))


def score_trace_confidence(forest: ForestArrays, *, window: int, tail: int) -> TraceConfidence | None:
    """What Score returns: the trace confidence, or None when the forest carries no token confidences."""
    return trajectory_confidence(forest, window=window, tail=tail) if has_token_confidence(forest) else None
