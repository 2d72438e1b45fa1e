"""Prometheus metrics: a real server process, some calls over gRPC, then a scrape of /metrics over HTTP."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import treecredit
from forests import random_forest
from scrape import scrape
from treecredit.v1 import credit_pb2, credit_pb2_grpc
from treecredit_server.process import start_server


@pytest.fixture(scope="module")
def metered():
    started = start_server()
    started.drain_log()
    yield started
    assert started.stop() == 0


def test_scrape_counts_calls_statuses_nodes_and_tokens(metered):
    rng = np.random.default_rng(3)
    forests = [random_forest(rng, groups=2) for _ in range(3)]
    with treecredit.CreditClient(metered.target, timeout=60) as client:
        for forest in forests:
            client.score(forest, "tree_grpo")
    broken = forests[0].to_proto()
    broken.parent.data = broken.parent.data[:-1]
    with grpc.insecure_channel(metered.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            credit_pb2_grpc.CreditServiceStub(channel).Score(credit_pb2.ScoreRequest(forest=broken), timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The server records a call before its status goes out: the refusal is counted by the time the client has it.
    samples = scrape(metered.metrics_port)
    score = frozenset({("method", "Score")})
    assert samples["treecredit_rpc_requests_total", score | {("status", "OK")}] == 3
    assert samples["treecredit_rpc_requests_total", score | {("status", "INVALID_ARGUMENT")}] == 1
    assert samples["treecredit_rpc_duration_seconds_count", score] == 4
    assert samples["treecredit_rpc_duration_seconds_bucket", score | {("le", "+Inf")}] == 4
    assert samples["treecredit_rpc_duration_seconds_sum", score] > 0
    assert samples["treecredit_rpc_in_flight", score] == 0
    assert samples["treecredit_watch_sessions_open", frozenset()] == 0
    # Only the calls answered OK count as processed.
    assert samples["treecredit_nodes_processed_total", score] == sum(len(f) for f in forests)
    tokens = sum(int(forest.arrays["num_tokens"].sum()) for forest in forests)
    assert samples["treecredit_tokens_processed_total", score] == tokens
    assert samples["process_resident_memory_bytes", frozenset()] > 0


def test_metrics_port_minus_one_turns_metrics_off():
    started = start_server("--metrics-port", "-1")
    try:
        assert started.metrics_port is None
        with treecredit.CreditClient(started.target, timeout=60) as client:
            assert np.isfinite(client.score(random_forest(np.random.default_rng(0)), "tree_grpo").node_advantages).all()
    finally:
        assert started.stop() == 0
