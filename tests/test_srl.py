"""SRL step similarity (section 9) over real gRPC: hand-computed cases, properties, bad input."""

from __future__ import annotations

import difflib

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import treecredit

EXPERT = [["add 2 and 3 to get 5", "multiply 5 by 4", "answer: 20"]]
ACTIONS = [[["add 2 and 3 to get 5", "subtract 3", None], ["multiply 5 by 4", "multiply 5 by 4"], []]]


def ratio(a: str, e: str) -> float:
    return difflib.SequenceMatcher(None, a, e).ratio()


def z(values):
    values = np.asarray(values, float)
    return (values - values.mean()) / (values.std(ddof=1) + 1e-6)


def test_hand_computed(client):
    forest, steps = treecredit.srl_batch(EXPERT, ACTIONS)
    assert list(forest.parent) == [-1, 0, 0, 0, 0, 1, 1]  # root, trunk e_1, three step-1 actions, two step-2
    result = client.score(forest, "srl", step_similarity=steps)
    similarity = result.step_similarity
    step1 = [1.0, ratio("subtract 3", EXPERT[0][0]), -1.0]
    np.testing.assert_allclose(similarity.step_reward[[2, 3, 4, 5, 6]], step1 + [1.0, 1.0])
    assert list(similarity.step_prompt) == [0, 1] and list(similarity.kept) == [True, False]
    np.testing.assert_allclose(result.leaf_advantages[[2, 3, 4]], z(step1), atol=1e-12)
    np.testing.assert_allclose(result.leaf_advantages[[5, 6]], 0.0)  # identical actions: dropped by min_std
    assert result.scope == "leaf"


def test_precomputed_similarities_and_unparsed(client):
    forest = treecredit.Forest.from_arrays([-1, 0, 1, 1, 1], group=[0] * 5, reward=[np.nan, np.nan, 0.9, 0.5, 0.7])
    steps = treecredit.StepSimilarity(parsed=np.array([True, True, False]))
    result = client.score(forest, "srl", step_similarity=steps, normalize_std=False)
    np.testing.assert_allclose(result.step_similarity.step_reward[[2, 3, 4]], [0.9, 0.5, -1.0])
    np.testing.assert_allclose(result.leaf_advantages[[2, 3, 4]], np.array([0.9, 0.5, -1.0]) - (0.4 / 3))
    assert list(result.step_similarity.step_prompt) == [1]


def test_min_std_option(client):
    forest = treecredit.Forest.from_arrays([-1, 0, 0], group=[0] * 3, reward=[np.nan, 0.5, 0.50001])
    kept = lambda min_std: client.score(  # noqa: E731
        forest, "srl", step_similarity=treecredit.StepSimilarity(min_std=min_std)).step_similarity.kept
    assert list(kept(None)) == [False] and list(kept(1e-6)) == [True]


text = st.text(alphabet="abc xyz", max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(text, min_size=1, max_size=4), data=st.data())
def test_rewards_are_difflib_and_identical_is_one(client, steps, data):
    actions = [[data.draw(st.lists(st.one_of(st.none(), text), max_size=4)) + [e] for e in steps]]
    forest, similarity = treecredit.srl_batch([steps], actions)
    result = client.score(forest, "srl", step_similarity=similarity)
    expected = [-1.0 if a is None else ratio(a, e) for e, per_step in zip(steps, actions[0]) for a in per_step]
    leaves = forest.leaves
    np.testing.assert_allclose(result.step_similarity.step_reward[leaves], expected)
    identical = np.array([a == e for e, per_step in zip(steps, actions[0]) for a in per_step])
    np.testing.assert_allclose(result.step_similarity.step_reward[leaves][identical], 1.0)
    # z per step-prompt: a kept step-prompt's advantages sum to 0; a dropped one's are 0.
    prompt = forest.parent[leaves]
    kept = dict(zip(result.step_similarity.step_prompt.tolist(), result.step_similarity.kept.tolist()))
    sums = np.bincount(prompt, weights=result.leaf_advantages[leaves], minlength=len(forest))
    np.testing.assert_allclose(sums, 0.0, atol=1e-6)
    dropped = np.array([not kept[p] for p in prompt])
    np.testing.assert_allclose(result.leaf_advantages[leaves][dropped], 0.0)


FOREST, STEPS = treecredit.srl_batch(EXPERT, ACTIONS)
BAD = {
    "no step similarity": (dict(), "step_similarity: is required"),
    "actions of the wrong count": (dict(step_similarity=treecredit.StepSimilarity(EXPERT, ["a"])),
                                   "step_similarity.actions"),
    "too few expert steps": (dict(step_similarity=treecredit.StepSimilarity([["only one"]], STEPS.actions)),
                             "step_similarity.num_steps[0]"),
    "negative min_std": (dict(step_similarity=treecredit.StepSimilarity(EXPERT, STEPS.actions, min_std=-1.0)),
                         "step_similarity.min_std"),
    "reflection with srl": (dict(step_similarity=STEPS, reflection=treecredit.Reflection([np.zeros((5, 1))])),
                            "reflection: srl"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input(client, case):
    options, field = BAD[case]
    with pytest.raises(grpc.RpcError) as error:
        client.score(FOREST, "srl", **options)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()


def test_an_expert_trajectory_without_actions_is_refused_by_its_index():
    with pytest.raises(ValueError, match=r"^actions\[1\]: expert trajectory 1 has no actions"):
        treecredit.srl_batch(EXPERT * 3, [ACTIONS[0], [[], [], []], ACTIONS[0]])


@pytest.mark.parametrize("expert,actions,message", [
    ([[]], [[["x"]]], r"^actions\[0\]\[0\]: actions for step 1, but expert trajectory 0 has 0 steps$"),
    ([["a"], ["b", "c"]], [[["x"]], [[], [], ["y"]]],
     r"^actions\[1\]\[2\]: actions for step 3, but expert trajectory 1 has 2 steps$"),
    ([["a"], ["b"]], [[["x"]]], r"^actions: 1 lists of actions for 2 expert trajectories$"),
])
def test_actions_beyond_the_expert_are_refused_by_their_index(expert, actions, message):
    """The server would refuse these naming a leaf the caller never made (`leaf 1 at depth 1 answers step 1`)."""
    with pytest.raises(ValueError, match=message):
        treecredit.srl_batch(expert, actions)


def test_leaf_at_a_root_is_rejected(client):
    forest = treecredit.Forest.from_arrays([-1], group=[0], reward=[1.0])
    with pytest.raises(grpc.RpcError) as error:
        client.score(forest, "srl", step_similarity=treecredit.StepSimilarity())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "forest.parent[0]" in error.value.details()
