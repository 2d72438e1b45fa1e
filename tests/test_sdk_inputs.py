"""No silent mistakes in what the SDK is handed: each input either works, checked against numbers computed by hand
and scored over real gRPC, or raises an error naming the node or field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import treecredit
from treecredit.adapters import score_batch

nan = np.nan


def test_adding_to_a_forest_from_arrays_keeps_its_nodes(client):
    forest = treecredit.Forest.from_arrays([-1, 0, 0], group=["q", None, None], reward=[nan, 1.0, nan],
                                           num_tokens=[1, 2, 0])
    assert forest.add(None, 3, group="q") == 3     # a second root of the same group
    assert forest.add(3, 1, reward=0.0) == 4
    assert forest.add(2, 2, reward=0.0) == 5       # under a node from the arrays
    assert forest.parent.tolist() == [-1, 0, 0, -1, 3, 2]
    assert forest.group.tolist() == [0] * 6 and forest.groups == ["q"]
    assert forest.num_tokens.tolist() == [1, 2, 0, 3, 1, 2]
    np.testing.assert_array_equal(forest.reward, [nan, 1.0, nan, nan, 0.0, 0.0])

    # One group, leaves 1, 4, 5 with rewards 1, 0, 0: A = R - 1/3 (normalize_std=False).
    result = client.score(forest, "grpo", normalize_std=False)
    assert result.leaf_advantages[[1, 4, 5]].tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3])
    assert forest.add(5, 1, reward=1.0) == 6 and forest.num_nodes == 7  # and again after reading


def test_per_token_arrays_continue_across_from_arrays_and_add():
    forest = treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1.0], num_tokens=[1, 2],
                                           logprobs=[-0.5, -1.0, -2.0])
    forest.add(0, 1, reward=0.0, logprobs=[-4.0], loss_mask=[False])
    assert forest.logprobs.tolist() == [-0.5, -1.0, -2.0, -4.0]
    assert forest.loss_mask.tolist() == [True, True, True, False]  # the arrays' nodes default to 1
    with pytest.raises(ValueError, match="^node 3: has no logprobs, which other nodes give$"):
        forest.add(0, 1, reward=0.0)


def test_a_per_token_array_the_earlier_tokens_lack_is_refused_by_the_add_that_gives_it(client):
    """Token ids added to a forest whose earlier tokens have none are refused at once, naming the new node, and
    leave the forest as it was (it once took the node, then failed at every later read blaming node 0)."""
    forest = treecredit.Forest.from_arrays([-1, 0, 0], group=["q"] * 3, reward=[nan, 1.0, 0.0], num_tokens=[2, 1, 1])
    with pytest.raises(ValueError, match="^node 3: gives token_ids, which the tokens before it lack$"):
        forest.add(0, [5, 6], reward=1.0)
    with pytest.raises(ValueError, match="^node 3: gives confidence, which the tokens before it lack$"):
        forest.add(0, 2, reward=1.0, confidence=[1.0, 2.0])
    assert forest.add(0, 2, reward=1.0) == 3 and forest.num_tokens.tolist() == [2, 1, 1, 2]
    # Rewards 1, 0, 1 in one group: A = R - 2/3 (normalize_std=False).
    result = client.score(forest, "grpo", normalize_std=False)
    assert result.leaf_advantages[[1, 2, 3]].tolist() == pytest.approx([1 / 3, -2 / 3, 1 / 3])


@pytest.mark.parametrize("label", [torch.tensor(3), np.int64(3), np.array(3), 3])
def test_numpy_and_torch_scalar_labels_are_the_number_they_hold(client, label):
    forest = treecredit.Forest()
    first, second = forest.add(None, group=label), forest.add(None, group=torch.tensor(3))
    forest.add(first, 1, reward=1.0)
    forest.add(second, 1, reward=0.0)
    assert forest.groups == [3] and forest.group.tolist() == [0, 0, 0, 0]
    # One group of two leaves: +-1/2. Two groups would give each lone leaf 0.
    result = client.score(forest, "grpo", normalize_std=False)
    assert result.leaf_advantages[[2, 3]].tolist() == [0.5, -0.5]


def test_from_arrays_reads_groups_at_roots_only():
    for group in ([torch.tensor(3), None, torch.tensor(3), None], torch.tensor([3, 3, 3, 3]), [3, "x", 3.0, None]):
        forest = treecredit.Forest.from_arrays([-1, 0, -1, 2], group=group, reward=[nan, 1.0, nan, 0.0])
        assert forest.groups == [3] and forest.group.tolist() == [0, 0, 0, 0]
    forest = treecredit.Forest.from_arrays([-1, -1, 1, 0], group=["b", "a", None, None], reward=[nan, nan, 1, 0])
    assert forest.groups == ["b", "a"] and forest.group.tolist() == [0, 1, 1, 0]  # in order of first root
    assert forest.add(None, group="a") == 4 and forest.group[4] == 1  # a later root joins its label's group


@pytest.mark.parametrize("build, message", [
    (lambda: treecredit.Forest.from_arrays([-1, 0, -1], group=[1, None, None], reward=[nan, 1, 0]),
     "group[2]: root 2 has no group (None)"),
    (lambda: treecredit.Forest().add(None, 2), "node 0: a root needs a group"),
    (lambda: treecredit.Forest().add(None, group=torch.tensor([1, 2])),
     "node 0: group: a label must be one value, got an array of shape [2]"),
    (lambda: treecredit.Forest.from_arrays([-1, 0.5], group=[1, 1], reward=[nan, 1]), "parent[1]: 0.5 is not a whole number"),
    (lambda: treecredit.Forest.from_arrays([-1, 1], group=[1, 1], reward=[nan, 1]),
     "parent[1]: 1 is neither -1 (a root) nor a node before node 1"),
    (lambda: treecredit.Forest.from_arrays([[-1, 0]], group=[1, 1], reward=[nan, 1]),
     "parent: shape [1, 2], expected [N] (one per node)"),
    (lambda: treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1, 2]),
     "reward: shape [3], expected [2] (one per node)"),
    (lambda: treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1], num_tokens=[1, 1],
                                           token_ids=[[5], [6]]), "token_ids: shape [2, 1], expected [2]"),
    (lambda: treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1], num_tokens=[1, 2],
                                           topk_logprobs=[[-1.0, -2.0], [-1.0], [-3.0, -4.0]]),
     "topk_logprobs: rows of different lengths; every token needs the same number of values"),
    (lambda: treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1], num_tokens=[1, 2],
                                           logprobs=[-1.0, -0.5, 0.25]),
     "logprobs[2] (node 1): 0.25 is no log-probability (NaN or > 0)"),
    (lambda: treecredit.Forest.from_arrays([-1, 0], group=[1, 1], reward=[nan, 1], num_tokens=[1, 1],
                                           topk_logprobs=[[-1.0, -2.0], [nan, -1.0]]),
     "topk_logprobs[1] (node 1): nan is no log-probability (NaN or > 0)"),
])
def test_bad_arrays_raise_naming_the_field_and_node(build, message):
    with pytest.raises(ValueError) as caught:
        build()
    assert str(caught.value) == message


def grown(*nodes) -> str:
    """The error of adding `nodes` ((parent, tokens, options) each) to a forest of a root and one leaf."""
    forest = treecredit.Forest()
    root = forest.add(None, [1], group="q", topk_logprobs=[[-1.0, -2.0]])
    forest.add(root, [2], reward=1.0, topk_logprobs=[[-0.5, -3.0]])
    with pytest.raises(ValueError) as caught:
        for parent, tokens, options in nodes:
            forest.add(parent, tokens, **options)
    assert forest.num_nodes == 2 + len(nodes) - 1  # the refused node is not recorded
    return str(caught.value)


def test_bad_nodes_raise_naming_the_node():
    assert grown((0, [3, 4], dict(topk_logprobs=[[-1.0, -2.0, -3.0]] * 2))) == (
        "node 2: topk_logprobs has k = 3 per token; the nodes before it have k = 2")
    assert grown((0, [3], dict(topk_logprobs=[[-1.0, -2.0], [-1.0]]))) == (
        "node 2: topk_logprobs: rows of different lengths; every token needs the same number of values")
    assert grown((0, np.array([[3, 4], [5, 6]]), {})) == "node 2: token_ids: shape [2, 2], expected [num_tokens]"
    assert grown((0, [3, 4], dict(logprobs=[-0.1, 0.5]))) == "node 2: logprobs[1]: 0.5 is no log-probability (NaN or > 0)"
    assert grown((0.5, [3], {})) == "node 2: parent: 0.5 is not a whole number"
    assert grown((2, [3], {})) == "node 2: parent 2 is not an existing node (0..1)"
    assert grown((0, [3], dict(group="other"))) == "node 2: only roots name a group; it inherits its parent's ('q')"


def test_a_refused_root_leaves_no_trace():
    forest = treecredit.Forest()
    with pytest.raises(ValueError, match="logprobs"):
        forest.add(None, [1], group="a", logprobs=[0.5])
    assert forest.add(None, group="b") == 0 and forest.add(None, group="a") == 1
    assert forest.groups == ["b", "a"] and forest.group.tolist() == [0, 1]


def test_whole_float_parents_are_node_ids():
    forest = treecredit.Forest.from_arrays(np.array([-1.0, 0.0, 0.0]), group=[1, 1, 1], reward=[nan, 1, 0])
    assert forest.parent.dtype == np.int64 and forest.parent.tolist() == [-1, 0, 0]
    assert forest.add(np.float64(2.0), 1, reward=1.0) == 3 and forest.parent[3] == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_tensors_are_accepted_everywhere(client, dtype):
    # Values exact in bf16 and fp16. Root 0 (1 token) -> leaves 1, 2 (2 tokens each).
    confidence = torch.tensor([0.5, 1.0, 2.0, 0.25, 4.0], dtype=dtype)
    forest = treecredit.Forest.from_arrays(
        torch.tensor([-1, 0, 0]), group=torch.tensor([7, 7, 7]), reward=torch.tensor([nan, 1.0, nan], dtype=dtype),
        num_tokens=torch.tensor([1, 2, 2]), confidence=confidence,
        logprobs=torch.tensor([-0.5, -1.0, -2.0, -0.25, -4.0], dtype=dtype),
        topk_logprobs=torch.full((5, 2), -0.5, dtype=dtype))
    assert forest.confidence.tolist() == [0.5, 1.0, 2.0, 0.25, 4.0] and forest.topk_logprobs.shape == (5, 2)
    forest.add(2, 1, reward=torch.tensor(1.0, dtype=dtype), confidence=torch.tensor([8.0], dtype=dtype),
               logprobs=torch.tensor([-8.0], dtype=dtype), topk_logprobs=torch.tensor([[-1.0, -1.0]], dtype=dtype))

    result = client.score(forest, "grpo", normalize_std=False)
    # Leaves 1 (reward 1) and 3 (reward 1): A = 0; the mean confidence of each path, by hand.
    assert result.leaf_advantages[[1, 3]].tolist() == [0.0, 0.0]
    assert result.trace_confidence.leaf.tolist() == [1, 3]
    assert result.trace_confidence.mean.tolist() == pytest.approx([3.5 / 3, 12.75 / 4])

    ids = torch.tensor([1, 0])
    logits = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=dtype)
    stats = client.token_stats(logits, ids)
    assert stats.logprob.tolist() == pytest.approx([np.log(0.5)] * 2)


def test_score_batch_names_batch_rows_in_the_callers_terms(client):
    mask = np.ones((4, 3), bool)
    with pytest.raises(ValueError) as caught:
        score_batch(client, [nan, 1.0, 0.0, 1.0], mask, group_size=2)
    assert str(caught.value) == "rewards[0]: batch row 0 has reward nan, not a number"
    with pytest.raises(ValueError) as caught:
        score_batch(client, torch.tensor([1.0, 0.0, float("inf"), 1.0], dtype=torch.bfloat16), mask, group_size=2)
    assert str(caught.value) == "rewards[2]: batch row 2 has reward inf, not a number"

    credit = score_batch(client, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.bfloat16), mask, group_size=2,
                         estimator="grpo", normalize_std=False)
    assert credit.sample_advantages.dtype == torch.bfloat16
    assert credit.sample_advantages.tolist() == [0.5, -0.5, 0.0, 0.0]


def test_preferences_have_the_length_of_their_pairs(client):
    # Root 0 -> {1 -> {3, 4}, 2}: pairs (1, 2) at depth 1 and (3, 4) at depth 2.
    forest = treecredit.Forest.from_arrays([-1, 0, 0, 1, 1], group=[0] * 5, reward=[nan, nan, 0.0, 1.0, 0.0])
    preferences = client.score(forest, "grpo").preferences
    assert len(preferences) == 2
    # V(1) = 1/2 > V(2) = 0; V(3) = 1 > V(4) = 0.
    pairs = sorted(zip(preferences.winner.tolist(), preferences.loser.tolist(), preferences.margin.tolist(),
                       preferences.depth.tolist()))
    assert pairs == [(1, 2, 0.5, 1), (3, 4, 1.0, 2)]
    assert preferences.winner.dtype == preferences.loser.dtype == preferences.depth.dtype == np.int32  # as the proto says
