"""DRO reflection reward (sections 6-7) over real gRPC: Reflect, and R3 as the reward of Score."""

from __future__ import annotations


import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import treecredit


def test_hand_computed(client):
    # Query 0: sigma = [1, 0] -> weights [1, 0]; query 1: every sigma 0 -> uniform weights.
    ell = [np.array([[-1.0, -2.0], [-3.0, -2.0]]), np.array([[-1.0, -3.0, -2.0]] * 3)]
    result = client.reflect(treecredit.Reflection(ell, baseline=[np.array([-1.0, 0.0]), np.zeros(3)]))
    np.testing.assert_allclose(result.sigma, [1, 0, 0, 0, 0])
    np.testing.assert_allclose(result.weights, [1, 0, 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(result.reward, [0.0, -2.0, -2.0, -2.0, -2.0])
    np.testing.assert_allclose(result.spread, [1.0, 0.0])
    assert list(result.kept) == [True, True]


def test_filters(client):
    ell = [np.array([[0.0], [s]]) for s in (2.0, 0.0, 4.0, 1.0)]  # spreads 1, 0, 2, 0.5
    assert list(client.reflect(treecredit.Reflection(ell, min_spread=0.75)).kept) == [True, False, True, False]
    assert list(client.reflect(treecredit.Reflection(ell, drop_percent=50)).kept) == [True, False, True, False]
    assert list(client.reflect(treecredit.Reflection(ell, drop_percent=30)).kept) == [True, False, True, True]


def test_power_sharpens_weights(client):
    ell = [np.array([[0.0, 0.0], [1.0, 2.0]])]  # sigma = [0.5, 1]
    np.testing.assert_allclose(client.reflect(treecredit.Reflection(ell, power=2.0)).weights, [0.2, 0.8])


matrices = st.lists(st.tuples(st.integers(1, 5), st.integers(1, 6)), min_size=1, max_size=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=matrices, seed=st.integers(0, 2**32 - 1), power=st.sampled_from([0.5, 1.0, 2.0]))
def test_weights_sum_to_one_and_reward_is_weighted_sum(client, shapes, seed, power):
    rng = np.random.default_rng(seed)
    ell = [-rng.exponential(size=shape) for shape in shapes]
    baseline = [-rng.exponential(size=shape[1]) for shape in shapes]
    result = client.reflect(treecredit.Reflection(ell, baseline=baseline, power=power))
    bounds = np.cumsum([0] + [cols for _, cols in shapes])
    rows = np.cumsum([0] + [g for g, _ in shapes])
    for q, m in enumerate(ell):
        weights = result.weights[bounds[q]:bounds[q + 1]]
        assert weights.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(result.reward[rows[q]:rows[q + 1]], (m - baseline[q]) @ weights, atol=1e-9)
        assert result.spread[q] == pytest.approx(m.std(axis=0).max())


def test_reflection_reward_in_score(client):
    # Two groups of chains: group "a" leaves 1, 2; group "b" leaves 4, 5, 6 (roots 0 and 3).
    parent = [-1, 0, 0, -1, 3, 3, 3]
    zero = np.where(np.isin(np.arange(7), [0, 3]), np.nan, 0.0)
    forest = treecredit.Forest.from_arrays(parent, group=list("aaabbbb"), reward=zero)
    ell = [np.array([[-1.0, -2.0], [-3.0, -2.0]]), np.array([[-1.0], [-2.0], [-4.0]])]
    result = client.score(forest, "grpo", reflection=treecredit.Reflection(ell, min_spread=0.5))
    r3 = result.reflection.reward
    np.testing.assert_allclose(r3, [-1.0, -3.0, -1.0, -2.0, -4.0])
    reward = zero.copy()
    reward[[1, 2, 4, 5, 6]] = r3
    same = treecredit.Forest.from_arrays(parent, group=list("aaabbbb"), reward=reward)
    np.testing.assert_allclose(result.leaf_advantages, client.score(same, "grpo").leaf_advantages)
    assert list(result.reflection.kept) == [True, True]




def reflect_raw(client, message):
    return client._stub.Reflect(message, timeout=30)


def bad_messages():
    good = lambda **kw: treecredit.Reflection([np.zeros((2, 3)), np.ones((1, 2))], **kw).to_proto()  # noqa: E731
    cases = {}
    m = good(); m.cols.CopyFrom(treecredit._wire.encode(np.array([3, 3])))
    cases["ell does not match rows x cols"] = (m, "ell: has 8 entries, expected 9")
    m = good(); m.rows.CopyFrom(treecredit._wire.encode(np.array([2, -1])))
    cases["negative rows"] = (m, "rows[1]")
    m = good(); m.cols.CopyFrom(treecredit._wire.encode(np.array([3])))
    cases["cols of the wrong length"] = (m, "cols: has 1 entries, expected 2")
    m = good(); m.ell.CopyFrom(treecredit._wire.encode(np.array([0, 0, 0, np.nan, 0, 0, 1, 1.0])))
    cases["NaN in ell"] = (m, "ell[3]")
    cases["zero power"] = (good(power=0.0), "power")
    cases["drop percent over 100"] = (good(drop_percent=150.0), "drop_percent")
    m = good(); m.baseline.CopyFrom(treecredit._wire.encode(np.zeros(4)))
    cases["baseline of the wrong length"] = (m, "baseline")
    m = good(); m.ClearField("rows")
    cases["no rows"] = (m, "rows: is required")
    return cases


BAD = bad_messages()


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_reflect(client, case):
    message, field = BAD[case]
    with pytest.raises(grpc.RpcError) as error:
        reflect_raw(client, message)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()


def test_score_reflection_must_match_groups(client):
    forest = treecredit.Forest.from_arrays([-1, 0, 0], group=[0] * 3, reward=[np.nan, 0.0, 0.0])
    with pytest.raises(grpc.RpcError) as error:
        client.score(forest, "grpo", reflection=treecredit.Reflection([np.zeros((3, 2))]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reflection.rows[0]: 3 rollouts, but group 0 has 2 leaves" in error.value.details()
