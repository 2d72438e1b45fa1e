"""Where to fork next (ALGORITHMS.md section 11): the top N fork positions of every tree, whole-array numpy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from treecredit_server.compute.trace_confidence import masked_confidence, token_confidence
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.tensors import as_tensor


class Ranking(Enum):
    NEG_LOGPROB = "neg_logprob"              # highest -logprob first
    WINDOW_CONFIDENCE = "window_confidence"  # lowest window mean first


@dataclass(frozen=True)
class Forks:
    """Fork positions `[F]`, grouped by tree (ascending root) and ranked within it (rank 0 is best)."""

    root: np.ndarray
    node: np.ndarray
    offset: np.ndarray  # token index within the node: the branch keeps the node's tokens before it
    score: np.ndarray   # float64: -logprob, or the window mean
    rank: np.ndarray


def suggest_forks(forest: ForestArrays, *, ranking: Ranking = Ranking.NEG_LOGPROB, top_n: int = 4,
                  tail_guard: int = 16, window: int = 2048) -> Forks:
    """Candidates are tokens with loss mask 1 outside the last `tail_guard` tokens of every trajectory through
    them; the best `top_n` per tree by `ranking` (the forest carries what it ranks by: `logprobs`, not NaN, or
    token confidences)."""
    topology = forest.topology
    node_of_token = np.repeat(np.arange(forest.num_nodes), forest.num_tokens)
    offsets = forest.token_offsets
    within = np.arange(len(node_of_token)) - offsets[node_of_token]
    path_start = topology.path_sum(forest.num_tokens) - forest.num_tokens
    position = path_start[node_of_token] + within  # 0-based position along the path
    nearest_end = _nearest_trajectory_end(forest, path_start)
    mask = forest.tokens.get("loss_mask")
    candidate = (nearest_end[node_of_token] - position > tail_guard) & (True if mask is None else mask)

    if ranking is Ranking.NEG_LOGPROB:
        score = -np.asarray(forest.tokens["logprobs"], dtype=np.float64)
        goodness = score
    else:
        score = np.full(len(node_of_token), np.nan)
        score[mask if mask is not None else slice(None)] = _window_means(forest, window)
        goodness = -score

    tokens = np.flatnonzero(candidate)
    tree = topology.root[node_of_token[tokens]]
    order = np.lexsort((tokens, -goodness[tokens], tree))
    tokens, tree = tokens[order], tree[order]
    first = np.r_[True, tree[1:] != tree[:-1]] if len(tree) else np.zeros(0, bool)
    rank = np.arange(len(tokens)) - np.maximum.accumulate(np.where(first, np.arange(len(tokens)), 0))
    chosen = rank < top_n
    tokens = tokens[chosen]
    return Forks(root=tree[chosen], node=node_of_token[tokens], offset=within[tokens],
                 score=score[tokens], rank=rank[chosen])


def _nearest_trajectory_end(forest: ForestArrays, path_start: np.ndarray) -> np.ndarray:
    """int64 `[N]`: the shortest path length (in tokens) of any trajectory through node n."""
    topology = forest.topology
    nearest = np.where(topology.is_leaf, path_start + forest.num_tokens, np.iinfo(np.int64).max)
    for d in range(topology.max_depth, 0, -1):
        nodes = topology.level(d)
        np.minimum.at(nearest, forest.parent[nodes], nearest[nodes])
    return nearest


def _window_means(forest: ForestArrays, window: int) -> np.ndarray:
    """float64 `[U]`: for each loss-masked token, the mean of the last min(window, position + 1) masked
    confidences along its path, ending at it (the `path_window_means` kernel)."""
    from treecredit_kernels import path_window_means

    confidence, node_offsets = masked_confidence(forest, token_confidence(forest))
    return path_window_means(as_tensor(confidence), as_tensor(node_offsets), as_tensor(forest.parent),
                             window=window).numpy()
