"""The learning experiment (experiments/learning, docs/LEARNING.md): its exact advantage against a brute-force
enumeration written from the definition, its statistics against hand-computed values, and the whole pipeline in
quick mode (`make learning QUICK=1`) writing every output. Outcomes are not asserted: one seed, two updates."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.learning.policy import Policy, exact_values, next_action_logprobs
from experiments.learning.stats import sign_agreement, spearman
from experiments.learning.tasks import TASKS
from experiments.learning.train import ARMS, CREDIT_ESTIMATORS

ROOT = Path(__file__).parents[1]


def expected_reward(policy, task, row: int, prefix: list[int]) -> float:
    """V(prefix) from its definition, by slow recursion down to the end of every episode (no pruning)."""
    if task.is_over(prefix):
        return float(task.outcome(np.array([row]), np.array([prefix], dtype=np.int64))[0])
    probs = next_action_logprobs(policy, task.prompts[[row]], [prefix])[0].double().exp().tolist()
    return sum(p * expected_reward(policy, task, row, prefix + [a]) for a, p in enumerate(probs))


@pytest.mark.parametrize("name, prefixes", [
    ("keychain2", [[], [0], [1], [2], [3]]),
    ("keychain6", [[0, 1, 2], [3, 3, 0, 1], "key3", "key4"]),
    ("keychain6_fraction", [[0, 1, 2, 3], "key3", "key4"]),
    ("modular", [[0, 1, 2], [3, 3, 0], [1, 2, 0, 3]]),
])
def test_exact_advantage_matches_the_definition(name, prefixes):
    task = TASKS[name](3)
    torch.manual_seed(3)
    policy = Policy(task)
    row = int(task.train_rows[1])
    exact = exact_values(policy, task, np.array([row]))
    for prefix in prefixes:
        if isinstance(prefix, str):  # a correct prefix of the key, where the outcome is still open
            prefix = task.keys[row, : int(prefix[3:])].tolist()
        for action in range(task.num_actions):
            want = (expected_reward(policy, task, row, prefix + [action])
                    - expected_reward(policy, task, row, prefix))
            got = exact.advantage(np.array([row]), [prefix], np.array([action]))[0]
            assert got == pytest.approx(want, abs=1e-6), (prefix, action)


def test_spearman_and_sign_agreement_by_hand():
    # ranks of x: 1, 2.5, 2.5, 4; of y: 4, 3, 2, 1 -> Pearson of the ranks = -0.9486832980505138
    assert spearman(np.array([0.1, 0.5, 0.5, 2.0]), np.array([9.0, 3.0, 1.0, 0.0])) == pytest.approx(-0.9486832980505138)
    assert np.isnan(spearman(np.array([1.0, 1.0]), np.array([0.0, 2.0])))
    # pairs where both are non-zero: (1, 2) agree, (-1, 3) disagree, (2, -1) disagree; (0, 5) and (4, 0) skipped
    assert sign_agreement(np.array([1.0, -1.0, 2.0, 0.0, 4.0]), np.array([2.0, 3.0, -1.0, 5.0, 0.0])) == pytest.approx(1 / 3)


def test_quick_run_writes_every_output(tmp_path):
    """`make learning QUICK=1`: the sweep, every task x arm, credit accuracy, figures and tables are written."""
    run = subprocess.run([sys.executable, "-m", "experiments.learning", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["runs"]
    assert {(r["task"], r["arm"]) for r in runs} == {(t, a) for t in TASKS for a in ARMS} - {("modular", "oracle")}
    for r in runs:
        updates, tokens = np.array([point[:2] for point in r["curve"]]).T
        assert list(updates) == [0, 1, 2]
        assert tokens[0] == 0 and np.all(np.diff(tokens) > 0)
        assert np.all(np.diff(tokens) <= r["budget"] * r["prompts"])  # never over the token budget
        assert all(0 <= p <= 1 for point in r["curve"] for p in point[2:])
        if r["arm"] == "grpo":
            assert set(r["credit_accuracy"]) == {"0", "1", "2"}
            assert all(set(a) == set(CREDIT_ESTIMATORS) for a in r["credit_accuracy"].values())
    assert results["sweep"] and results["meta"]["lr"] in {r["lr"] for r in results["sweep"]}
    for figure in ("learning_sampled.png", "learning_greedy.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = (tmp_path / "results.md").read_text()
    assert "### Credit accuracy" in tables and "| keychain10 | tree_grpo |" in tables
