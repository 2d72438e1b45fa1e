"""Sampling chains and trees at a budget of generated tokens, one action token per forest node.

A chain batch is one tree per prompt that forks only at its root (G independent samples); a tree batch is
`trees` roots per prompt, one chain each, then rounds of forks: each tree branches at `forks` of its nodes
(random ones, or the positions `SuggestForks` ranks first) and the branch is sampled to the end of its episode.
Tokens shared by siblings are generated once and counted once: the budget is the number of action nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import treecredit
from experiments.learning.policy import Policy, rollout
from experiments.learning.tasks import episode_rewards


@dataclass
class Batch:
    """The sampled forest of one update. Node 0.. in order of sampling; roots stand for the prompt (the policy's
    input, not its output); every other node is one action."""

    parent: list[int] = field(default_factory=list)
    action: list[int] = field(default_factory=list)    # -1 at roots
    row: list[int] = field(default_factory=list)       # prompt row of the node's tree
    logprob: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    tree: list[int] = field(default_factory=list)      # the root of the node's tree
    children: list[int] = field(default_factory=list)

    def add(self, parent: int, row: int, action: int = -1, logprob: float = 0.0) -> int:
        self.parent.append(parent)
        self.action.append(action)
        self.row.append(row)
        self.logprob.append(logprob)
        self.depth.append(0 if parent < 0 else self.depth[parent] + 1)
        self.tree.append(len(self.parent) - 1 if parent < 0 else self.tree[parent])
        self.children.append(0)
        if parent >= 0:
            self.children[parent] += 1
        return len(self.parent) - 1

    def path_nodes(self, node: int) -> list[int]:
        """The action nodes from the root to `node` (inclusive), root first."""
        nodes = []
        while self.parent[node] >= 0:
            nodes.append(node)
            node = self.parent[node]
        return nodes[::-1]

    def path(self, node: int) -> list[int]:
        """The actions from the root to `node` (inclusive)."""
        return [self.action[n] for n in self.path_nodes(node)]

    @property
    def leaves(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.children) == 0)

    def paths(self) -> tuple[np.ndarray, list[list[int]]]:
        """`(prompt rows [L], action paths)` of the trajectories, leaves ascending (the order of `padded()`)."""
        leaves = self.leaves
        return np.asarray(self.row)[leaves], [self.path(int(leaf)) for leaf in leaves]

    def tokens_generated(self) -> int:
        return sum(a >= 0 for a in self.action)

    def forest(self, task) -> treecredit.Forest:
        """The forest to send: rewards at the leaves; each root carries its prompt (the policy's input, loss mask
        0, log-prob 0), each action node one token, `num_symbols + action`, with its log-prob and loss mask 1."""
        rows, paths = self.paths()
        reward = np.full(len(self.parent), np.nan)
        reward[self.leaves] = episode_rewards(task, rows, paths)
        action = np.asarray(self.action)
        is_root = action < 0
        num_tokens = np.where(is_root, task.prompts.shape[1], 1)
        token_ids = np.concatenate([task.prompts[r] if a < 0 else [task.num_symbols + a]
                                    for r, a in zip(self.row, self.action)])
        is_prompt = np.repeat(is_root, num_tokens)
        logprobs = np.zeros(len(token_ids))
        logprobs[~is_prompt] = np.asarray(self.logprob)[~is_root]
        return treecredit.Forest.from_arrays(
            self.parent, group=self.row, reward=reward, num_tokens=num_tokens, token_ids=token_ids,
            loss_mask=~is_prompt, logprobs=logprobs)


def sample(policy: Policy, task, rows: np.ndarray, budget: int, *, forks: str, generator: torch.Generator,
           rng: np.random.Generator, client: treecredit.CreditClient | None = None,
           trees: int = 2, forks_per_tree: int = 2) -> Batch:
    """Sample a batch for prompts `rows` with at most `budget` generated tokens per prompt. `forks`: "chain"
    (independent samples from one root), "random" or "suggest" (tree arms: where to branch)."""
    batch = Batch()
    roots = [[batch.add(-1, int(row)) for _ in range(1 if forks == "chain" else trees)] for row in rows]
    remaining = np.full(len(rows), budget)
    suggested: set[int] = set()  # tokens SuggestForks proposed that were already resampled
    for round_ in range(budget):
        ranked = _suggested(client, batch, task, suggested) if forks == "suggest" and round_ else {}
        starts = []  # (prompt index, node to branch from)
        for i, tree_roots in enumerate(roots):
            for root in tree_roots:
                if forks == "chain":
                    candidates = [root] * (remaining[i] // task.max_len)
                elif round_ == 0:
                    candidates = [root]
                elif forks == "suggest":
                    tokens = ranked.get(root, [])[:forks_per_tree]
                    suggested.update(tokens)
                    candidates = [batch.parent[t] for t in tokens]
                else:
                    candidates = rng.permutation(_open_nodes(batch, task, root))[:forks_per_tree].tolist()
                for node in candidates:
                    if task.max_len - batch.depth[node] <= remaining[i]:  # the longest branch still fits
                        starts.append((i, node))
                        remaining[i] -= task.max_len - batch.depth[node]
        if not starts:
            return batch
        prefixes = [batch.path(node) for _, node in starts]
        added, logprobs = rollout(policy, task, rows[[i for i, _ in starts]], prefixes, generator)
        for (i, node), actions, lps in zip(starts, added, logprobs):
            remaining[i] += task.max_len - batch.depth[node] - len(actions)  # give back what the branch left unused
            for action, lp in zip(actions, lps):
                node = batch.add(node, batch.row[node], action, lp)
    return batch


def _open_nodes(batch: Batch, task, root: int) -> list[int]:
    """Nodes of `root`'s tree from which an episode can still continue (the root, and unfinished prefixes)."""
    return [n for n in range(root, len(batch.parent)) if batch.tree[n] == root and not task.is_over(batch.path(n))]


def _suggested(client: treecredit.CreditClient, batch: Batch, task, used: set[int]) -> dict[int, list[int]]:
    """SuggestForks' ranked tokens per tree (branching at a token resamples it from its parent), skipping tokens
    already resampled."""
    suggestions = client.suggest_forks(batch.forest(task), top_n=8, tail_guard=0)
    ranked: dict[int, list[int]] = {}
    for root, node in zip(suggestions.root.tolist(), suggestions.node.tolist()):
        if node not in used:
            ranked.setdefault(root, []).append(node)
    return ranked
