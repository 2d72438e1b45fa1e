"""Nothing lost: every trajectory a Watch stream starts gets exactly one final verdict, however the stream ends.

Streams are cut at random points: half-closed (the summary is the proof), cancelled (the server's one
`watch_session` log line per session is: it counts the trajectories started and their verdicts) or left idle
past `--watch-idle-seconds` (the summary, marked idle_closed). Afterwards no session is left open.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

import treecredit
from faults import LogLines, eventually
from scrape import sample
from treecredit.v1 import credit_pb2_grpc
from treecredit.watch import finish_request, open_request, start_request, tokens_request
from treecredit_server.process import start_server
from watch_replay import random_stream, replay

OPTIONS = dict(warmup=3, keep_percent=50.0, window=3, consensus=0.9)


@pytest.fixture(scope="module")
def server():
    started = start_server("--watch-idle-seconds", "1")
    log = LogLines(started.process)
    yield started, log
    assert started.stop() == 0


def requests_of(events):
    yield open_request(**OPTIONS, fork_history=3)
    for event in events:
        if event[0] == "start":
            yield start_request(event[1], event[2], event[3])
        elif event[0] == "tokens":
            yield tokens_request(event[1], confidence=event[3], num_tokens=event[2])
        else:
            yield finish_request(event[1], event[2])


@pytest.mark.parametrize("seed", range(12))
def test_every_started_trajectory_gets_one_final_verdict(server, seed):
    started, log = server
    rng = np.random.default_rng(seed)
    events = random_stream(rng, trajectories=12, fork_history=3, **OPTIONS)
    cut = int(rng.integers(0, len(events) + 1))
    ending = ["half_close", "cancel", "idle"][seed % 3]
    sent = list(requests_of(events[:cut]))
    request_id = f"nothing-lost-{seed}"
    with grpc.insecure_channel(started.target) as channel:
        stub = credit_pb2_grpc.CreditServiceStub(channel)

        def stream():
            yield from sent
            if ending == "idle":
                time.sleep(3)  # past --watch-idle-seconds: the server closes the session
            elif ending == "cancel":
                time.sleep(0.5)  # the server has read what was sent
                call.cancel()
                time.sleep(5)

        call = stub.Watch(stream(), timeout=30, metadata=(("x-request-id", request_id),))
        responses = []
        try:
            responses.extend(call)
        except grpc.RpcError as error:
            assert ending == "cancel" and error.code() == grpc.StatusCode.CANCELLED, error
    assert eventually(lambda: len(log.events("watch_session", request_id=request_id)) == 1)
    (line,) = log.events("watch_session", request_id=request_id)
    starts = [s.trajectory for r in sent for s in r.starts]
    # The verdicts the stream sent must lead to, from an offline replay of the same events: finished and never
    # stopped is kept, stopped by a window is stopped, neither is cut off.
    expected = replay(events[:cut], **OPTIONS).verdicts()
    assert list(expected) == starts
    assert line["started"] == len(starts)
    assert {v: line[v] for v in ("kept", "stopped", "cut_off")} == \
        {v: sum(1 for got in expected.values() if got == v) for v in ("kept", "stopped", "cut_off")}
    if ending != "cancel":
        summary = treecredit.WatchSummary.from_proto(responses[-1].summary)
        assert summary.trajectory.tolist() == starts  # each started one exactly once, in start order
        assert summary.idle_closed == (ending == "idle") and line["ended"] == ("idle" if ending == "idle" else "closed")
        assert dict(zip(summary.trajectory.tolist(), summary.verdict.tolist())) == expected
        stopped_in_stream = [stop.trajectory for response in responses for stop in response.stops]
        assert sorted(stopped_in_stream) == sorted(t for t, v in expected.items() if v == "stopped")
    else:
        assert line["ended"] == "cancelled"
    assert eventually(lambda: sample(started.metrics_port, "treecredit_watch_sessions_open") == 0)
