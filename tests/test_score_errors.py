"""Every malformed Score request gets the right status, a message naming the field, and the server keeps serving."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import treecredit
from treecredit_server.process import start_server
from treecredit import _wire
from treecredit._request_errors import InvalidArgument, ResourceExhausted
from treecredit.client import score_request
from treecredit.v1 import credit_pb2, credit_pb2_grpc, forest_pb2

# Root 0 -> {1 -> {3, 4}, 2}, three tokens each.
GOOD = treecredit.Forest.from_arrays(
    [-1, 0, 0, 1, 1], group=[7, 7, 7, 7, 7], reward=[np.nan, np.nan, 1.0, 0.0, 1.0], num_tokens=[3] * 5,
    loss_mask=np.ones(15, bool),
)


def request_with(**changes) -> credit_pb2.ScoreRequest:
    """A valid request with some forest fields replaced (a numpy array is encoded, a Tensor used as is)."""
    request = score_request(GOOD, "tree_grpo")
    for field, value in changes.items():
        tensor = value if isinstance(value, forest_pb2.Tensor) else _wire.encode(value)
        getattr(request.forest, field).CopyFrom(tensor)
    return request


def nan_at(rewards, index, value=np.nan):
    out = np.array(rewards, dtype=np.float64)
    out[index] = value
    return out


BAD_FORESTS = {
    "parent out of range": (dict(parent=np.array([-1, 0, 0, 9, 1])), "forest.parent[3]"),
    "parent not before child": (dict(parent=np.array([-1, 0, 2, 1, 1])), "forest.parent[2]"),
    "parent below -1": (dict(parent=np.array([-1, 0, -2, 1, 1])), "forest.parent[2]"),
    "root without group": (dict(group=np.array([-1, 0, 0, 0, 0])), "forest.group[0]"),
    "leaf without reward": (dict(reward=nan_at(GOOD.reward, 4)), "forest.reward[4]"),
    "reward on internal node": (dict(reward=nan_at(GOOD.reward, 1, 0.5)), "forest.reward[1]"),
    "infinite reward": (dict(reward=nan_at(GOOD.reward, 3, np.inf)), "forest.reward[3]"),
    "token counts do not match": (dict(num_tokens=np.array([3, 3, 3, 3, 2])), "forest.loss_mask"),
    "negative token count": (dict(num_tokens=np.array([3, 3, -3, 3, 3])), "forest.num_tokens[2]"),
    "wrong length": (dict(group=np.array([7, 7, 7])), "forest.group"),
    "bytes do not match shape": (
        dict(reward=forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_FLOAT64, shape=[5], data=b"\0" * 39)),
        "forest.reward.data",
    ),
    "huge shape, few bytes": (
        dict(parent=forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_INT64, shape=[1 << 40, 1 << 20], data=b"")),
        "forest.parent.shape",
    ),
    "unknown dtype": (dict(parent=forest_pb2.Tensor(dtype=99, shape=[5], data=b"\0" * 40)), "forest.parent.dtype"),
    "float parents": (dict(parent=np.array([-1.0, 0, 0, 1, 1])), "forest.parent.dtype"),
    "matrix rewards": (dict(reward=np.zeros((5, 1))), "forest.reward.shape"),
    "negative dimension": (
        dict(group=forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_INT64, shape=[-5], data=b"")),
        "forest.group.shape",
    ),
    "NaN confidence": (dict(confidence=nan_at(np.ones(15), 4)), "forest.confidence[4]"),
    "+inf top-k log-prob": (dict(topk_logprobs=np.where(np.arange(30).reshape(15, 2) == 5, np.inf, -1.0)),
                            "forest.topk_logprobs[2]"),
}


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield credit_pb2_grpc.CreditServiceStub(channel)


@pytest.mark.parametrize("case", BAD_FORESTS, ids=list(BAD_FORESTS))
def test_bad_forest_is_invalid_argument_naming_the_field(stub, case):
    changes, field = BAD_FORESTS[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.Score(request_with(**changes), timeout=10)
    assert error.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert error.value.details().startswith(field + ":"), error.value.details()
    # ...and the server keeps serving.
    assert stub.Score(request_with(), timeout=10).node_advantages.shape == [5]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: setattr(r, "estimator", 0), "estimator"),
        (lambda r: setattr(r, "estimator", 42), "estimator"),
        (lambda r: setattr(r.options, "min_margin", -1.0), "options.min_margin"),
        (lambda r: setattr(r.options, "min_margin", float("nan")), "options.min_margin"),
        (lambda r: r.forest.ClearField("parent"), "forest.parent"),
        (lambda r: r.forest.ClearField("reward"), "forest.reward"),
    ],
)
def test_bad_request_fields_are_invalid_argument(stub, mutate, field):
    request = request_with()
    mutate(request)
    with pytest.raises(grpc.RpcError) as error:
        stub.Score(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field + ":"), error.value.details()


def test_unknown_estimator_name_is_refused_by_the_sdk(client):
    with pytest.raises(ValueError, match="unknown estimator"):
        client.score(GOOD, "ppo")


def test_over_limit_requests_are_resource_exhausted():
    server = start_server("--max-nodes", "4", "--max-tokens", "10")
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = credit_pb2_grpc.CreditServiceStub(channel)
            with pytest.raises(grpc.RpcError) as nodes:
                stub.Score(request_with(), timeout=10)
            assert nodes.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert nodes.value.details().startswith("forest.parent.shape:")
            small = treecredit.Forest.from_arrays([-1, 0, 0], group=[0, 0, 0], reward=[np.nan, 1, 0], num_tokens=[5, 5, 5])
            with pytest.raises(grpc.RpcError) as tokens:
                stub.Score(score_request(small, "grpo"), timeout=10)
            assert tokens.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert tokens.value.details().startswith("forest.num_tokens:")
    finally:
        assert server.stop() == 0


def test_decoding_refuses_what_compute_would_choke_on():
    """Decoding alone refuses these (no compute runs for them): token confidences that are not finite, ToolPO
    action rewards missing at a leaf, SRL steps that do not match the trees, more sibling pairs than allowed."""
    from treecredit_server.codec.score import decode_score
    from treecredit_server.config import Limits

    toolpo = score_request(GOOD, "toolpo", tool_calls=treecredit.ToolCalls(nan_at(GOOD.reward, 3), np.zeros(15)))
    srl_forest, steps = treecredit.srl_batch([["a", "b"]], [[["a"], ["b"]]])  # an action for the second step...
    srl = score_request(srl_forest, "srl", step_similarity=treecredit.StepSimilarity([["a"]], steps.actions))  # of one
    cases = [
        (request_with(confidence=nan_at(np.ones(15), 4)), Limits(), InvalidArgument, "forest.confidence[4]"),
        (toolpo, Limits(), InvalidArgument, "tool_calls.action_reward[3]"),
        (srl, Limits(), InvalidArgument, "step_similarity.num_steps[0]"),
        (request_with(), Limits(max_sibling_pairs=1), ResourceExhausted, "forest.parent"),
    ]
    for request, limits, error, field in cases:
        with pytest.raises(error) as raised:
            decode_score(request, limits)
        assert str(raised.value).startswith(field + ":"), str(raised.value)
