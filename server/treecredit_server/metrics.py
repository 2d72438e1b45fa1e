"""Prometheus metrics, served over HTTP on their own port (`--metrics-port`).

RPC metrics are recorded in one place, the `service.unary` wrapper, through `call_started` and
`call_finished`. A call notes each forest its decoding produced with `forest_decoded(forest)`; its nodes and
tokens count as processed when the call ends OK. The notes live in a context variable that `call_started` sets,
so calls to `forest_decoded` on a compute thread need the call's context (`contextvars.copy_context().run`).
"""

from __future__ import annotations

from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

from treecredit_server.compute.forest import ForestArrays

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


# (nodes, tokens) of each forest the current call decoded.
_decoded: ContextVar[list[tuple[int, int]] | None] = ContextVar("treecredit_decoded_forests", default=None)


def call_started(method: str) -> None:
    IN_FLIGHT.labels(method).inc()
    _decoded.set([])


def forest_decoded(forest: ForestArrays) -> None:
    """Note a forest that the current call's decoding produced."""
    decoded = _decoded.get()
    if decoded is not None:
        decoded.append((forest.num_nodes, int(forest.num_tokens.sum())))


def call_finished(method: str, status: str, seconds: float) -> None:
    """Record a finished call; its forests count as processed only when `status` is OK."""
    IN_FLIGHT.labels(method).dec()
    REQUESTS.labels(method, status).inc()
    LATENCY.labels(method).observe(seconds)
    if status == "OK":
        for nodes, tokens in _decoded.get() or ():
            NODES.labels(method).inc(nodes)
            TOKENS.labels(method).inc(tokens)
