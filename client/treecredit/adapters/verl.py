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
the same one. `to_forest` without `"tree_path"` makes every row a chain of its own (plain GRPO
rollouts, where `tree_grpo` equals `grpo`); the estimator below refuses that, since a trainer that
dropped the fields would otherwise get GRPO without a word. The full rules and error messages:
`treecredit.adapters.generic`.

**Plugging in.** verl (0.9.1) calls an estimator registered with
`verl.trainer.ppo.core_algos.register_adv_est(name)` as `fn(token_level_rewards=, response_mask=,
config=, index=uid)` and expects `(advantages, returns)`, both `[B, R]`; nothing else of the batch
reaches it. The current (v1) trainer even builds that batch from a fixed list of fields (uid, the mask,
the scores, log-probs, values), so the tree fields a rollout stored never get there. The estimator
therefore refuses a batch without them (`ValueError` `tree_path: ...`) rather than score every row as
a chain, and takes them in one of three ways:

- `compute_advantage(data, client, "tree_grpo")` in place of verl's `compute_advantage`: it reads
  every field from a `DataProto` and sets `data.batch["advantages"]` and `data.batch["returns"]`.
- Around verl's own advantage step, `with trees(tree_path=..., segment_lengths=..., tree_id=...):` hands
  the fields of the batch's rows (same order) to the registered estimator. On the v1 trainer that is
  a subclass registered with `verl.trainer.ppo.v1.register_trainer` and chosen by
  `trainer.v1.trainer_mode` (import the module where the trainer runs):

      import transfer_queue as tq
      from verl.trainer.ppo.core_algos import register_adv_est
      from verl.trainer.ppo.v1 import register_trainer
      from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
      from treecredit.adapters import verl as treecredit_verl

      register_adv_est("treecredit")(treecredit_verl.advantage_estimator(client, "tree_grpo"))

      @register_trainer("treecredit_sync")  # algorithm.adv_estimator=treecredit trainer.v1.trainer_mode=treecredit_sync
      class TreeCreditTrainer(PPOTrainerSync):
          def _compute_advantage(self, batch, metrics):
              rows = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                                     select_fields=["tree_path", "segment_lengths"])
              with treecredit_verl.trees(**treecredit_verl.tree_kwargs(rows)):
                  return super()._compute_advantage(batch, metrics)

  (`_compute_advantage` fetches `batch.keys` in that order too.) The legacy trainer's
  `compute_advantage` works the same way inside `trees(...)`.
- A trainer of your own may pass them as keyword arguments: `fn(..., **tree_kwargs(data.non_tensor_batch))`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from treecredit.adapters.generic import BatchForest, as_numpy, like, rename
from treecredit.adapters.generic import to_forest as _generic_forest

TREE_FIELDS = ("tree_id", "tree_path", "segment_lengths")
# The generic adapter's argument -> verl's name of it, so that errors name what the caller passed.
VERL_NAMES = {"rewards": "token_level_rewards", "mask": "response_mask", "group": "index", "tree": "tree_id"}


def to_forest(token_level_rewards, response_mask, index, *, tree_id=None, tree_path=None,
              segment_lengths=None) -> BatchForest:
    """The forest of a verl batch: `token_level_rewards [B, R]`, `response_mask [B, R]`, `index`
    (the uid per row) and the tree fields of the module docstring. Errors name these arguments
    (`response_mask[3, 7]: ...`), here and from `BatchForest.score`."""
    if index is None:
        raise ValueError("index: verl's uid per row is required to group rows by prompt")
    rewards = as_numpy(token_level_rewards, np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"token_level_rewards: expected [batch, response_len], got shape {list(rewards.shape)}")
    try:
        batch = _generic_forest(rewards.sum(axis=1), response_mask, group=index, tree=tree_id, tree_path=tree_path,
                                segment_lengths=segment_lengths)
    except ValueError as error:
        raise ValueError(rename(str(error), VERL_NAMES)) from None
    return dataclasses.replace(batch, names=VERL_NAMES)


def tree_kwargs(fields: Mapping) -> dict:
    """The tree fields present in `fields` (a verl `non_tensor_batch`, or any mapping of per-row values),
    as keyword arguments of lists."""
    return {name: _rows(fields[name]) for name in TREE_FIELDS if name in fields}


def _rows(values) -> list:
    """Per-row values (a list, a numpy object array, a tensordict `NonTensorStack`) as a list."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


_TREES: ContextVar[dict | None] = ContextVar("treecredit_verl_trees", default=None)


@contextmanager
def trees(*, tree_path, segment_lengths, tree_id=None) -> Iterator[None]:
    """Hand the tree fields of the batch's rows (same order as the batch) to every treecredit estimator
    verl calls inside the block: the hook for trainers that pass the estimator no tree fields."""
    token = _TREES.set({"tree_id": tree_id, "tree_path": tree_path, "segment_lengths": segment_lengths})
    try:
        yield
    finally:
        _TREES.reset(token)


def advantage_estimator(client, estimator: str = "tree_grpo", **options) -> Callable:
    """A function with the signature of a verl advantage estimator, scoring through `client` (a
    `CreditClient`). Register it with `register_adv_est(name)(...)`. It takes the tree fields as keyword
    arguments or from an enclosing `trees(...)`, and raises `ValueError` without them. `options`:
    `CreditClient.score`'s."""

    def compute_treecredit_advantage(token_level_rewards, response_mask, index=None, config=None, *,
                                     tree_id=None, tree_path=None, segment_lengths=None, **unused):
        fields = {"tree_id": tree_id, "tree_path": tree_path, "segment_lengths": segment_lengths}
        if tree_path is None and segment_lengths is None:
            fields = _TREES.get() or fields
        for name in ("tree_path", "segment_lengths"):
            if fields[name] is None:
                raise ValueError(
                    f"{name}: the treecredit estimator got no tree fields (verl passes an estimator only "
                    "token_level_rewards, response_mask, index and config), so it cannot tell trees from chains; "
                    "call it inside treecredit.adapters.verl.trees(...) or use "
                    "treecredit.adapters.verl.compute_advantage (see that module's docstring)")
        batch = to_forest(token_level_rewards, response_mask, index, **fields)
        advantages = like(token_level_rewards, batch.token_advantages(batch.score(client, estimator, **options)))
        return advantages, advantages

    return compute_treecredit_advantage


def compute_advantage(data, client, estimator: str = "tree_grpo", **options):
    """Set `data.batch["advantages"]` and `data.batch["returns"]` (`[B, R]`, like verl's outcome
    estimators, returns = advantages) from a verl `DataProto`-like `data` whose `non_tensor_batch` holds
    `uid` and the tree fields (`ValueError` without them); returns `data`."""
    estimate = advantage_estimator(client, estimator, **options)
    advantages, returns = estimate(data.batch["token_level_rewards"], data.batch["response_mask"],
                                   data.non_tensor_batch["uid"], **tree_kwargs(data.non_tensor_batch))
    data.batch["advantages"] = advantages
    data.batch["returns"] = returns
    return data
