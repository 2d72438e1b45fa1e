"""Prometheus metrics, served over HTTP on their own port (`--metrics-port`).

RPC metrics are recorded in one place, the `service.unary` wrapper, through `call_started` and
`call_finished`. Streaming RPCs track their open sessions with

    with metrics.SESSIONS_OPEN.track_inprogress():
        ...  # the stream's lifetime

and count the forests they process with `count_forests(method, request)`.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

from treecredit import _wire
from treecredit.errors import RequestError
from treecredit.v1 import forest_pb2

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

REQUESTS = Counter(
    "treecredit_rpc_requests", "RPCs finished, by method and gRPC status.", ("method", "status"), registry=REGISTRY
)
LATENCY = Histogram(
    "treecredit_rpc_duration_seconds", "Time from an RPC's arrival to its answer, by method.", ("method",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("treecredit_rpc_in_flight", "RPCs being served now, by method.", ("method",), registry=REGISTRY)
SESSIONS_OPEN = Gauge("treecredit_watch_sessions_open", "Watch streams open now.", registry=REGISTRY)
NODES = Counter(
    "treecredit_nodes_processed", "Forest nodes in requests answered OK, by method.", ("method",), registry=REGISTRY
)
TOKENS = Counter(
    "treecredit_tokens_processed", "Forest tokens in requests answered OK, by method.", ("method",), registry=REGISTRY
)


def serve(host: str, port: int) -> int | None:
    """Serve `/metrics` on `host:port` from a daemon thread; the bound port, or None when `port` is -1 (off)."""
    if port < 0:
        return None
    http_server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    return http_server.server_port


def call_started(method: str) -> None:
    IN_FLIGHT.labels(method).inc()


def call_finished(method: str, status: str, seconds: float, request) -> None:
    """Record a finished call; its forests count as processed only when `status` is OK."""
    IN_FLIGHT.labels(method).dec()
    REQUESTS.labels(method, status).inc()
    LATENCY.labels(method).observe(seconds)
    if status == "OK":
        count_forests(method, request)


def count_forests(method: str, request) -> None:
    """Add the nodes and tokens of every `Forest` field of `request` (a protobuf message) to the counters."""
    for field, value in request.ListFields():
        if field.message_type is forest_pb2.Forest.DESCRIPTOR:
            for forest in value if field.is_repeated else (value,):
                nodes, tokens = forest_size(forest)
                NODES.labels(method).inc(nodes)
                TOKENS.labels(method).inc(tokens)


def forest_size(forest: forest_pb2.Forest) -> tuple[int, int]:
    """(N, T) of a forest that has passed validation: its nodes and the sum of its `num_tokens`."""
    nodes = forest.parent.shape[0] if forest.parent.shape else 0
    if not forest.HasField("num_tokens"):
        return nodes, 0
    try:
        num_tokens = _wire.decode(forest.num_tokens, "num_tokens", dtypes=_wire.INTEGER, ndim=1)
    except RequestError:
        return nodes, 0
    return nodes, int(np.sum(num_tokens, dtype=np.int64))
