"""Every failed call reaches the caller as the treecredit class of its status, over real gRPC: sync and asyncio,
unary and streamed. Each is still a grpc.RpcError (code(), details()), and names the field the server named."""

from __future__ import annotations

import asyncio
import socket

import grpc
import numpy as np
import pytest

import treecredit
from treecredit import _request_errors, forest_json
from treecredit_server.process import start_server

# Root 0 -> {1 -> {3, 4}, 2}; leaf 4 has no reward, which only the server checks.
NO_REWARD = treecredit.Forest.from_arrays([-1, 0, 0, 1, 1], group=["q"] * 5,
                                          reward=[np.nan, np.nan, 1.0, 0.0, np.nan], num_tokens=[2] * 5)
FIELD, PROBLEM = "forest.reward[4]", "leaf 4 has no reward"


def assert_refusal(error: BaseException, kind: type, code: grpc.StatusCode, field: str, problem: str) -> None:
    assert type(error) is kind
    assert isinstance(error, grpc.RpcError) and isinstance(error, treecredit.ServiceError)
    assert error.code() == code
    assert (error.field, error.problem) == (field, problem)
    assert error.details() == f"{field}: {problem}" == str(error)


def test_a_refused_score_is_invalid_argument_naming_the_field(client):
    with pytest.raises(treecredit.InvalidArgument) as caught:
        client.score(NO_REWARD, "grpo")
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, FIELD, PROBLEM)
    assert isinstance(caught.value, ValueError)
    assert len(caught.value.request_id) == 16  # the server's id for the call, from the trailing metadata


def test_existing_grpc_handlers_still_catch_refusals(client):
    try:
        client.score(NO_REWARD, "grpo")
    except grpc.RpcError as error:  # how callers handled errors before the SDK had its own classes
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(FIELD + ":")
    else:
        pytest.fail("no error")


def test_the_grpc_free_classes_the_server_raises_catch_refusals_and_local_checks_alike(client):
    """The server raises `_request_errors` classes (no grpc in its compute layer); a refusal reaches the caller as
    the SDK's class of the status, which is also the gRPC-free class, as is an error of the SDK's own checks."""
    with pytest.raises(_request_errors.InvalidArgument) as refused:
        client.score(NO_REWARD, "grpo")
    assert_refusal(refused.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, FIELD, PROBLEM)
    with pytest.raises(treecredit.InvalidArgument) as local:
        forest_json.parse([])
    assert type(local.value) is treecredit.InvalidArgument and isinstance(local.value, _request_errors.RequestError)
    assert (local.value.field, local.value.problem, local.value.code()) == (
        "(top level)", "expected an object, got a list", grpc.StatusCode.INVALID_ARGUMENT)


def test_the_asyncio_client_raises_the_same(server):
    async def score():
        async with treecredit.AsyncCreditClient(server.target, timeout=30) as client:
            await client.score(NO_REWARD, "grpo")

    with pytest.raises(treecredit.InvalidArgument) as caught:
        asyncio.run(score())
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, FIELD, PROBLEM)


def test_a_missing_shared_memory_object_is_failed_precondition(client):
    with pytest.raises(treecredit.FailedPrecondition) as caught:
        client.register_shared_memory("logits", "/treecredit-test-no-such-object", 64)
    assert_refusal(caught.value, treecredit.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, "key",
                   "no shared-memory object 'treecredit-test-no-such-object' exists on the server's host")


def test_over_a_limit_is_resource_exhausted():
    server = start_server("--max-nodes", "4")
    try:
        with treecredit.CreditClient(server.target, timeout=30) as client:
            with pytest.raises(treecredit.ResourceExhausted) as caught:
                client.score(NO_REWARD, "grpo")
    finally:
        server.stop()
    assert_refusal(caught.value, treecredit.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   "forest.parent.shape", "5 elements exceed the limit of 4")


def test_a_streamed_tokenstats_refusal_names_the_chunk(client, server):
    logits, ids = np.zeros((4, 8), np.float32), np.zeros(3, np.int64)  # chunk 1 holds rows 2-3 but one id
    expected = ("chunks[1].ids.shape", "has 1 ids for 2 rows of logits")
    with pytest.raises(treecredit.InvalidArgument) as caught:
        client.token_stats(logits, ids, chunk_rows=2)
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, *expected)

    async def stream():
        async with treecredit.AsyncCreditClient(server.target, timeout=30) as aclient:
            await aclient.token_stats(logits, ids, chunk_rows=2)

    with pytest.raises(treecredit.InvalidArgument) as caught:
        asyncio.run(stream())
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, *expected)


def test_a_watch_refusal_arrives_from_the_stream(client, server):
    expected = ("finishes[0].trajectory", "trajectory 4 was never started")
    with pytest.raises(treecredit.InvalidArgument) as caught:
        with client.watch(window=2) as session:
            session.finish(4)
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, *expected)

    async def watch():
        async with treecredit.AsyncCreditClient(server.target) as aclient:
            async with aclient.watch(window=2) as session:
                await session.finish(4)

    with pytest.raises(treecredit.InvalidArgument) as caught:
        asyncio.run(watch())
    assert_refusal(caught.value, treecredit.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, *expected)


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the socket is closed


def test_no_server_is_unavailable_sync_and_async():
    target = closed_port()
    with treecredit.CreditClient(target, timeout=30) as client:
        with pytest.raises(treecredit.Unavailable) as caught:
            client.score(NO_REWARD)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and caught.value.field == ""
    assert caught.value.details() == caught.value.problem != ""

    async def score():
        async with treecredit.AsyncCreditClient(target, timeout=30) as client:
            await client.score(NO_REWARD)

    with pytest.raises(treecredit.Unavailable):
        asyncio.run(score())


def test_a_server_that_never_answers_is_deadline_exceeded():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        with treecredit.CreditClient(target, timeout=0.2) as client:
            with pytest.raises(treecredit.DeadlineExceeded) as caught:
                client.score(NO_REWARD)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, grpc.RpcError)

        async def score():
            async with treecredit.AsyncCreditClient(target) as aclient:
                await aclient.score(NO_REWARD, timeout=0.2)

        with pytest.raises(treecredit.DeadlineExceeded):
            asyncio.run(score())


@pytest.mark.parametrize("timeout", [0, -1, 0.0, float("nan"), float("inf"), "5"])
def test_a_timeout_that_is_no_deadline_is_refused(client, server, timeout):
    message = "timeout: .* is not a number of seconds > 0"
    with pytest.raises(ValueError, match=message):
        client.score(NO_REWARD, timeout=timeout)
    with pytest.raises(ValueError, match=message):
        client.watch(timeout=timeout)
    with pytest.raises(ValueError, match=message):
        treecredit.CreditClient(server.target, timeout=timeout)
    with pytest.raises(ValueError, match=message):
        client.timeout = timeout
    assert client.timeout == 60  # the fixture's, unchanged


def test_an_unknown_estimator_lists_the_valid_names(client):
    with pytest.raises(ValueError) as caught:
        client.score(NO_REWARD, "ppo")
    assert str(caught.value) == ("estimator: unknown estimator 'ppo'; expected one of "
                                 "grpo, tree_grpo, treerl, value_diff, toolpo, srl")


def test_top_k_above_zero_is_no_log_probability_for_any_rpc(client, server):
    """A positive top-k "log-prob" is refused by every RPC that reads top-k, as the SDK's Forest refuses it, naming
    the token (row); the same rows with 0 and -inf padding are served. Score gets a forest the SDK did not check."""
    from treecredit import _wire
    from treecredit.client import score_request
    from treecredit.v1 import credit_pb2_grpc

    rows = -np.arange(12, dtype=np.float32).reshape(6, 2) / 4  # [6, 2]: two tokens per node, 0 in row 0
    rows[5, 1] = -np.inf
    positive = rows.copy()
    positive[3, 1] = 0.5
    problem = "is NaN or above 0: no log-probability"

    by_hand = [1 / 8, 5 / 8, 9 / 8, 13 / 8, 17 / 8, 10 / 4]  # -mean of each row's finite values
    np.testing.assert_allclose(client.token_stats(topk_logprobs=rows).confidence, by_hand, rtol=1e-6)
    with pytest.raises(treecredit.InvalidArgument) as caught:
        client.token_stats(topk_logprobs=positive)
    assert (caught.value.field, caught.value.problem) == ("topk_logprobs[3]", problem)

    forest = treecredit.Forest.from_arrays([-1, 0, 0], group=[0, 0, 0], reward=[np.nan, 1.0, 0.0], num_tokens=[2, 2, 2])
    request = score_request(forest, "tree_grpo")
    request.forest.topk_logprobs.CopyFrom(_wire.encode(positive))
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as raw:
        credit_pb2_grpc.CreditServiceStub(channel).Score(request, timeout=30)
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raw.value.details() == f"forest.topk_logprobs[3]: {problem}"

    with pytest.raises(treecredit.InvalidArgument) as caught:
        with client.watch(window=2) as session:
            session.start(0)
            session.tokens([0], topk_logprobs=positive)
    assert (caught.value.field, caught.value.problem) == ("chunk.topk_logprobs[3]", problem)
