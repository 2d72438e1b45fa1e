"""R³ reverse curriculum (section 10) over real gRPC: hand-computed schedules, a replay reference, bad input."""

from __future__ import annotations

from collections import defaultdict

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import treecredit
from treecredit import _wire


def history(num_steps, rollouts):
    h = treecredit.CurriculumHistory(num_steps)
    for depth, reward in rollouts:
        h.record(depth, reward)
    return h


def test_hand_computed(client):
    h = history(3, [(2, 1), (2, 0), (2, 1), (2, 1), (1, 0), (1, 1)])
    plan = client.curriculum([h], window=2)
    assert list(plan.num_steps) == [3] and list(plan.stage) == [2] and list(plan.complete) == [False]
    np.testing.assert_allclose(plan.sample_probability, [[0, 1, 0, 0]])
    np.testing.assert_allclose(plan.success_rate, [[np.nan, 0.5, 1.0, np.nan]])
    assert plan.rollouts.tolist() == [[0, 2, 4, 0]]
    assert list(plan.failing_step) == [2]  # depth 2 is mastered, depth 1 is not: step 2 is out of reach
    assert list(plan.rollouts_before_advance) == [0]  # depth 1 has its window of 2; 1 success in 2 < 0.8
    mixed = client.curriculum([h], window=2, mode="mixed")
    np.testing.assert_allclose(mixed.sample_probability, [[0, 0.5, 0.5, 0]])


def test_a_window_that_already_passes_when_its_stage_begins(client):
    h = history(3, [(1, 1), (1, 1), (2, 1), (2, 1)])
    plan = client.curriculum([h], window=2)
    assert list(plan.stage) == [3] and list(plan.failing_step) == [0]
    np.testing.assert_allclose(plan.sample_probability, [[1, 0, 0, 0]])


def test_several_demonstrations_and_completion(client):
    done = history(1, [(0, 1), (0, 1)])
    fresh = history(4, [])
    plan = client.curriculum([done, fresh], window=2, mode="mixed")
    assert list(plan.stage) == [1, 1] and list(plan.complete) == [True, False]
    np.testing.assert_allclose(plan.sample_probability, [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]])
    assert plan.sample_start_depths(5, np.random.default_rng(0), demonstration=1).tolist() == [3] * 5


def test_success_threshold_and_advance_at(client):
    h = history(2, [(1, 0.6), (1, 0.6), (1, 0.2)])
    assert list(client.curriculum([h], window=3).stage) == [1]
    assert list(client.curriculum([h], window=3, success_at=0.5, advance_at=0.6).stage) == [2]


def test_a_stage_waits_for_a_full_window_and_never_falls_back(client):
    # A trainer recording 16 rollouts a round, all successes, with the default window of 64.
    h = treecredit.CurriculumHistory(3)
    for round_ in range(1, 5):
        for _ in range(16):
            h.record(2, 1.0)
        plan = client.curriculum([h])
        if round_ < 4:
            assert (plan.stage[0], plan.rollouts_before_advance[0]) == (1, 64 - 16 * round_)
    assert (plan.stage[0], plan.rollouts_before_advance[0]) == (2, 64)  # depth 1 has no rollouts yet
    for _ in range(64):
        h.record(2, 0.0)  # stage 1 is mastered: failing from depth 2 now does not bring it back
    for _ in range(10):
        h.record(1, 1.0)
    plan = client.curriculum([h])
    assert (plan.stage[0], plan.rollouts_before_advance[0]) == (2, 54)
    np.testing.assert_allclose(plan.success_rate[0], [np.nan, 1.0, 0.0, np.nan])


def test_start_depths_run_from_0_to_s_minus_1():
    h = treecredit.CurriculumHistory(3)
    h.record(0, 1.0)
    with pytest.raises(ValueError, match="start depth 3 is outside 0..2: stage s = 1..S starts at depth S - s"):
        h.record(3, 1.0)


def reference(num_steps, rollouts, window, advance_at):
    """The schedule replayed one rollout at a time: (stage, complete, rollouts before it can advance)."""
    stage, complete, outcomes = 1, False, defaultdict(list)

    def passes(depth):
        last = outcomes[depth][-window:]
        return len(last) >= window and np.mean(last) >= advance_at

    for depth, reward in rollouts:
        outcomes[depth].append(reward >= 1)
        while not complete and passes(num_steps - stage):
            complete = stage == num_steps
            stage += not complete
    return stage, complete, max(0, window - len(outcomes[num_steps - stage]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_steps=st.integers(1, 5), window=st.integers(1, 4), data=st.data())
def test_matches_replay_and_mix_sums_to_one(client, num_steps, window, data):
    rollouts = data.draw(st.lists(st.tuples(st.integers(0, num_steps - 1), st.sampled_from([0.0, 1.0])), max_size=40))
    mode = data.draw(st.sampled_from(["staged", "mixed"]))
    plan = client.curriculum([history(num_steps, rollouts)], window=window, advance_at=0.7, mode=mode)
    assert (plan.stage[0], plan.complete[0], plan.rollouts_before_advance[0]) == \
        reference(num_steps, rollouts, window, 0.7)
    assert plan.sample_probability[0].sum() == pytest.approx(1.0)
    support = np.flatnonzero(plan.sample_probability[0])
    expected = range(num_steps - plan.stage[0], num_steps) if mode == "mixed" else [num_steps - plan.stage[0]]
    assert support.tolist() == list(expected)


def request(**changes):
    message = treecredit.curriculum.curriculum_request([history(2, [(1, 1.0), (0, 0.0)])])
    for name, value in changes.items():
        if name == "trunk_end":
            message.trunk_end.CopyFrom(_wire.encode(np.asarray(value, np.int64)))
        elif name == "parent":
            message.forest.parent.CopyFrom(_wire.encode(np.asarray(value, np.int64)))
        else:
            setattr(message, name, value)
    return message


BAD = {
    "trunk end out of range": (request(trunk_end=[9]), "trunk_end[0]: node 9"),
    "trunk end at a root": (request(trunk_end=[0]), "trunk_end[0]"),
    "two trunks in one tree": (request(trunk_end=[2, 1]), "trunk_end[1]"),
    "trunk end with children": (request(trunk_end=[1]), "trunk_end[0]: node 1 has children; the trunk ends at a leaf"),
    "zero window": (request(window=0), "window"),
    "advance_at above 1": (request(advance_at=1.5), "advance_at"),
    "unknown mode": (request(mode=7), "mode"),
    "bad forest": (request(parent=[-1, 0, 5, 1, 0]), "forest.parent[2]"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input(client, case):
    message, field = BAD[case]
    with pytest.raises(grpc.RpcError) as error:
        client._stub.Curriculum(message, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()


def test_rollouts_outside_any_demonstration(client):
    message = request()
    forest = treecredit.Forest.from_arrays([-1, 0, 1, 1, 0, -1], group=[0] * 5 + [1],
                                           reward=[np.nan, np.nan, 1.0, 1.0, 0.0, 1.0])
    message.forest.CopyFrom(forest.to_proto())
    with pytest.raises(grpc.RpcError) as error:
        client._stub.Curriculum(message, timeout=30)
    assert "trunk_end: leaf 5 is in a tree without a demonstration trunk" in error.value.details()
