"""Watch over real gRPC: online decisions equal an offline replay; forks, consensus, budget, cut-offs,
cancellation, many sessions at once, bad input."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np
import pytest

import treecredit
from treecredit_server.process import start_server
from watch_replay import random_stream, replay


def drive(session, events) -> None:
    for event in events:
        if event[0] == "start":
            session.start(event[1], parent=event[2], offset=event[3])
        elif event[0] == "tokens":
            session.tokens(event[1], confidence=event[3], num_tokens=event[2])
        else:
            session.finish(event[1], event[2])


def assert_matches(session, summary, reference) -> None:
    assert {t: stop.token for t, stop in session.stops.items()} == reference.stops
    assert dict(zip(summary.trajectory.tolist(), summary.stop_token.tolist())) == \
        {t: reference.stops.get(t, -1) for t in reference.order}
    assert summary.trajectory.tolist() == reference.order
    assert dict(zip(summary.trajectory.tolist(), summary.verdict.tolist())) == reference.verdicts()
    assert summary.num_tokens.tolist() == [len(reference.confidence[t]) for t in reference.order]
    np.testing.assert_allclose(summary.lowest, [reference.lowest(t) for t in reference.order], rtol=1e-12)
    if reference.threshold is None:
        assert session.threshold is None
    else:
        np.testing.assert_allclose(session.threshold, reference.threshold, rtol=1e-12)
    assert (session.stop_sampling.reason if session.stop_sampling else None) == reference.stop_sampling
    assert summary.votes.keys() == reference.votes.keys()
    for answer, weight in reference.votes.items():
        assert summary.votes[answer] == pytest.approx(weight, rel=1e-12)


@pytest.mark.parametrize("keep_percent", [10.0, 90.0])
@pytest.mark.parametrize("seed", range(5))
def test_online_decisions_equal_an_offline_replay(client, seed, keep_percent):
    rng = np.random.default_rng(seed)
    options = dict(warmup=4, keep_percent=keep_percent, window=4, consensus=0.8, budget=100)
    events = random_stream(rng, trajectories=16, fork_history=4, **options)
    with client.watch(**options, fork_history=4) as session:
        drive(session, events)
    reference = replay(events, **options)
    assert_matches(session, session.summary, reference)
    assert reference.stops, "the stream should stop some trajectories"


def test_topk_logprobs_give_the_confidence_minus_their_mean(client):
    rng = np.random.default_rng(7)
    topk = -np.sort(rng.exponential(1.0, (40, 20)), axis=1).astype(np.float32)
    topk[3, 5:] = -np.inf  # padding
    with client.watch(threshold=1.0, window=8) as session:
        session.start(0)
        session.tokens(0, topk_logprobs=topk)
    row = [-np.mean(r[np.isfinite(r)].astype(np.float64)) for r in topk]
    reference = replay([("start", 0, None, 0), ("tokens", [0], [40], np.array(row))], threshold=1.0, window=8)
    assert_matches(session, session.summary, reference)


def test_a_fork_inherits_its_prefix_window(client):
    # Fixed threshold 1, W = 4. Parent: 2 2 2 0.5 (its window mean 1.625 stays above).
    with client.watch(threshold=1.0, window=4, fork_history=4) as session:
        session.start(0)
        session.tokens(0, confidence=[2, 2, 2, 0.5])
        session.start(1, parent=0, offset=4)  # inherits 2 2 2 0.5
        session.start(2)                      # a fresh trajectory
        session.tokens([1, 2], confidence=[0.1, 0.1, 0.1, 0.1], num_tokens=[2, 2])
        session.start(3, parent=0, offset=1)  # inherits 2; then 0.1 0.1 0.1 -> (2 + 0.3) / 4 = 0.575 < 1
        session.tokens(3, confidence=[0.1, 0.1, 0.1])
    assert session.stops[1].token == 5 and session.stops[1].window_mean == pytest.approx((2 + 0.5 + 0.2) / 4)
    assert session.stops[3].token == 3
    assert 2 not in session.stops  # two tokens: no full window yet
    summary = session.summary
    assert summary.num_tokens.tolist() == [4, 6, 2, 4]
    assert summary.verdict.tolist() == ["cut_off", "stopped", "cut_off", "stopped"]


def test_fork_offsets_outside_the_kept_history_are_refused(client):
    with pytest.raises(grpc.RpcError) as caught:
        with client.watch(threshold=1.0, window=2, fork_history=3) as session:
            session.start(0)
            session.tokens(0, confidence=np.full(10, 2.0))
            session.start(1, parent=0, offset=7)  # 10 - 3: the oldest allowed
            session.start(2, parent=0, offset=6)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "starts[0].fork_offset" in caught.value.details()


def test_consensus_stops_sampling_after_the_warmup(client):
    with client.watch(warmup=2, keep_percent=90, window=2, consensus=0.7) as session:
        for t in range(4):
            session.start(t)
        session.tokens([0, 1, 2, 3], confidence=np.full(12, 2.0), num_tokens=[3, 3, 3, 3])
        session.finish(0, "42")  # one warm-up trajectory still runs: no threshold, no consensus check
        session.finish(1, "7")   # warm-up done: threshold set; votes 42: 2, 7: 2 -> beta 0.5
        session.finish(2, "42")  # beta 2/3
        session.finish(3, "42")  # beta 3/4 >= 0.7
    stop = session.stop_sampling
    assert stop.reason == "consensus" and stop.answer == "42" and stop.consensus == pytest.approx(0.75)
    summary = session.summary
    assert summary.answer == "42" and summary.consensus == pytest.approx(0.75)
    assert summary.votes == {"42": pytest.approx(6.0), "7": pytest.approx(2.0)}


def test_budget_stops_sampling_and_open_trajectories_are_cut_off(client):
    with client.watch(warmup=1, budget=3, window=2) as session:
        for t in range(3):
            session.start(t)
        session.tokens([0, 1], confidence=[1.0, 1.0, 1.0], num_tokens=[2, 1])
        session.finish(1, "x")
    assert session.stop_sampling.reason == "budget"
    summary = session.summary
    assert summary.verdict.tolist() == ["cut_off", "kept", "cut_off"]
    assert summary.cut_off.tolist() == [0, 2]
    assert np.isnan(summary.lowest[2])  # no tokens: no confidence


def assert_eventually(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def small_server():
    """A server holding at most two sessions, idle after 3 s."""
    started = start_server("--watch-max-sessions", "2", "--watch-idle-seconds", "3", "--metrics-port", "-1")
    threading.Thread(target=lambda: [None for _ in started.process.stdout], daemon=True).start()
    yield started
    started.stop()


def test_cancelling_a_stream_frees_its_session(small_server):
    with treecredit.CreditClient(small_server.target) as client:
        first, second = client.watch(threshold=1.0, window=2), client.watch(threshold=1.0, window=2)
        assert_eventually(lambda: first.threshold is not None and second.threshold is not None)  # both open
        second.start(0)
        third = client.watch(window=2)
        with pytest.raises(grpc.RpcError) as caught:
            third.close()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()

        def reopened():
            session = client.watch(window=2)
            try:
                session.close()
                return True
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return False

        assert_eventually(reopened)
        assert second.close().verdict.tolist() == ["cut_off"]


def test_an_idle_session_is_closed_with_its_summary(small_server):
    with treecredit.CreditClient(small_server.target) as client:
        session = client.watch(window=2)
        session.start(5)
        assert_eventually(lambda: session.summary is not None)
        summary = session.close()
    assert summary.idle_closed and summary.verdict.tolist() == ["cut_off"]


@pytest.mark.parametrize(
    "events, field",
    [
        ([("tokens", [9], [1], [1.0])], "chunk.trajectory[0]"),
        ([("start", 0, None, 0), ("tokens", [0, 0], [1, 1], [1.0, 1.0])], "chunk.trajectory[1]"),
        ([("start", 0, None, 0), ("tokens", [0], [2], [1.0])], "chunk.confidence"),
        ([("start", 0, None, 0), ("tokens", [0], [1], [np.nan])], "chunk.confidence[0]"),
        ([("start", 0, None, 0), ("start", 0, None, 0)], "starts[0].trajectory"),
        ([("start", 0, 3, 0)], "starts[0].parent"),
        ([("finish", 4, None)], "finishes[0].trajectory"),
        ([("start", 0, None, 0), ("finish", 0, None), ("tokens", [0], [1], [1.0])], "chunk.trajectory[0]"),
    ],
)
def test_a_malformed_event_fails_its_own_stream_only(client, events, field):
    bystander = client.watch(threshold=1.0, window=2)
    bystander.start(1)
    with pytest.raises(grpc.RpcError) as caught:
        with client.watch(window=2) as session:
            drive(session, events)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":")
    bystander.tokens(1, confidence=[0.5, 0.5])
    assert bystander.close().verdict.tolist() == ["stopped"]


@pytest.mark.parametrize("option, value", [("window", 0), ("consensus", 1.5), ("keep_percent", 0.0), ("budget", 0)])
def test_bad_session_options_are_refused(client, option, value):
    with pytest.raises(grpc.RpcError) as caught:
        client.watch(**{option: value}).close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"open.{option}:")


def test_many_sessions_at_once_over_asyncio(server):
    async def one(client, seed):
        rng = np.random.default_rng(100 + seed)
        options = dict(warmup=3, keep_percent=50.0, window=3, consensus=0.9)
        events = random_stream(rng, trajectories=10, fork_history=3, **options)
        async with client.watch(**options, fork_history=3) as session:
            for event in events:
                if event[0] == "start":
                    await session.start(event[1], parent=event[2], offset=event[3])
                elif event[0] == "tokens":
                    await session.tokens(event[1], confidence=event[3], num_tokens=event[2])
                else:
                    await session.finish(event[1], event[2])
        assert_matches(session, session.summary, replay(events, **options))

    async def main():
        async with treecredit.AsyncCreditClient(server.target) as client:
            await asyncio.gather(*(one(client, seed) for seed in range(24)))

    asyncio.run(main())
