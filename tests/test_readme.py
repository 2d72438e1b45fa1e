"""The README's client example runs as written, against a real server, and gives the values worked out by hand."""

import re

import numpy as np

from readme_example import README, client_example


def test_readme_client_example_runs(server, capsys):
    namespace: dict = {}
    exec(compile(client_example(server.target), "README.md", "exec"), namespace)
    assert "Preferences(winner=" in capsys.readouterr().out
    # By hand (ALGORITHMS.md sections 2-3): leaf rewards 1, 0, 0, 0 in one group and one tree have mean 1/4 and
    # sample std 1/2, so z = 3/2 and -1/2 (with std + 1e-6); tree_grpo adds the same z within the tree. A node's
    # advantage is the mean over its leaves: root 0, plan_a (3 - 1) / 2 = 1, plan_b -1.
    result = namespace["result"]
    z_win, z_lose = 0.75 / (0.5 + 1e-6), -0.25 / (0.5 + 1e-6)
    leaf = [2 * z_win, 2 * z_lose, 2 * z_lose, 2 * z_lose]
    np.testing.assert_allclose(result.node_advantages, [0, (leaf[0] + leaf[1]) / 2, 2 * z_lose, *leaf], atol=1e-12)
    # Sibling pairs whose mean rewards differ: plan_a (1/2) over plan_b (0) at depth 1; move 3 over move 4 at depth 2.
    prefs = result.preferences
    assert list(zip(prefs.winner.tolist(), prefs.loser.tolist(), prefs.depth.tolist())) == [(1, 2, 1), (3, 4, 2)]
    np.testing.assert_allclose(prefs.margin, [0.5, 1.0])
    advantages, mask, leaf_ids = namespace["advantages"], namespace["mask"], namespace["leaf_ids"]
    assert leaf_ids.tolist() == [3, 4, 5, 6] and mask.sum(axis=1).tolist() == [8, 7, 8, 6]
    np.testing.assert_allclose(advantages.sum(axis=1), np.array(leaf) * [8, 7, 8, 6], atol=1e-9)


def test_readme_training_step_runs(server):
    """The "Train on the packed tree" step runs on the client example's forest and gives every parameter a
    finite gradient."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    training_step = next(block for block in blocks if "client.pack" in block)
    namespace: dict = {}
    for block in (client_example(server.target), training_step.replace("optimizer.step()", "")):
        exec(compile(block.replace("127.0.0.1:50051", server.target), "README.md", "exec"), namespace)
    assert len(namespace["microbatches"]) > 1
    for module in ("embed", "block", "head"):
        grads = [p.grad for p in namespace[module].parameters()]
        assert all(g is not None and g.isfinite().all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
