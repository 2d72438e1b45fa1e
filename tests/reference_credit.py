"""ALGORITHMS.md sections 2-3 written the slow, obvious way: per node, per leaf, in float64 Python."""

from __future__ import annotations

import math
from statistics import mean, stdev

import numpy as np

EPS = 1e-6


def z(x: float, sample: list[float], normalize_std: bool = True) -> float:
    if len(sample) == 1:
        return 0.0
    centred = x - mean(sample)
    return centred / (stdev(sample) + EPS) if normalize_std else centred


class Tree:
    def __init__(self, parent, group, reward):
        self.parent = [int(p) for p in parent]
        self.n = len(self.parent)
        self.children = [[] for _ in range(self.n)]
        for i, p in enumerate(self.parent):
            if p >= 0:
                self.children[p].append(i)
        self.root = []
        for i, p in enumerate(self.parent):
            self.root.append(i if p < 0 else self.root[p])
        self.group = [group[self.root[i]] for i in range(self.n)]
        self.depth = []
        for i, p in enumerate(self.parent):
            self.depth.append(0 if p < 0 else self.depth[p] + 1)
        self.reward = [float(r) for r in reward]
        self.leaves = [i for i in range(self.n) if not self.children[i]]

    def leaves_below(self, n: int) -> list[int]:
        return [l for l in self.leaves if n in self.path(l)]

    def path(self, n: int) -> list[int]:
        out = []
        while n >= 0:
            out.append(n)
            n = self.parent[n]
        return out[::-1]

    def V(self, n: int) -> float:
        return mean(self.reward[l] for l in self.leaves_below(n))

    def Vg(self, n: int) -> float:
        return mean(self.reward[l] for l in self.leaves if self.group[l] == self.group[n])


def advantages(tree: Tree, estimator: str, normalize_std=True, sibling_std=False):
    node = [0.0] * tree.n
    leaf = [math.nan] * tree.n
    if estimator in ("grpo", "tree_grpo"):
        for l in tree.leaves:
            in_group = [tree.reward[m] for m in tree.leaves if tree.group[m] == tree.group[l]]
            leaf[l] = z(tree.reward[l], in_group, normalize_std)
            if estimator == "tree_grpo":
                in_tree = [tree.reward[m] for m in tree.leaves if tree.root[m] == tree.root[l]]
                leaf[l] += z(tree.reward[l], in_tree, normalize_std)
        for n in range(tree.n):
            node[n] = mean(leaf[l] for l in tree.leaves_below(n))
        return node, leaf
    for n in range(tree.n):
        p = tree.parent[n]
        v_parent = tree.Vg(n) if p < 0 else tree.V(p)
        if estimator == "treerl":
            node[n] = ((tree.V(n) - tree.Vg(n)) + (tree.V(n) - v_parent)) / math.sqrt(len(tree.leaves_below(n)))
        else:
            node[n] = tree.V(n) - v_parent
            if sibling_std:
                if p < 0:
                    family = [m for m in range(tree.n) if tree.parent[m] < 0 and tree.group[m] == tree.group[n]]
                else:
                    family = tree.children[p]
                node[n] = 0.0 if len(family) == 1 else node[n] / (stdev(tree.V(m) for m in family) + EPS)
    return node, leaf


def preferences(tree: Tree, min_margin=0.0) -> set[tuple[int, int, float, int]]:
    pairs = set()
    for p in range(tree.n):
        if len(tree.children[p]) < 2:
            continue
        for i in tree.children[p]:
            for j in tree.children[p]:
                margin = tree.V(i) - tree.V(j)
                if i != j and margin > min_margin:
                    pairs.add((i, j, round(margin, 9), tree.depth[p] + 1))
    return pairs


def sharing(tree: Tree, num_tokens) -> tuple[int, int]:
    unique = int(sum(num_tokens))
    trajectory = int(sum(num_tokens[m] for l in tree.leaves for m in tree.path(l)))
    return unique, trajectory


def depth_profile(tree: Tree, node_advantage, pairs, num_tokens):
    deepest = max(tree.depth, default=0)
    rows = []
    for d in range(1, deepest + 1):
        at = [n for n in range(tree.n) if tree.depth[n] == d]
        rows.append((
            d,
            sum(1 for n in range(tree.n) if tree.depth[n] == d - 1 and len(tree.children[n]) >= 2),
            sum(1 for pair in pairs if pair[3] == d),
            mean(abs(node_advantage[n]) for n in at),
            int(sum(num_tokens[n] for n in at)),
        ))
    return rows


def token_advantages(tree: Tree, leaf: int, node_advantage, leaf_advantage, num_tokens, loss_mask, scope):
    offsets = np.concatenate(([0], np.cumsum(num_tokens)))
    out = []
    for n in tree.path(leaf):
        value = leaf_advantage[leaf] if scope == "leaf" else node_advantage[n]
        for t in range(offsets[n], offsets[n + 1]):
            out.append(value * loss_mask[t])
    return np.array(out, dtype=np.float64)
