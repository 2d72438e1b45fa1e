"""Trainer adapters on small synthetic batches shaped like verl's, OpenRLHF's and TRL's, scored by the real server."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import torch

import treecredit
from forests import random_forest
from treecredit.adapters import generic, score_batch
from treecredit.adapters import verl as verl_adapter
from treecredit_server.process import start_server

EPS = 1e-6


def z(values: np.ndarray) -> np.ndarray:
    """Section 2's z over one set (sample std, 0 for a lone sample)."""
    if len(values) == 1:
        return np.zeros(1)
    return (values - values.mean()) / (values.std(ddof=1) + EPS)


def outcome_rewards(rewards: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """verl's token_level_rewards: each row's reward on its last response token."""
    token_level = np.zeros(mask.shape, np.float32)
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    token_level[np.arange(len(rewards)), last] = rewards
    return token_level


# A hand-made verl batch: uid "q" holds one tree  root -> a -> {b, c}, root -> d ; uid "r" root -> {x, y}.
#   row 0: a(2) b(4)   R=1      row 1: a(2) c(3)   R=0      row 2: d(5)   R=1
#   row 3: x(6)        R=1      row 4: y(4)        R=0
TREE_ROWS = dict(
    uid=np.array(["q", "q", "q", "r", "r"], dtype=object),
    tree_path=[["a", "b"], ["a", "c"], ["d"], ["x"], ["y"]],
    segment_lengths=[[2, 4], [2, 3], [5], [6], [4]],
    rewards=np.array([1.0, 0.0, 1.0, 1.0, 0.0]),
)


def tree_batch(width: int = 7) -> tuple[np.ndarray, np.ndarray]:
    ends = np.array([sum(lengths) for lengths in TREE_ROWS["segment_lengths"]])
    mask = np.arange(width) < ends[:, None]
    mask[0, 3] = False  # a tool-output token inside segment b
    return outcome_rewards(TREE_ROWS["rewards"], mask), mask


def test_verl_estimator_hook_gives_value_diff_per_segment(client):
    token_level_rewards, mask = tree_batch()
    estimate = verl_adapter.advantage_estimator(client, "value_diff")
    advantages, returns = estimate(
        token_level_rewards=token_level_rewards, response_mask=mask, config=None, index=TREE_ROWS["uid"],
        tree_path=TREE_ROWS["tree_path"], segment_lengths=TREE_ROWS["segment_lengths"],
    )
    # V(q) = 2/3; V(a) = 1/2; a(n) = V(n) - V(parent(n)).
    a, b, c, d = 0.5 - 2 / 3, 1 - 0.5, 0 - 0.5, 1 - 2 / 3
    expected = np.array([
        [a, a, b, 0, b, b, 0],
        [a, a, c, c, c, 0, 0],
        [d, d, d, d, d, 0, 0],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0],  # r: one tree forking at its root; V(x) - V(r)
        [-0.5, -0.5, -0.5, -0.5, 0, 0, 0],
    ], np.float32)
    np.testing.assert_allclose(advantages, expected, atol=1e-6)
    assert returns is advantages
    assert advantages.shape == mask.shape and advantages.dtype == np.float32


def test_verl_compute_advantage_reads_a_dataproto_and_keeps_torch_dtype_and_device(client):
    token_level_rewards, mask = tree_batch()
    data = SimpleNamespace(
        batch={"token_level_rewards": torch.from_numpy(token_level_rewards).to(torch.bfloat16),
               "response_mask": torch.from_numpy(mask).long()},
        non_tensor_batch={"uid": TREE_ROWS["uid"],
                          "tree_path": np.array(TREE_ROWS["tree_path"], dtype=object),
                          "segment_lengths": np.array(TREE_ROWS["segment_lengths"], dtype=object)},
    )
    verl_adapter.compute_advantage(data, client, "tree_grpo")
    advantages = data.batch["advantages"]
    assert isinstance(advantages, torch.Tensor) and advantages.dtype == torch.bfloat16
    assert advantages.shape == mask.shape
    # tree_grpo with one tree per uid: A(l) = z(R(l); group) + z(R(l); tree) = 2 z(R(l); group).
    rewards = TREE_ROWS["rewards"]
    leaf = 2 * np.concatenate((z(rewards[:3]), z(rewards[3:])))
    np.testing.assert_allclose(advantages.float().numpy(), np.where(mask, leaf[:, None], 0), atol=2e-2)
    assert data.batch["returns"] is advantages


def test_verl_estimator_without_tree_fields_raises_instead_of_scoring_chains(client):
    token_level_rewards, mask = tree_batch()
    estimate = verl_adapter.advantage_estimator(client, "tree_grpo")
    # What verl's trainers pass an estimator: no tree fields.
    with pytest.raises(ValueError, match=r"^tree_path: the treecredit estimator got no tree fields"):
        estimate(token_level_rewards=token_level_rewards, response_mask=mask, config=None, index=TREE_ROWS["uid"])
    with pytest.raises(ValueError, match=r"^segment_lengths: the treecredit estimator got no tree fields"):
        estimate(token_level_rewards, mask, TREE_ROWS["uid"], tree_path=TREE_ROWS["tree_path"])
    data = SimpleNamespace(batch={"token_level_rewards": token_level_rewards, "response_mask": mask},
                           non_tensor_batch={"uid": TREE_ROWS["uid"]})
    with pytest.raises(ValueError, match=r"^tree_path: "):
        verl_adapter.compute_advantage(data, client, "tree_grpo")
    assert "advantages" not in data.batch


def test_verl_trees_context_hands_the_fields_to_the_estimator_verl_calls(client):
    token_level_rewards, mask = tree_batch()
    estimate = verl_adapter.advantage_estimator(client, "value_diff")
    direct, _ = estimate(token_level_rewards, mask, TREE_ROWS["uid"], tree_path=TREE_ROWS["tree_path"],
                         segment_lengths=TREE_ROWS["segment_lengths"])
    rows = {"tree_path": np.array(TREE_ROWS["tree_path"], dtype=object),
            "segment_lengths": np.array(TREE_ROWS["segment_lengths"], dtype=object)}
    with verl_adapter.trees(**verl_adapter.tree_kwargs(rows)):
        advantages, _ = estimate(token_level_rewards=token_level_rewards, response_mask=mask, config=None,
                                 index=TREE_ROWS["uid"])
    np.testing.assert_array_equal(advantages, direct)
    assert direct[0, 0] == pytest.approx(0.5 - 2 / 3)  # V(a) - V(q), the value_diff test above
    with pytest.raises(ValueError, match=r"^tree_path: "):  # the block is over
        estimate(token_level_rewards, mask, TREE_ROWS["uid"])


def test_verl_several_trees_per_uid_score_the_intra_tree_term_per_tree(client):
    # uid "q": trees 0 and 1 reuse the same segment ids, which are scoped by tree.
    rewards = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    mask = np.ones((5, 4), bool)
    data = SimpleNamespace(
        batch={"token_level_rewards": outcome_rewards(rewards, mask), "response_mask": mask},
        non_tensor_batch={"uid": np.array(["q"] * 5, dtype=object),
                          "tree_id": np.array([0, 0, 1, 1, 1], dtype=object),
                          "tree_path": [["s", "t"], ["s", "u"], ["s", "t"], ["s", "u"], ["s", "v"]],
                          "segment_lengths": [[1, 3]] * 5},
    )
    verl_adapter.compute_advantage(data, client, "tree_grpo")
    expected = z(rewards) + np.concatenate((z(rewards[:2]), z(rewards[2:])))
    np.testing.assert_allclose(data.batch["advantages"][:, 0], expected, atol=1e-6)


def test_flat_grpo_batches_shaped_like_openrlhf_and_trl(client):
    rng = np.random.default_rng(3)
    groups, per_group, width = 4, 3, 9
    rewards = rng.integers(0, 3, groups * per_group).astype(np.float64)
    lengths = rng.integers(1, width + 1, groups * per_group)
    mask = np.arange(width) < lengths[:, None]
    expected = np.concatenate([z(rewards[g * per_group:(g + 1) * per_group]) for g in range(groups)])

    # OpenRLHF: consecutive samples per prompt, `action_mask`, torch tensors.
    openrlhf = score_batch(client, torch.tensor(rewards, dtype=torch.float32), torch.tensor(mask),
                           estimator="grpo", group_size=per_group)
    assert isinstance(openrlhf.token_advantages, torch.Tensor)
    np.testing.assert_allclose(openrlhf.sample_advantages.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(openrlhf.token_advantages.numpy(), np.where(mask, expected[:, None], 0), atol=1e-5)

    # TRL: prompt labels per sample (shuffled order), `completion_mask`, numpy; tree_grpo == grpo on chains.
    order = rng.permutation(len(rewards))
    prompts = np.array([f"prompt {i // per_group}" for i in range(len(rewards))], dtype=object)[order]
    trl = score_batch(client, rewards[order], mask[order], estimator="tree_grpo", group=prompts)
    np.testing.assert_allclose(trl.sample_advantages, expected[order], atol=1e-6)
    np.testing.assert_allclose(trl.token_advantages, np.where(mask[order], expected[order][:, None], 0), atol=1e-6)


def forest_as_rows(forest) -> dict:
    """A scored forest's trajectories as batch rows (leaves ascending), written with plain Python."""
    parent, num_tokens = forest.parent.tolist(), forest.num_tokens.tolist()
    roots, paths = {}, []
    for leaf in forest.leaves.tolist():
        path = [leaf]
        while parent[path[-1]] >= 0:
            path.append(parent[path[-1]])
        paths.append(path[::-1])
        roots[leaf] = path[-1]
    return dict(
        tree_path=paths,
        segment_lengths=[[num_tokens[n] for n in path] for path in paths],
        tree=[path[0] for path in paths],
        group=[forest.groups[forest.group[path[0]]] for path in paths],
        rewards=forest.reward[forest.leaves],
    )


@pytest.mark.parametrize("seed", range(3))
def test_random_trees_round_trip_to_the_advantages_of_the_original_forest(client, seed):
    forest = random_forest(np.random.default_rng(seed), groups=3, trees_per_group=2, max_depth=4)
    direct, direct_mask, _ = client.score(forest, "tree_grpo").padded()
    rows = forest_as_rows(forest)
    width = direct.shape[1] + 2
    mask = np.zeros((len(direct), width), bool)
    mask[:, :direct.shape[1]] = direct_mask
    credit = score_batch(client, rows["rewards"], mask, estimator="tree_grpo", group=rows["group"],
                         tree=rows["tree"], tree_path=rows["tree_path"], segment_lengths=rows["segment_lengths"])
    np.testing.assert_allclose(credit.token_advantages[:, :direct.shape[1]], direct, atol=1e-6)
    assert not credit.token_advantages[:, direct.shape[1]:].any()


def test_node_scoped_estimators_have_no_sample_advantage(client):
    credit = score_batch(client, [1.0, 0.0], np.ones((2, 3)), estimator="treerl", group_size=2)
    assert credit.sample_advantages is None
    with pytest.raises(ValueError, match="use token_advantages"):
        credit.batch.sample_advantages(credit.result)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(tree_path=[["a", "b"], ["a"]], segment_lengths=[[1, 2], [1]], mask=[[1, 1, 1], [1, 0, 0]]),
         r"tree_path\[1\]: ends at a segment that another sample continues past"),
        (dict(tree_path=[["a", "b"], ["a", "b"]], segment_lengths=[[1, 2], [1, 2]]),
         r"tree_path\[0\]: ends at the same segment as another sample"),
        (dict(tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 2], [2, 1]]),
         r"segment_lengths\[1\]\[0\]: segment 'a' has a different length than at segment_lengths\[0\]\[0\]"),
        (dict(tree_path=[["a", "b"], ["b", "c"]], segment_lengths=[[1, 2], [2, 1]]),
         r"tree_path\[1\]\[0\]: segment 'b' follows a different segment than at tree_path\[0\]\[1\]"),
        (dict(tree_path=[["a", "b"], []], segment_lengths=[[1, 2], []]), r"tree_path\[1\]: a sample needs"),
        (dict(tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 2], [1]]),
         r"segment_lengths\[1\]: 1 lengths for 2 segments"),
        (dict(tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 2], [1, 5]]),
         r"segment_lengths\[1\]: segments cover 6 columns of 3"),
        (dict(tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 2], [1, 1]]),
         r"mask\[1, 2\]: is 1 past the sample's last segment"),
        (dict(tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 2], [1, -1]]),
         r"segment_lengths\[1\]\[1\]: negative length -1"),
        (dict(segment_lengths=[[3], [3]]), r"segment_lengths: given without tree_path"),
    ],
)
def test_batches_that_are_not_forests_are_refused_naming_the_field(fields, message):
    mask = fields.pop("mask", np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=message):
        generic.to_forest([1.0, 0.0], mask, group=["q", "q"], **fields)


def test_batch_shape_errors():
    with pytest.raises(ValueError, match=r"rewards: 3 entries for a batch of 2"):
        generic.to_forest([1.0, 0.0, 1.0], np.ones((2, 3)), group_size=2)
    with pytest.raises(ValueError, match=r"group_size: 3 does not divide the batch of 2"):
        generic.to_forest([1.0, 0.0], np.ones((2, 3)), group_size=3)
    with pytest.raises(ValueError, match=r"^group_size: expected a whole number of samples, got 1.0$"):
        generic.to_forest([1.0, 0.0], np.ones((2, 3)), group_size=1.0)
    with pytest.raises(ValueError, match=r"^rewards: expected one reward per sample \(\[batch\]\), got shape \[1, 2\]$"):
        generic.to_forest([[1.0, 0.0]], np.ones((2, 3)), group_size=2)
    with pytest.raises(ValueError, match=r"^mask\[1, 0\]: nan is neither 0 nor 1$"):
        generic.to_forest([1.0, 0.0], [[1.0, 0.0], [np.nan, 0.0]], group_size=2)
    with pytest.raises(ValueError, match=r"index: verl's uid per row is required"):
        verl_adapter.to_forest(np.zeros((2, 3)), np.ones((2, 3)), None)


def test_the_sdk_imports_no_torch():
    code = "import sys, treecredit.adapters, treecredit.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# A server with small limits, so that real refusals (which name forest nodes) come back over gRPC.
MAX_NODES, MAX_TOKENS, MAX_SIBLING_PAIRS = 6, 5, 0


@pytest.fixture(scope="module")
def strict_client():
    started = start_server("--max-nodes", str(MAX_NODES), "--max-tokens", str(MAX_TOKENS),
                           "--max-sibling-pairs", str(MAX_SIBLING_PAIRS))
    started.drain_log()
    with treecredit.CreditClient(started.target, timeout=60) as connected:
        yield connected
    assert started.stop() == 0


def test_server_refusals_of_a_tree_batch_name_its_rows_and_arguments(strict_client):
    # Rows 0, 1 share segment "a" (2 tokens); row 1's segment "c" has 6 tokens, over the limit of 5 per forest.
    with pytest.raises(treecredit.ResourceExhausted) as refused:
        score_batch(strict_client, [1.0, 0.0], np.arange(8) < np.array([[3], [8]]), group_size=2,
                    tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[2, 1], [2, 6]])
    assert refused.value.field == "segment_lengths[1][1]"
    assert str(refused.value) == "segment_lengths[1][1]: 6 tokens exceed the limit of 5"
    assert isinstance(refused.value, grpc.RpcError) and refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Each segment within the limit, the forest over it: a, b, c hold 2 + 3 + 2 = 7 tokens.
    with pytest.raises(treecredit.ResourceExhausted, match=r"^segment_lengths: 7 tokens in all exceed the limit of 5$"):
        score_batch(strict_client, [1.0, 0.0], np.arange(5) < np.array([[5], [4]]), group_size=2,
                    tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[2, 3], [2, 2]])
    # Root -> a -> {b, c}: one sibling pair, over the limit of 0.
    with pytest.raises(treecredit.ResourceExhausted, match=r"^tree_path: branch points give 1 sibling pairs"):
        score_batch(strict_client, [1.0, 0.0], np.ones((2, 2), bool), group_size=2,
                    tree_path=[["a", "b"], ["a", "c"]], segment_lengths=[[1, 1], [1, 1]])


def test_server_refusals_of_a_flat_batch_name_its_rows(strict_client):
    mask = np.zeros((3, 6), bool)
    mask[0, :2] = mask[1, :1] = mask[2, :6] = True  # row 2: 6 tokens, over the limit of 5
    with pytest.raises(treecredit.ResourceExhausted, match=r"^mask\[2\]: 6 tokens exceed the limit of 5$") as refused:
        score_batch(strict_client, [1.0, 0.0, 1.0], mask, group_size=3)
    assert refused.value.field == "mask[2]"
    # 4 rows are 4 roots and 4 segments: 8 nodes, over the limit of 6.
    with pytest.raises(treecredit.ResourceExhausted,
                       match=r"^rewards: the forest of the batch \(a root per tree, a node per segment\): 8 elements "
                             r"exceed the limit of 6$"):
        score_batch(strict_client, [1.0, 0.0, 1.0, 0.0], np.eye(4, 5, dtype=bool), group_size=2)


def test_verl_refusals_name_verls_arguments(strict_client):
    mask = np.zeros((2, 6), bool)
    mask[0, :1] = mask[1, :6] = True
    estimate = verl_adapter.advantage_estimator(strict_client, "tree_grpo")
    with pytest.raises(treecredit.ResourceExhausted, match=r"^segment_lengths\[1\]\[0\]: 6 tokens exceed the limit"):
        estimate(outcome_rewards(np.array([1.0, 0.0]), mask), mask, index=np.array(["q", "q"], dtype=object),
                 tree_path=[["a"], ["b"]], segment_lengths=[[1], [6]])
    with pytest.raises(ValueError, match=r"^token_level_rewards\[1\]: batch row 1 has reward nan, not a number$"):
        estimate(np.array([[1.0, 0.0], [np.nan, 0.0]]), np.ones((2, 2)), index=["q", "q"],
                 tree_path=[["a"], ["b"]], segment_lengths=[[2], [2]])
    with pytest.raises(ValueError, match=r"^response_mask\[0, 1\]: 2.0 is neither 0 nor 1$"):
        estimate(np.zeros((2, 2)), np.array([[1.0, 2.0], [1.0, 1.0]]), index=["q", "q"],
                 tree_path=[["a"], ["b"]], segment_lengths=[[2], [2]])


def test_node_ids_in_a_refusal_are_said_of_rows():
    """Messages of refusals that these batches cannot provoke (the adapter builds valid forests), translated."""
    batch = generic.to_forest([1.0, 0.0, 1.0], np.arange(4) < np.array([[4], [3], [4]]), group=["q", "q", "r"],
                              tree_path=[["a", "b"], ["a", "c"], ["d"]], segment_lengths=[[1, 3], [1, 2], [4]])
    # Nodes: roots 0 (q), 1 (r); depth 1: a = 2, d = 3; depth 2: b = 4, c = 5. Tokens: a 0, d 1-4, b 5-7, c 8-9.
    cases = [
        (treecredit.InvalidArgument("forest.reward[5]", "reward inf of node 5 is not finite"),
         "rewards[1]: reward inf of batch row 1 is not finite"),
        (treecredit.InvalidArgument("forest.group[1]", "root 1 has no group"),
         "group[2]: the root of batch row 2's tree has no group"),
        (treecredit.InvalidArgument("forest.num_tokens[2]", "node 2 has a negative count -1"),
         "segment_lengths[0][0]: the segment at tree_path[0][0] has a negative count -1"),
        (treecredit.InvalidArgument("forest.loss_mask[9]", "is wrong"), "mask[1, 2]: is wrong"),
        (treecredit.InvalidArgument("forest.loss_mask[3]", "is wrong"), "mask[2, 2]: is wrong"),
    ]
    for error, expected in cases:
        translated = batch.in_batch_terms(error)
        assert type(translated) is type(error) and str(translated) == expected
    other = treecredit.InvalidArgument("options.min_margin", "must be finite")
    assert batch.in_batch_terms(other) is other
