"""Toy tasks whose exact advantage can be enumerated: Key chain and Modular target.

A task has prompts (`prompts [N, prompt_len]` of prompt-symbol ids), `num_actions` actions, episodes of at most
`max_len` actions, and one vectorised rule: `outcome(rows [F], actions [F, k])`, the terminal reward of each
prefix once it no longer depends on later actions (NaN while it still does). Reward 1 means success.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KeyChain:
    """Each prompt id k has a secret key in `V^H`. `prefix`: reward = correct prefix length / H (the first
    mistake settles it); `fraction`: reward = fraction of positions correct (settled only at the end)."""

    keys: np.ndarray  # int64 [K, H]
    reward: str = "prefix"
    num_actions: int = 4

    @classmethod
    def make(cls, horizon: int, reward: str, seed: int, num_prompts: int = 8) -> KeyChain:
        keys = np.random.default_rng([seed, horizon]).integers(0, 4, size=(num_prompts, horizon))
        return cls(keys, reward)

    @property
    def max_len(self) -> int:
        return self.keys.shape[1]

    @property
    def prompts(self) -> np.ndarray:
        return np.arange(len(self.keys))[:, None]

    @property
    def num_symbols(self) -> int:
        return len(self.keys)

    train_rows = eval_rows = property(lambda self: np.arange(len(self.keys)))  # memorisation: no held-out split

    def is_over(self, actions: list[int]) -> bool:
        return len(actions) == self.max_len

    def outcome(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        k, horizon = actions.shape[1], self.max_len
        correct = actions == self.keys[rows, :k]
        if self.reward == "fraction":
            return correct.mean(1) if k == horizon else np.full(len(rows), np.nan)
        first_mistake = np.where(correct.all(1), k, np.argmin(correct, 1))
        settled = (first_mistake < k) | (k == horizon)
        return np.where(settled, first_mistake / horizon, np.nan)


@dataclass
class ModularTarget:
    """Prompt (s, g) in Z_11; actions +1, +3, x2, x5, stop; at most 6 actions; reward 1 iff the value at the
    end (stop, or the 6th action) is g. 90 training pairs, 31 held out."""

    train_rows: np.ndarray
    eval_rows: np.ndarray
    modulus: int = 11
    max_len: int = 6
    num_actions: int = 5
    STOP = 4

    @classmethod
    def make(cls, seed: int) -> ModularTarget:
        order = np.random.default_rng([seed, 11]).permutation(121)
        return cls(np.sort(order[:90]), np.sort(order[90:]))

    @property
    def prompts(self) -> np.ndarray:
        pairs = np.arange(self.modulus ** 2)
        return np.stack([pairs // self.modulus, self.modulus + pairs % self.modulus], 1)  # s, then g as symbol 11+g

    @property
    def num_symbols(self) -> int:
        return 2 * self.modulus

    def is_over(self, actions: list[int]) -> bool:
        return len(actions) == self.max_len or (len(actions) > 0 and actions[-1] == self.STOP)

    def outcome(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        value, goal = rows // self.modulus, rows % self.modulus
        for column in actions.T:  # a stop can only be the last action
            value = np.select([column == 0, column == 1, column == 2, column == 3],
                              [value + 1, value + 3, value * 2, value * 5], value) % self.modulus
        k = actions.shape[1]
        over = (k == self.max_len) | ((actions[:, -1] == self.STOP) if k else False)
        return np.where(over, (value == goal).astype(float), np.nan)


TASKS = {
    "keychain2": lambda seed: KeyChain.make(2, "prefix", seed),
    "keychain6": lambda seed: KeyChain.make(6, "prefix", seed),
    "keychain10": lambda seed: KeyChain.make(10, "prefix", seed),
    "keychain6_fraction": lambda seed: KeyChain.make(6, "fraction", seed),
    "modular": ModularTarget.make,
}


def episode_rewards(task, rows: np.ndarray, paths: list[list[int]]) -> np.ndarray:
    """float64 `[L]`: the reward of each finished episode (`paths` of actions, one prompt row each)."""
    rewards = np.empty(len(paths))
    lengths = np.array([len(p) for p in paths])
    for length in np.unique(lengths):
        chosen = np.flatnonzero(lengths == length)
        actions = np.array([paths[i] for i in chosen], dtype=np.int64).reshape(len(chosen), length)
        rewards[chosen] = task.outcome(rows[chosen], actions)
    return rewards
