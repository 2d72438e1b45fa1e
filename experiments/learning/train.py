"""One training run (task x arm x seed): sample, one `client.pack` call, the loss, the step.

Every arm gets the same budget of generated tokens per update, the same learning rate and, for a given seed,
the same initial policy, prompts and key. One Adam step per batch on the batch's own samples (so the PPO ratio
is 1 and the clipped loss is the plain policy gradient), token-mean over every trajectory's tokens. Arms credited
by the service train on the packed forest (every shared token once, the tree attention mask); the oracle, whose
credit is enumerated here, on a row per trajectory: the same loss (tests/test_learning.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

import treecredit
from experiments.learning.policy import ExactValues, Policy, action_logprobs, exact_values, success
from experiments.learning.sampling import Batch, sample
from experiments.learning.stats import sign_agreement, spearman
from treecredit.torch import packed_logprobs, packed_policy_loss, tree_attention_mask
from experiments.learning.tasks import TASKS

# arm -> (how a batch is sampled, the estimator the service scores it with; "oracle" is A* by enumeration)
ARMS = {
    "grpo": ("chain", "grpo"),
    "tree_leaf_grpo": ("random", "grpo"),  # tree sampling, leaf-only credit: the effect of sampling alone
    "tree_grpo": ("random", "tree_grpo"),
    "treerl": ("random", "treerl"),
    "value_diff": ("random", "value_diff"),
    "tree_grpo_suggest": ("suggest", "tree_grpo"),  # forks where SuggestForks ranks the policy least sure
    "oracle": ("chain", "oracle"),
}
# Estimators compared with A* on one chain batch and one tree batch: label -> (forks, estimator).
CREDIT_ESTIMATORS = {
    "grpo (chains)": ("chain", "grpo"),
    "grpo (tree leaves)": ("random", "grpo"),
    "tree_grpo": ("random", "tree_grpo"),
    "treerl": ("random", "treerl"),
    "value_diff": ("random", "value_diff"),
    "tree_grpo (SuggestForks)": ("suggest", "tree_grpo"),
}


@dataclass
class Job:
    task: str
    arm: str
    seed: int
    lr: float
    updates: int
    budget: int            # generated tokens per prompt per update
    prompts: int           # prompts per update
    eval_every: int
    credit_checkpoints: tuple[int, ...] = ()  # updates at which credit accuracy is measured


def train(job: Job, client: treecredit.CreditClient) -> dict:
    task = TASKS[job.task](job.seed)
    torch.manual_seed(job.seed)
    policy = Policy(task)  # the same initial weights for every arm of a seed
    optimizer = torch.optim.Adam(policy.parameters(), lr=job.lr)
    generator = torch.Generator().manual_seed(job.seed)
    rng = np.random.default_rng(job.seed)
    forks, estimator = ARMS[job.arm]
    curve, accuracy, tokens = [], {}, 0
    for update in range(job.updates + 1):
        if update % job.eval_every == 0 or update == job.updates:
            curve.append((update, tokens, *success(policy, task, task.eval_rows, generator)))
        if update in job.credit_checkpoints:
            accuracy[update] = credit_accuracy(policy, task, client, job, generator, rng)
        if update == job.updates:
            break
        rows = rng.choice(task.train_rows, size=min(job.prompts, len(task.train_rows)), replace=False)

        batch = sample(policy, task, rows, job.budget, forks=forks, generator=generator, rng=rng, client=client)
        if estimator == "oracle":
            loss = padded_loss(policy, task, batch, *oracle_advantages(batch, exact_values(policy, task, rows)))
        else:
            loss = packed_loss(policy, client.pack(batch.forest(task), estimator, loss_agg_mode="token-mean"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tokens += batch.tokens_generated()
    return {**asdict(job), "curve": curve, "credit_accuracy": accuracy}


def packed_loss(policy: Policy, packed: treecredit.PackedForest) -> torch.Tensor:
    """The loss on the packed forest: one forward over every unique token under the tree attention mask, each
    token's log-prob read from its parent's row, weighted by the service for token-mean over the trajectories."""
    logits = policy.packed(torch.as_tensor(packed.input_ids, dtype=torch.long),
                           torch.as_tensor(packed.position_ids, dtype=torch.long), tree_attention_mask(packed))
    logprobs = packed_logprobs(logits, packed)
    return packed_policy_loss(logprobs, logprobs.detach(), packed)  # on-policy: ratio 1, the policy gradient


def padded_loss(policy: Policy, task, batch: Batch, advantages: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """The same loss with a row per trajectory: -mean over trajectory tokens of A * ratio, the ratio pi / pi_old
    1 on-policy (its gradient: -mean of A * grad log pi). `advantages`, `mask`: `[L, T]` over each trajectory's
    actions, leaves ascending."""
    path_rows, paths = batch.paths()
    logprobs = action_logprobs(policy, task.prompts[path_rows], paths)
    mask = torch.from_numpy(mask)
    return -(torch.from_numpy(advantages) * torch.exp(logprobs - logprobs.detach()))[mask].sum() / mask.sum()


def node_exact_advantages(batch: Batch, exact: ExactValues) -> np.ndarray:
    """float64 `[N]`: A*(prefix before the node, its action) for every action node; 0 at roots."""
    nodes = [n for n, a in enumerate(batch.action) if a >= 0]
    values = np.zeros(len(batch.parent))
    values[nodes] = exact.advantage(np.asarray(batch.row)[nodes], [batch.path(batch.parent[n]) for n in nodes],
                                    np.asarray(batch.action)[nodes])
    return values


def oracle_advantages(batch: Batch, exact: ExactValues) -> tuple[np.ndarray, np.ndarray]:
    """`(A* float32 [L, T], mask bool [L, T])` laid out like `ScoreResult.padded()`: a row per leaf, ascending."""
    per_node = node_exact_advantages(batch, exact)
    nodes = [batch.path_nodes(int(leaf)) for leaf in batch.leaves]
    width = max(len(p) for p in nodes)
    advantages, mask = np.zeros((len(nodes), width), np.float32), np.zeros((len(nodes), width), bool)
    for i, path in enumerate(nodes):
        advantages[i, : len(path)] = per_node[path]
        mask[i, : len(path)] = True
    return advantages, mask


def credit_accuracy(policy: Policy, task, client: treecredit.CreditClient, job: Job,
                    generator: torch.Generator, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Per estimator: (Spearman, sign agreement) of its per-node advantage with A* over every action node of a
    freshly sampled batch at the run's budget (sign agreement over nodes where neither is 0)."""
    rows = rng.choice(task.train_rows, size=min(job.prompts, len(task.train_rows)), replace=False)
    exact = exact_values(policy, task, rows)
    batches = {forks: sample(policy, task, rows, job.budget, forks=forks, generator=generator, rng=rng,
                             client=client) for forks in ("chain", "random", "suggest")}
    accuracy = {}
    for label, (forks, estimator) in CREDIT_ESTIMATORS.items():
        batch = batches[forks]
        is_action = np.asarray(batch.action) >= 0
        truth = node_exact_advantages(batch, exact)[is_action]
        estimate = client.score(batch.forest(task), estimator=estimator).node_advantages[is_action]
        accuracy[label] = (spearman(estimate, truth), sign_agreement(estimate, truth))
    return accuracy


_worker_client: treecredit.CreditClient | None = None


def connect_worker(target: str) -> None:
    """Worker process set-up: one thread for torch (the workers are the parallelism), one client each."""
    global _worker_client
    torch.set_num_threads(1)
    _worker_client = treecredit.CreditClient(target, timeout=120)


def run_in_worker(job: Job) -> dict:
    return train(job, _worker_client)
