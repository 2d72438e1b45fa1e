"""Tree arithmetic (`treecredit.topology`) against plain recursive Python on random and deep forests."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from treecredit.topology import Topology


@st.composite
def parents(draw) -> np.ndarray:
    """Forests whose ids are not in pre-order: each node hangs under a random earlier node (or is a root),
    with long chains mixed in."""
    n = draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    chain_bias = draw(st.floats(0, 1))
    parent = [-1]
    for i in range(1, n):
        draw_kind = rng.random()
        parent.append(-1 if draw_kind < 0.1 else i - 1 if draw_kind < 0.1 + 0.9 * chain_bias else int(rng.integers(0, i)))
    return np.array(parent)


def reference(parent: np.ndarray):
    """Pre-order (roots by id, children by id), depth, root, ancestors-or-self of each node, by recursion."""
    n = len(parent)
    children = [[c for c in range(n) if parent[c] == p] for p in range(n)]
    order = []

    def visit(node: int) -> None:
        order.append(node)
        for c in children[node]:
            visit(c)

    for r in range(n):
        if parent[r] < 0:
            visit(r)
    path = []
    for i in range(n):
        up = [i]
        while parent[up[-1]] >= 0:
            up.append(int(parent[up[-1]]))
        path.append(up)
    return order, [len(p) - 1 for p in path], [p[-1] for p in path], path


@settings(max_examples=150, deadline=None)
@given(parent=parents(), seed=st.integers(0, 2**32 - 1))
def test_every_quantity_matches_recursion(parent, seed):
    topology = Topology.of(parent)
    order, depth, root, path = reference(parent)
    n = len(parent)
    assert topology.preorder.tolist() == order
    assert topology.depth.tolist() == depth and topology.root.tolist() == root
    below = [[m for m in range(n) if i in path[m]] for i in range(n)]
    assert topology.subtree_size.tolist() == [len(b) for b in below]

    rng = np.random.default_rng(seed)
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4, n)
    counts = rng.integers(-(2**40), 2**40, n)
    np.testing.assert_allclose(topology.subtree_sum(values), [sum(values[b]) for b in below], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(topology.path_sum(values), [sum(values[p]) for p in path], rtol=1e-12, atol=1e-9)
    assert topology.subtree_sum(counts).tolist() == [int(sum(counts[b])) for b in below]
    assert topology.path_sum(counts).tolist() == [int(sum(counts[p])) for p in path]
    # A leaf's subtree sum is its value exactly; so is a root's path sum.
    leaves, roots = topology.leaves, np.flatnonzero(parent < 0)
    assert topology.subtree_sum(values)[leaves].tolist() == values[leaves].tolist()
    assert topology.path_sum(values)[roots].tolist() == values[roots].tolist()

    marked = rng.random(n) < 0.4
    nearest = [next((a for a in p[1:] if marked[a]), -1) for p in path]
    assert topology.nearest_ancestor(marked).tolist() == nearest
    nodes = rng.integers(0, n, int(rng.integers(0, 5)))
    rows, on_path = topology.path_pairs(nodes)
    assert sorted(zip(rows.tolist(), on_path.tolist())) == sorted((r, a) for r, x in enumerate(nodes) for a in path[x])


def test_equal_subtrees_sum_equal_whatever_comes_before():
    """Ties stay ties: two siblings with the same leaf values get bit-identical sums, even after a million
    large values in pre-order (prefix sums alone would give them different rounding)."""
    big = np.full(1_000_000, 1e6 / 3)
    parent = np.concatenate((np.full(len(big), -1), [-1, len(big), len(big), len(big) + 1, len(big) + 2]))
    values = np.concatenate((big, [0.0, 0.0, 0.0, 0.1, 0.1]))
    sums = Topology.of(parent).subtree_sum(values)
    assert sums[len(big) + 1] == sums[len(big) + 2] == 0.1


def test_a_chain_of_a_hundred_thousand_nodes():
    n = 100_000
    topology = Topology.of(np.arange(-1, n - 1))
    assert topology.depth.tolist() == list(range(n)) and topology.preorder.tolist() == list(range(n))
    assert topology.subtree_sum(np.ones(n, np.int64)).tolist() == list(range(n, 0, -1))
    assert topology.path_sum(np.ones(n, np.int64)).tolist() == list(range(1, n + 1))
