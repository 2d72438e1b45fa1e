"""Random forests for tests, built with plain Python so that they are obviously right."""

from __future__ import annotations

import numpy as np

import treecredit


def random_forest(
    rng: np.random.Generator,
    *,
    groups: int = 3,
    trees_per_group: int = 2,
    max_children: int = 3,
    max_depth: int = 4,
    max_tokens: int = 5,
    reward_levels: int = 3,
    topk: int | None = None,
) -> treecredit.Forest:
    """Random trees; nodes hold 0..max_tokens tokens with a random loss mask; leaves get rewards
    from `reward_levels` evenly spaced values in [0, 1] (so ties happen); top-k log-probs if `topk`."""
    parent: list[int] = []
    group: list[str] = []

    def grow(node: int, depth: int) -> None:
        children = int(rng.integers(0, max_children + 1)) if depth < max_depth else 0
        for _ in range(children):
            parent.append(node)
            group.append(group[node])
            grow(len(parent) - 1, depth + 1)

    for g in range(groups):
        for _ in range(trees_per_group):
            parent.append(-1)
            group.append(f"prompt-{g}")
            grow(len(parent) - 1, 0)

    n = len(parent)
    is_leaf = np.bincount([p for p in parent if p >= 0], minlength=n) == 0
    reward = np.where(is_leaf, rng.integers(0, reward_levels, n) / max(reward_levels - 1, 1), np.nan)
    num_tokens = rng.integers(0, max_tokens + 1, n)
    total = int(num_tokens.sum())
    extra = {}
    if topk:
        extra["topk_logprobs"] = -np.sort(rng.exponential(2.0, (total, topk)), axis=1).astype(np.float32)
    return treecredit.Forest.from_arrays(
        parent,
        group=group,
        reward=reward,
        num_tokens=num_tokens,
        token_ids=rng.integers(0, 1000, total),
        loss_mask=rng.random(total) < 0.8,
        **extra,
    )
