"""Torch helpers for a `PackedForest`; torch is imported when one is called, so the SDK does not need it.

    mask = flex_block_mask(packed)                    # or tree_attention_mask(packed) for small batches
    logits = model(input_ids, position_ids, mask)     # [T, V], one row per packed token
    loss = packed_policy_loss(packed_logprobs(logits, packed), old_logprobs, packed)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch as _torch

    from treecredit.packing import PackedForest


def _torch():
    return importlib.import_module("torch")


def _tensor(values, device=None):
    return _torch().as_tensor(values, device=device)


def tree_attention_mask(packed: PackedForest, device=None) -> _torch.Tensor:
    """Dense bool `[T, T]`: `mask[q, k]` iff `k <= q < subtree_end[k]` (k is q or an ancestor of q)."""
    torch = _torch()
    subtree_end = _tensor(packed.subtree_end, device)
    index = torch.arange(len(subtree_end), device=subtree_end.device)
    query, key = index[:, None], index[None, :]
    return (key <= query) & (query < subtree_end[None, :])


def flex_block_mask(packed: PackedForest, device=None, block_size: int = 128):
    """A FlexAttention `BlockMask` of the tree mask, built from `subtree_end` with `create_block_mask`: blocks
    where no query sees any key are skipped. Raises ImportError where the installed torch lacks FlexAttention."""
    from torch.nn.attention.flex_attention import create_block_mask

    subtree_end = _tensor(packed.subtree_end, device)

    def tree(batch, head, query, key):
        return (key <= query) & (query < subtree_end[key])

    length = len(subtree_end)
    return create_block_mask(tree, B=None, H=None, Q_LEN=length, KV_LEN=length, device=subtree_end.device,
                             BLOCK_SIZE=block_size)


def packed_logprobs(logits: _torch.Tensor, packed: PackedForest) -> _torch.Tensor:
    """`[T]`, at least float32: log p(input_ids[t]) from logits row `parent[t]` (never `t - 1`: that is wrong
    after every branch jump); 0 at a tree's first token and in padding, which nothing predicts. `logits`: `[T, V]`."""
    torch = _torch()
    parent = _tensor(packed.parent, logits.device)
    ids = _tensor(packed.input_ids, logits.device)
    rows = logits[parent.clamp(min=0)]
    rows = rows.to(torch.promote_types(rows.dtype, torch.float32)).log_softmax(-1)
    chosen = rows.gather(-1, ids[:, None]).squeeze(-1)
    return torch.where(parent >= 0, chosen, torch.zeros_like(chosen))


def packed_policy_loss(logprobs: _torch.Tensor, old_logprobs, packed: PackedForest, eps_low: float = 0.2,
                       eps_high: float = 0.2) -> _torch.Tensor:
    """The clipped policy loss of the step (or this microbatch's share of it), a scalar:
    `-sum_t mask_t (P_t min(r_t, clip(r_t)) + N_t max(r_t, clip(r_t)))`, `r_t = exp(logprobs - old_logprobs)`.
    Equal to the unpacked loss under the `loss_agg_mode` the forest was packed with (ALGORITHMS.md section 12)."""
    torch = _torch()
    device = logprobs.device
    old = torch.as_tensor(old_logprobs, device=device, dtype=logprobs.dtype)
    ratio = torch.exp(logprobs - old)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    positive = _tensor(packed.advantage_pos, device).to(logprobs.dtype)
    negative = _tensor(packed.advantage_neg, device).to(logprobs.dtype)
    mask = _tensor(packed.loss_mask, device)
    per_token = positive * torch.minimum(ratio, clipped) + negative * torch.maximum(ratio, clipped)
    return -torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
