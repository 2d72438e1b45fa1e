"""How a client's channel reaches the service: TLS/mTLS credentials, a bearer token, load balancing.

    credentials = treecredit.tls_credentials(ca="ca.pem", cert="client.pem", key="client.key")
    client = treecredit.CreditClient("dns:///treecredit:50051", credentials=credentials, token=token,
                                     options=treecredit.ROUND_ROBIN)

The token travels as `authorization: Bearer <token>` metadata on every call, added by a client
interceptor rather than gRPC call credentials so that it also works on a plaintext channel to a
loopback server or a TLS-terminating sidecar; anywhere else, use TLS or the token is sent in clear.
"""

from __future__ import annotations

import json
import os
from collections import namedtuple
from pathlib import Path

import grpc

# Spread calls over every address the target resolves to (a headless Service's pods, or an
# `ipv4:host1:port1,host2:port2` list), instead of gRPC's default of the first address that connects.
ROUND_ROBIN = (("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),)

# Retry a call that failed with UNAVAILABLE (server restarting, connection reset): up to 5 attempts, backoff
# 0.1 s doubling to 2 s; while no server is reachable, calls wait for one (wait-for-ready) up to their deadline. Unary calls are safe to repeat (a repeated RegisterSharedMemory gets
# FAILED_PRECONDITION); gRPC retries a stream only before its first response. `treecredit.RETRY` is the channel
# option; with ROUND_ROBIN too, use `service_config(round_robin=True, retry=True)`.
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    # CANCELLED too: a call that reaches a server in the instant it shuts down may be cancelled by gRPC itself
    # (a call the application cancels is never retried).
    "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
}


# gRPC can retry a call only while it still holds the whole request: past 256 KiB (its default) a large forest
# would be sent once and never retried. These let requests up to the message limit be retried.
RETRY_BUFFERS = (("grpc.per_rpc_retry_buffer_size", 512 << 20), ("grpc.retry_buffer_size", 1 << 30))


def service_config(*, round_robin: bool = False, retry: bool = False) -> tuple[tuple[str, object], ...]:
    """Channel options: round-robin load balancing and/or `RETRY_POLICY` (with `RETRY_BUFFERS`)."""
    config: dict = {}
    if round_robin:
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    if retry:
        config["methodConfig"] = [{"name": [{"service": "treecredit.v1.CreditService"}], "waitForReady": True,
                                   "retryPolicy": RETRY_POLICY}]
    return (("grpc.service_config", json.dumps(config)), *(RETRY_BUFFERS if retry else ()))


RETRY = service_config(retry=True)

Pem = str | os.PathLike | bytes


def _read(pem: Pem | None) -> bytes | None:
    """PEM bytes as given, or read from a file path."""
    return pem if pem is None or isinstance(pem, bytes) else Path(pem).read_bytes()


def tls_credentials(ca: Pem | None = None, cert: Pem | None = None, key: Pem | None = None) -> grpc.ChannelCredentials:
    """Channel credentials for TLS: `ca` verifies the server (None: the system's roots); `cert` and `key`
    identify this client for mTLS. Each is a PEM file path, or the PEM contents as bytes."""
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together")
    return grpc.ssl_channel_credentials(root_certificates=_read(ca), private_key=_read(key),
                                        certificate_chain=_read(cert))


class _CallDetails(
    namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class BearerToken(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
):
    """Blocking-channel interceptor adding `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(details.method, details.timeout, [*(details.metadata or ()), self._header],
                            details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _AsyncBearerToken:
    """Base of the asyncio interceptors: grpc.aio wants one object per RPC shape."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), self._header))


class _AsyncUnaryUnary(_AsyncBearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _AsyncUnaryStream(_AsyncBearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _AsyncStreamUnary(_AsyncBearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, requests):
        return await continuation(self._details(details), requests)


class _AsyncStreamStream(_AsyncBearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, requests):
        return await continuation(self._details(details), requests)


def async_bearer_token(token: str) -> list[_AsyncBearerToken]:
    """asyncio-channel interceptors adding `authorization: Bearer <token>` to every call."""
    return [kind(token) for kind in (_AsyncUnaryUnary, _AsyncUnaryStream, _AsyncStreamUnary, _AsyncStreamStream)]


def channel(target: str, credentials: grpc.ChannelCredentials | None, token: str | None,
            options: list[tuple[str, object]]) -> grpc.Channel:
    """A blocking channel: TLS when `credentials` is given, the bearer `token` on every call when given."""
    if credentials is None:
        opened = grpc.insecure_channel(target, options=options)
    else:
        opened = grpc.secure_channel(target, credentials, options=options)
    return opened if token is None else grpc.intercept_channel(opened, BearerToken(token))


def aio_channel(target: str, credentials: grpc.ChannelCredentials | None, token: str | None,
                options: list[tuple[str, object]]) -> grpc.aio.Channel:
    """The asyncio twin of `channel`."""
    interceptors = None if token is None else async_bearer_token(token)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
