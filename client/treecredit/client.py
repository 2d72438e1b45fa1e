"""Thin clients: build a request from a Forest, call the service, wrap the response. Sync and asyncio."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from treecredit import channel
from treecredit.forest import Forest
from treecredit.results import ScoreResult
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import credit_pb2_grpc as pb_grpc

MAX_MESSAGE_BYTES = 512 << 20
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


def score_request(forest: Forest, estimator: str, *, normalize_std: bool = True,
                  sibling_std: bool = False, min_margin: float = 0.0) -> pb.ScoreRequest:
    try:
        estimator_value = pb.Estimator.Value("ESTIMATOR_" + estimator.upper())
    except ValueError:
        raise ValueError(f"unknown estimator {estimator!r}") from None
    request = pb.ScoreRequest(
        estimator=estimator_value,
        options=pb.ScoreOptions(normalize_std=normalize_std, sibling_std=sibling_std, min_margin=min_margin),
    )
    forest.to_proto(into=request.forest)
    return request


def _channel_options(options: Sequence[tuple[str, object]]) -> list[tuple[str, object]]:
    return [*CHANNEL_OPTIONS, *options]


class CreditClient:
    """Blocking client. `target` is a gRPC target ("127.0.0.1:50051", "dns:///treecredit:50051").

    `timeout` (seconds) is the default deadline of each call; `credentials` makes a TLS channel
    (`treecredit.tls_credentials`); `token` is sent as `authorization: Bearer <token>` on every call;
    `options=treecredit.ROUND_ROBIN` spreads calls over every address `target` resolves to.
    """

    def __init__(self, target: str, *, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, token: str | None = None,
                 options: Sequence[tuple[str, object]] = ()):
        self.timeout = timeout
        self._channel = channel.channel(target, credentials, token, _channel_options(options))
        self._stub = pb_grpc.CreditServiceStub(self._channel)

    def score(self, forest: Forest, estimator: str = "tree_grpo", *, timeout: float | None = None,
              **options) -> ScoreResult:
        """Per-step advantages, preferences and the granularity report of `forest`.

        Options: `normalize_std` (default True), `sibling_std` (value_diff), `min_margin` (preferences).
        """
        request = score_request(forest, estimator, **options)
        response = self._stub.Score(request, timeout=timeout or self.timeout)
        return ScoreResult.from_proto(forest, response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CreditClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncCreditClient:
    """The asyncio twin of `CreditClient`: the same methods, awaited."""

    def __init__(self, target: str, *, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, token: str | None = None,
                 options: Sequence[tuple[str, object]] = ()):
        self.timeout = timeout
        self._channel = channel.aio_channel(target, credentials, token, _channel_options(options))
        self._stub = pb_grpc.CreditServiceStub(self._channel)

    async def score(self, forest: Forest, estimator: str = "tree_grpo", *, timeout: float | None = None,
                    **options) -> ScoreResult:
        request = score_request(forest, estimator, **options)
        response = await self._stub.Score(request, timeout=timeout or self.timeout)
        return ScoreResult.from_proto(forest, response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncCreditClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
