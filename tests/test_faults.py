"""Faults: clients that cancel, die or run out of time, and a server stopped or restarted under load.

The server must answer each with a proper status (never INTERNAL or UNKNOWN), free what the call held and go
on serving; on SIGTERM it reports NOT_SERVING first, lets in-flight calls finish within the grace period (or
ends them UNAVAILABLE) and exits 0; a client with `treecredit.RETRY` sees no error across a restart.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

import treecredit
from faults import HealthWatch, LogLines, big_forest, eventually
from scrape import scrape, sample
from treecredit.client import score_request
from treecredit.v1 import credit_pb2_grpc
from treecredit_server.process import start_server

SMALL = treecredit.Forest.from_arrays([-1, 0, 0], group=[0, 0, 0], reward=[np.nan, 1.0, 0.0])
FAILURES = {"INTERNAL", "UNKNOWN"}


def statuses(metrics_port: int) -> dict[tuple[str, str], float]:
    """(method, status) -> calls, from the server's metrics."""
    return {(dict(labels)["method"], dict(labels)["status"]): value
            for (name, labels), value in scrape(metrics_port).items() if name == "treecredit_rpc_requests_total"}


def assert_never_failed(server) -> None:
    failed = {key: n for key, n in statuses(server.metrics_port).items() if key[1] in FAILURES}
    assert not failed, failed


def opens_a_session(client: treecredit.CreditClient) -> bool:
    """Whether a new Watch session opens now (False: RESOURCE_EXHAUSTED, every session is taken)."""
    try:
        client.watch(window=2, timeout=20).close()
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        return False


@pytest.fixture(scope="module")
def one_session_server():
    """A server that holds a single Watch session, so a session not freed blocks the next."""
    started = start_server("--watch-max-sessions", "1")
    started.drain_log()
    yield started
    assert_never_failed(started)
    assert started.stop() == 0


def test_a_cancelled_stream_frees_its_session(one_session_server):
    with treecredit.CreditClient(one_session_server.target) as client:
        session = client.watch(window=4, threshold=0.5)
        session.start(0)
        session.tokens(0, confidence=np.ones(64))
        assert eventually(lambda: session.threshold is not None)  # the session is open on the server
        assert not opens_a_session(client)
        session.cancel()
        assert eventually(lambda: opens_a_session(client))
        assert eventually(lambda: sample(one_session_server.metrics_port, "treecredit_watch_sessions_open") == 0)


def test_a_cancelled_call_leaves_the_server_serving(one_session_server):
    with grpc.insecure_channel(one_session_server.target, options=treecredit.client.CHANNEL_OPTIONS) as channel:
        stub = credit_pb2_grpc.CreditServiceStub(channel)
        request = score_request(big_forest(1_000_000), "tree_grpo")
        for delay in (0.0, 0.05, 0.3):
            call = stub.Score.future(request, timeout=60)
            time.sleep(delay)
            call.cancel()
            assert call.cancelled() or call.code() == grpc.StatusCode.OK
        stub.Score(score_request(SMALL, "grpo"), timeout=20)
    assert eventually(lambda: statuses(one_session_server.metrics_port).get(("Score", "CANCELLED"), 0) >= 1)


CLIENT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import treecredit
    client = treecredit.CreditClient(sys.argv[1])
    session = client.watch(window=4, threshold=0.5)
    session.start(0)
    for step in range(10_000):
        session.tokens(0, confidence=np.ones(8))
        if step == 10:
            print("streaming", flush=True)
        time.sleep(0.01)
""")


def test_a_killed_client_process_frees_its_session(one_session_server):
    child = subprocess.Popen([sys.executable, "-c", CLIENT, one_session_server.target], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "streaming"
        with treecredit.CreditClient(one_session_server.target) as client:
            assert not opens_a_session(client)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            assert eventually(lambda: opens_a_session(client))
    finally:
        child.kill()
        child.wait()


def test_deadlines_exceeded_end_calls_and_streams_without_harm(one_session_server):
    with treecredit.CreditClient(one_session_server.target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.score(big_forest(1_000_000), timeout=0.05)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        session = client.watch(window=2, timeout=0.5)
        session.start(0)
        with pytest.raises(grpc.RpcError) as caught:
            time.sleep(1.0)
            session.close()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert eventually(lambda: opens_a_session(client))
        client.score(SMALL, "grpo")


def hammer(target: str, stop: threading.Event, forest: treecredit.Forest, *, options=()) -> list[str]:
    """Call Score back to back until `stop`; the status of every call."""
    seen = []
    with treecredit.CreditClient(target, timeout=60, options=options) as client:
        while not stop.is_set():
            try:
                client.score(forest)
                seen.append("OK")
            except grpc.RpcError as error:
                seen.append(error.code().name)
    return seen


def test_sigterm_under_load_drains(tmp_path):
    server = start_server("--grace-seconds", "10")
    log = LogLines(server.process)
    health = HealthWatch(server.target)
    assert eventually(lambda: health.statuses[-1:] == [health_pb2.HealthCheckResponse.SERVING])
    forest, stop = big_forest(50_000), threading.Event()
    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(hammer, server.target, stop, forest) for _ in range(4)]
        with treecredit.CreditClient(server.target) as client:
            session = client.watch(window=2)
            session.start(0)
            assert eventually(lambda: statuses(server.metrics_port).get(("Score", "OK"), 0) >= 8)
            server.process.send_signal(signal.SIGTERM)
            assert eventually(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in health.statuses)
            # An open stream finishes within the grace period as well: its summary still arrives.
            assert session.close().verdict.tolist() == ["cut_off"]
        assert server.process.wait(30) == 0
        stop.set()
        seen = [status for done in clients for status in done.result()]
    assert health.close()[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    # Calls in flight finish; later ones get UNAVAILABLE, or CANCELLED from gRPC itself when one arrives in the
    # instant the server shuts down (about one call in a thousand; `treecredit.RETRY` retries both).
    assert "OK" in seen and set(seen) <= {"OK", "UNAVAILABLE", "CANCELLED"}, set(seen)
    events = [line["event"] for line in log.lines]
    assert events.index("draining") < events.index("stopped")
    assert not [line for line in log.lines if line.get("status") in FAILURES]


def test_a_client_with_the_retry_policy_sees_no_error_across_a_restart():
    first = start_server()
    first.drain_log()
    port = first.target.rsplit(":", 1)[1]
    forest, stop = big_forest(20_000), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(hammer, first.target, stop, forest, options=treecredit.RETRY) for _ in range(2)]
        assert eventually(lambda: statuses(first.metrics_port).get(("Score", "OK"), 0) >= 4)
        assert first.stop() == 0
        second = start_server("--port", port)
        second.drain_log()
        try:
            assert eventually(lambda: statuses(second.metrics_port).get(("Score", "OK"), 0) >= 4)
            stop.set()
            seen = [status for done in clients for status in done.result()]
        finally:
            stop.set()
            assert second.stop() == 0
    assert set(seen) == {"OK"}, {status: seen.count(status) for status in set(seen)}
