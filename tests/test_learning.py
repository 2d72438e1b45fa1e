"""The learning experiment (experiments/learning, docs/LEARNING.md): its exact advantage against a brute-force
enumeration written from the definition, its statistics against hand-computed values, the packed training loss
against the same loss with a row per trajectory on real batches credited by a real server, and the whole pipeline
in quick mode (`make learning QUICK=1`) writing every output. Outcomes are not asserted: one seed, two updates."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import treecredit
import treecredit.torch
from experiments.learning.__main__ import SIZES
from experiments.learning.policy import Policy, action_logprobs, exact_values, next_action_logprobs
from experiments.learning.sampling import sample
from experiments.learning.stats import sign_agreement, spearman
from experiments.learning.tasks import TASKS
from experiments.learning.train import ARMS, CREDIT_ESTIMATORS, packed_loss, padded_loss

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


def gradients(policy, loss) -> list[torch.Tensor]:
    policy.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in policy.parameters()]


def relative_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (0 where both are 0)."""
    scale = want.abs().max().item()
    return (got - want).abs().max().item() / scale if scale else got.abs().max().item()


@pytest.mark.parametrize("name", list(TASKS))
def test_packed_loss_and_gradients_equal_the_padded_ones(client, name):
    """On the experiment's batches (its budget per prompt, each arm's forks and estimator, credit from the
    server), training on `client.pack(...)` is training on `score(...).padded()`: every trajectory token's log-prob,
    the loss (-token-mean of A, the ratio being 1) and every parameter's gradient agree within 1e-5 relative."""
    task = TASKS[name](7)
    torch.manual_seed(7)
    policy = Policy(task)
    generator, rng = torch.Generator().manual_seed(7), np.random.default_rng(7)
    budget, _ = SIZES[name]
    rows = rng.choice(task.train_rows, size=3, replace=False)  # the experiment's budget per prompt, fewer prompts
    prompt_len = task.prompts.shape[1]
    for arm, (forks, estimator) in ARMS.items():
        if estimator == "oracle":
            continue
        batch = sample(policy, task, rows, budget, forks=forks, generator=generator, rng=rng, client=client)
        forest = batch.forest(task)
        advantages, mask, _ = client.score(forest, estimator=estimator).padded()
        assert not mask[:, :prompt_len].any()  # the prompt is input, never trained on
        advantages, mask = advantages[:, prompt_len:], mask[:, prompt_len:]
        packed = client.pack(forest, estimator, loss_agg_mode="token-mean")
        assert np.array_equal(packed.leaf_ids, batch.leaves)
        if forks != "chain":  # siblings share their prefix: it is packed once
            assert packed.num_tokens < len(batch.leaves) * prompt_len + mask.sum()

        path_rows, paths = batch.paths()
        padded_logprobs = action_logprobs(policy, task.prompts[path_rows], paths).detach()
        logits = policy.packed(torch.as_tensor(packed.input_ids, dtype=torch.long),
                               torch.as_tensor(packed.position_ids, dtype=torch.long),
                               treecredit.torch.tree_attention_mask(packed))
        unpacked = packed.unpack(treecredit.torch.packed_logprobs(logits, packed).detach().numpy())[:, prompt_len:]
        np.testing.assert_allclose(unpacked[mask], padded_logprobs.numpy()[mask], rtol=1e-5, atol=1e-6)

        want = padded_loss(policy, task, batch, advantages, mask)
        got = packed_loss(policy, packed)
        # at ratio 1 the loss is -mean over trajectory tokens of A, by hand in float64
        by_hand = -advantages[mask].astype(np.float64).sum() / mask.sum()
        scale = max(np.abs(advantages[mask]).mean(), 1e-12)
        assert abs(want.item() - by_hand) <= 1e-5 * scale, arm
        assert abs(got.item() - want.item()) <= 1e-5 * scale, arm
        for packed_grad, padded_grad in zip(gradients(policy, got), gradients(policy, want), strict=True):
            assert relative_difference(packed_grad, padded_grad) <= 1e-5, arm


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
