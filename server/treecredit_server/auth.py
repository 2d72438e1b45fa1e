"""Bearer-token authentication: a server interceptor that lets a call through only with a known token.

Clients send `authorization: Bearer <token>` metadata. Health and reflection stay open so that probes
and tooling work without a token. Calls turned away count in `treecredit_rpc_requests_total` with the
status UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from treecredit_server.config import Settings
from treecredit_server.refusal import refusing_handler

OPEN_SERVICES = frozenset({
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
    "grpc.reflection.v1.ServerReflection",
})


def read_tokens(path: str | Path) -> list[str]:
    """The tokens in a file, one a line; blank lines and lines starting with `#` are skipped."""
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    tokens = [line for line in lines if line and not line.startswith("#")]
    if not tokens:
        raise ValueError(f"{path}: no tokens")
    return tokens


def interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors: bearer-token auth when `auth_tokens_file` is set, else none."""
    return [BearerTokenAuth(read_tokens(settings.auth_tokens_file))] if settings.auth_tokens_file else []


class BearerTokenAuth(grpc.aio.ServerInterceptor):
    """Refuse calls to services outside `OPEN_SERVICES` unless they carry one of `tokens`."""

    def __init__(self, tokens: Iterable[str]):
        self._tokens = [token.encode() for token in tokens]

    def _accepts(self, metadata) -> bool:
        value = dict(metadata or ()).get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        presented = token.strip().encode()
        return any([hmac.compare_digest(presented, known) for known in self._tokens])  # no early exit: constant time

    async def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = await continuation(handler_call_details)
        _, service, method = handler_call_details.method.split("/")
        if handler is None or service in OPEN_SERVICES or self._accepts(handler_call_details.invocation_metadata):
            return handler
        return refusing_handler(handler, method, grpc.StatusCode.UNAUTHENTICATED,
                                "missing or invalid bearer token in `authorization` metadata")
