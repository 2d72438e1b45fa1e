"""The policy (a tiny causal transformer over prompt symbols then actions) and what is read from it: next-action
log-probabilities, sampled episodes, the exact values `V(prefix)`, `Q(prefix, a)` by enumeration, success rates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments.learning.tasks import episode_rewards


class Policy(nn.Module):
    """Token ids `[B, T]` (prompt symbols, then actions as `num_symbols + a`) -> action logits `[B, T, A]`;
    position t predicts the action after token t."""

    def __init__(self, task, width: int = 32, layers: int = 2, heads: int = 4):
        super().__init__()
        self.num_symbols = task.num_symbols
        self.embed = nn.Embedding(task.num_symbols + task.num_actions, width)
        self.position = nn.Embedding(task.prompts.shape[1] + task.max_len, width)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, task.num_actions))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(length)
        hidden = self.embed(tokens) + self.position(torch.arange(length))
        return self.head(self.blocks(hidden, mask=causal, is_causal=True))

    def packed(self, tokens: torch.Tensor, positions: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """One packed sequence: token ids `[T]`, `positions [T]`, `attend` bool `[T, T]` (query may see key) ->
        logits over the whole vocabulary `[T, num_symbols + A]`. The policy never emits a prompt symbol: those
        logits are -1e4, whose probability is exactly 0 in float32, so the actions' log-probs are unchanged."""
        hidden = self.embed(tokens) + self.position(positions)
        actions = self.head(self.blocks(hidden[None], mask=~attend))[0]
        return nn.functional.pad(actions, (self.num_symbols, 0), value=-1e4)


def sequences(policy: Policy, prompts: np.ndarray, paths: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(tokens int64 [L, prompt_len + T], actions int64 [L, T])` right-padded with action 0; `T` = longest path."""
    width = max((len(p) for p in paths), default=0)
    actions = np.zeros((len(paths), width), np.int64)
    for i, path in enumerate(paths):
        actions[i, : len(path)] = path
    tokens = np.concatenate([prompts, policy.num_symbols + actions], 1)
    return torch.from_numpy(tokens), torch.from_numpy(actions)


def action_logprobs(policy: Policy, prompts: np.ndarray, paths: list[list[int]]) -> torch.Tensor:
    """float32 `[L, T]`: log pi(action t | prompt, actions < t) of each path (padding: the log-prob of action 0)."""
    tokens, actions = sequences(policy, prompts, paths)
    logits = policy(tokens[:, :-1])[:, prompts.shape[1] - 1:]
    return torch.log_softmax(logits, -1).gather(-1, actions[..., None])[..., 0]


@torch.no_grad()
def next_action_logprobs(policy: Policy, prompts: np.ndarray, paths: list[list[int]]) -> torch.Tensor:
    """float32 `[L, A]`: the distribution over the action after each path (paths may differ in length)."""
    tokens, _ = sequences(policy, prompts, paths)
    last = prompts.shape[1] - 1 + torch.tensor([len(p) for p in paths])
    return torch.log_softmax(policy(tokens)[torch.arange(len(paths)), last], -1)


@torch.no_grad()
def rollout(policy: Policy, task, rows: np.ndarray, prefixes: list[list[int]],
            generator: torch.Generator | None = None, greedy: bool = False) -> tuple[list[list[int]], list[list[float]]]:
    """Continue each prefix to the end of its episode: `(new actions, their log-probs)` per prefix."""
    paths = [list(p) for p in prefixes]
    added: list[list[int]] = [[] for _ in paths]
    logprobs: list[list[float]] = [[] for _ in paths]
    active = [i for i, p in enumerate(paths) if not task.is_over(p)]
    while active:
        logp = next_action_logprobs(policy, task.prompts[rows[active]], [paths[i] for i in active])
        chosen = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
        picked = logp.gather(-1, chosen[:, None])[:, 0]
        for i, action, lp in zip(active, chosen.tolist(), picked.tolist()):
            paths[i].append(action)
            added[i].append(action)
            logprobs[i].append(lp)
        active = [i for i in active if not task.is_over(paths[i])]
    return added, logprobs


@dataclass
class ExactValues:
    """Exact `V(prefix)` and `Q(prefix, a)` under the policy for every unsettled prefix of some prompts, keyed by
    `code(row, prefix)`."""

    codes: np.ndarray      # int64 [S], sorted
    q: np.ndarray          # float64 [S, A]
    v: np.ndarray          # float64 [S]
    base: int
    max_len: int

    def code(self, rows: np.ndarray, prefixes: list[list[int]] | np.ndarray) -> np.ndarray:
        """int64 `[F]`: row * base^max_len + sum_i (a_i + 1) base^i, unique across prefix lengths."""
        if isinstance(prefixes, np.ndarray):
            digits = (prefixes + 1) @ self.base ** np.arange(prefixes.shape[1], dtype=np.int64)
        else:
            digits = [sum((a + 1) * self.base ** i for i, a in enumerate(p)) for p in prefixes]
        return np.asarray(rows, np.int64) * self.base ** self.max_len + np.asarray(digits, np.int64)

    def advantage(self, rows: np.ndarray, prefixes: list[list[int]], actions: np.ndarray) -> np.ndarray:
        """float64 `[F]`: A*(prefix, action) = Q - V; 0 where the prefix has already settled the outcome."""
        codes = self.code(rows, prefixes)
        index = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        found = self.codes[index] == codes
        return np.where(found, self.q[index, actions] - self.v[index], 0.0)


@torch.no_grad()
def exact_values(policy: Policy, task, rows: np.ndarray) -> ExactValues:
    """Enumerate every unsettled prefix level by level (one batched forward per level), then back the leaf
    rewards up: Q(p, a) = R(p+a) if p+a is settled, else V(p+a); V(p) = sum_a pi(a | p) Q(p, a)."""
    num_actions = task.num_actions
    frontier_rows, frontier = np.asarray(rows, np.int64), np.zeros((len(rows), 0), np.int64)
    levels = []
    while len(frontier_rows):
        probs = next_action_logprobs(policy, task.prompts[frontier_rows], frontier.tolist()).exp().double().numpy()
        child_rows = np.repeat(frontier_rows, num_actions)
        children = np.concatenate([np.repeat(frontier, num_actions, 0),
                                   np.tile(np.arange(num_actions), len(frontier_rows))[:, None]], 1)
        outcome = task.outcome(child_rows, children)
        levels.append((frontier_rows, frontier, probs, outcome))
        open_ = np.isnan(outcome)
        frontier_rows, frontier = child_rows[open_], children[open_]
    below = np.zeros(0)
    parts = []
    for frontier_rows, frontier, probs, outcome in reversed(levels):
        q = outcome.copy()
        q[np.isnan(outcome)] = below
        q = q.reshape(len(frontier_rows), num_actions)
        below = (probs * q).sum(1)
        parts.append((frontier_rows, frontier, q, below))
    exact = ExactValues(np.zeros(0, np.int64), np.zeros((0, num_actions)), np.zeros(0), num_actions + 1, task.max_len)
    codes = np.concatenate([exact.code(r, f) for r, f, _, _ in parts])
    order = np.argsort(codes)
    return ExactValues(codes[order], np.concatenate([q for _, _, q, _ in parts])[order],
                       np.concatenate([v for _, _, _, v in parts])[order], num_actions + 1, task.max_len)


def success(policy: Policy, task, rows: np.ndarray, generator: torch.Generator, samples: int = 32) -> tuple[float, float]:
    """`(greedy, sampled)` success rate on `rows`: of the greedy episode, and of `samples` sampled episodes per
    prompt, averaged over the prompts."""
    greedy, _ = rollout(policy, task, rows, [[] for _ in rows], greedy=True)
    repeated = np.repeat(rows, samples)
    sampled, _ = rollout(policy, task, repeated, [[] for _ in repeated], generator)
    return (float(np.mean(episode_rewards(task, rows, greedy) == 1.0)),
            float(np.mean(episode_rewards(task, repeated, sampled) == 1.0)))
