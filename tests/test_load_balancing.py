"""Client-side load balancing: one client target over two server processes, calls spread by round_robin."""

from __future__ import annotations

import numpy as np
import pytest

import treecredit
from forests import random_forest
from scrape import sample
from treecredit_server.process import start_server

CALLS = 20


@pytest.fixture(scope="module")
def replicas():
    started = [start_server() for _ in range(2)]
    for replica in started:
        replica.drain_log()
    yield started
    assert [replica.stop() for replica in started] == [0, 0]


def answered(metrics_port: int) -> float:
    """Score calls this replica has answered OK, from its /metrics."""
    return sample(metrics_port, "treecredit_rpc_requests_total", method="Score", status="OK")


def calls_per_replica(replicas, **client_options) -> list[float]:
    """Make CALLS Score calls through one client over every replica; how many each replica answered."""
    before = [answered(replica.metrics_port) for replica in replicas]
    target = "ipv4:" + ",".join(replica.target for replica in replicas)
    forest = random_forest(np.random.default_rng(0))
    with treecredit.CreditClient(target, timeout=30, **client_options) as client:
        for _ in range(CALLS):
            client.score(forest, "tree_grpo")
    return [answered(replica.metrics_port) - count for replica, count in zip(replicas, before, strict=True)]


def test_round_robin_spreads_unary_calls_over_both_replicas(replicas):
    spread = calls_per_replica(replicas, options=treecredit.ROUND_ROBIN)
    assert sum(spread) == CALLS
    assert min(spread) > 0, spread


def test_without_round_robin_one_replica_takes_every_call(replicas):
    # gRPC's default policy, pick_first, sticks to one connection: the reason to configure round_robin.
    assert sorted(calls_per_replica(replicas)) == [0, CALLS]
