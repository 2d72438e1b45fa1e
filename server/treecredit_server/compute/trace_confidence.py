"""The trace confidence of every trajectory of a forest (ALGORITHMS.md section 5), for Score, Filter and forks.

Token confidences come from the forest (its `confidence`, else `topk_confidence` of its `topk_logprobs`); tokens whose
loss mask is 0 are dropped and the per-node counts recomputed before one call of the `tree_window_confidence`
kernel gives all four metrics. torch and the kernels are imported inside the functions that call them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.tensors import as_tensor


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


def topk_confidence(topk_logprobs: np.ndarray) -> np.ndarray:
    """float64 `[T]`: -mean of the finite entries of each row of `topk_logprobs [T, k]` (ALGORITHMS.md section 4;
    -inf is padding, a row without a finite entry gives 0, as in `treecredit_kernels.topk_confidence`). numpy on
    the host: Watch applies it on the event loop, where a torch call would cost 10-100 times more."""
    finite = np.isfinite(topk_logprobs)
    if topk_logprobs.shape[1] and finite.all():
        return -topk_logprobs.mean(axis=1, dtype=np.float64)
    count = finite.sum(axis=1)
    total = np.where(finite, topk_logprobs, 0).sum(axis=1, dtype=np.float64)
    return np.where(count > 0, -total / np.maximum(count, 1), 0.0)


def token_confidence(forest: ForestArrays) -> np.ndarray:
    """Token confidences float64 `[T]` of a forest that `has_token_confidence`: its `confidence`, else
    `topk_confidence` of its `topk_logprobs`."""
    if "confidence" in forest.tokens:
        return np.asarray(forest.tokens["confidence"], dtype=np.float64)
    return topk_confidence(forest.tokens["topk_logprobs"])


def masked_confidence(forest: ForestArrays, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The confidences of tokens whose loss mask is 1 `[U]`, and each node's span in them `node_offsets [N+1]`."""
    mask = forest.tokens.get("loss_mask")
    if mask is None:
        return confidence, forest.token_offsets
    node_of_token = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
    counts = np.bincount(node_of_token[mask], minlength=forest.num_nodes)
    return confidence[mask], np.concatenate(([0], np.cumsum(counts)))


def trajectory_confidence(forest: ForestArrays, *, window: int = 2048, tail: int = 2048) -> TraceConfidence:
    """Lowest, bottom-10%, tail and mean confidence of every trajectory of a forest that `has_token_confidence`."""
    from treecredit_kernels import tree_window_confidence

    confidence, offsets = masked_confidence(forest, token_confidence(forest))
    leaves = forest.leaves
    result = tree_window_confidence(*(as_tensor(a) for a in (confidence, offsets, forest.parent, leaves)),
                                    window=window, tail=tail)
    return TraceConfidence(leaves.astype(np.int64), *(part.numpy() for part in result))
