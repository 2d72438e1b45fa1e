"""verl batches <-> a `Forest`, and treecredit's advantages back through verl's advantage hook.

verl is never imported: tensors are duck-typed (torch or numpy), and `data` is anything with verl
`DataProto`'s two dicts, `.batch` (tensors) and `.non_tensor_batch` (numpy object arrays).

**What a verl batch holds.** B rows, each one sampled response padded to R columns:
`token_level_rewards [B, R]` (an outcome reward sits on the last response token; a row's reward is
the row's sum, as verl's GRPO reads it), `response_mask [B, R]` (1 on tokens the policy produced;
0 on padding and on tool/observation tokens of multi-turn rollouts) and `uid [B]` in the non-tensor
batch (the prompt: rows with the same uid form a group).

**How a trainer records its trees.** Rows that share a prefix are paths through one tree. The
rollout code adds, per row, to `non_tensor_batch` (object arrays of length B):

- `"tree_path"`: the chain of segment node ids the response runs through, first segment to last:
  e.g. `["0", "0.1", "0.1.0"]`. Ids are any hashables, unique within their tree; rows that name the
  same id share that segment's tokens (a shared prefix).
- `"segment_lengths"`: the response columns each of those segments spans, same order: e.g.
  `[40, 25, 61]` covers columns 0..39, 40..64, 65..125. Tool output inside a segment counts; columns
  past the last segment must be padding (mask 0).
- `"tree_id"` (optional): which of the uid's trees the row belongs to (Tree-GRPO samples M trees per
  prompt; ids unique within the uid, e.g. 0..M-1). Default: one tree per uid.

Each tree's root is the prompt (no response tokens); every row must end at a leaf, and no two rows at
the same one. Without `"tree_path"` every row is a chain of its own (plain GRPO rollouts), and
`tree_grpo` equals `grpo`. The full rules and error messages: `treecredit.adapters.generic`.

**Plugging in.** verl computes advantages in `compute_advantage(data, adv_estimator, ...)`, which
calls an estimator registered with `verl.trainer.ppo.core_algos.register_adv_est(name)` as
`fn(token_level_rewards=, response_mask=, config=, index=uid, ...)` and expects
`(advantages, returns)`, both `[B, R]`. Either

    from verl.trainer.ppo.core_algos import register_adv_est
    client = treecredit.CreditClient("treecredit:50051")
    register_adv_est("treecredit")(treecredit.adapters.verl.advantage_estimator(client, "tree_grpo"))
    # then algorithm.adv_estimator=treecredit

which sees only what verl passes it: stock verl passes `uid` but not the non-tensor tree fields, so
pass them too (`adv_kwargs.update(tree_kwargs(data.non_tensor_batch))` in the trainer's
`compute_advantage`) or every row is scored as a chain; or call
`treecredit.adapters.verl.compute_advantage(data, client, "tree_grpo")` in place of verl's
`compute_advantage`: it reads every field from `data` and sets `data.batch["advantages"]` and
`data.batch["returns"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from treecredit.adapters.generic import BatchForest, as_numpy, like
from treecredit.adapters.generic import to_forest as _generic_forest

TREE_FIELDS = ("tree_id", "tree_path", "segment_lengths")


def to_forest(token_level_rewards, response_mask, index, *, tree_id=None, tree_path=None,
              segment_lengths=None) -> BatchForest:
    """The forest of a verl batch: `token_level_rewards [B, R]`, `response_mask [B, R]`, `index`
    (the uid per row) and the tree fields of the module docstring."""
    if index is None:
        raise ValueError("index: verl's uid per row is required to group rows by prompt")
    rewards = as_numpy(token_level_rewards, np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"token_level_rewards: expected [batch, response_len], got shape {list(rewards.shape)}")
    return _generic_forest(rewards.sum(axis=1), response_mask, group=index, tree=tree_id, tree_path=tree_path,
                           segment_lengths=segment_lengths)


def tree_kwargs(non_tensor_batch: Mapping) -> dict:
    """The tree fields present in a verl `non_tensor_batch`, as keyword arguments."""
    return {name: non_tensor_batch[name] for name in TREE_FIELDS if name in non_tensor_batch}


def advantage_estimator(client, estimator: str = "tree_grpo", **options) -> Callable:
    """A function with the signature of a verl advantage estimator, scoring through `client` (a
    `CreditClient`). Register it with `register_adv_est(name)(...)`. `options`: `CreditClient.score`'s."""

    def compute_treecredit_advantage(token_level_rewards, response_mask, index=None, config=None, *,
                                     tree_id=None, tree_path=None, segment_lengths=None, **unused):
        batch = to_forest(token_level_rewards, response_mask, index, tree_id=tree_id, tree_path=tree_path,
                          segment_lengths=segment_lengths)
        advantages = like(token_level_rewards, batch.token_advantages(client.score(batch.forest, estimator,
                                                                                   **options)))
        return advantages, advantages

    return compute_treecredit_advantage


def compute_advantage(data, client, estimator: str = "tree_grpo", **options):
    """Set `data.batch["advantages"]` and `data.batch["returns"]` (`[B, R]`, like verl's outcome
    estimators, returns = advantages) from a verl `DataProto`-like `data`; returns `data`."""
    estimate = advantage_estimator(client, estimator, **options)
    advantages, returns = estimate(data.batch["token_level_rewards"], data.batch["response_mask"],
                                   data.non_tensor_batch["uid"], **tree_kwargs(data.non_tensor_batch))
    data.batch["advantages"] = advantages
    data.batch["returns"] = returns
    return data
