"""Thin clients: build a request from a Forest, call the service, wrap the response. Sync and asyncio."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from treecredit import calls, channel
from treecredit.confidence import FilterResult, ForkSuggestions, filter_request, forks_request
from treecredit.forest import Forest
from treecredit.packing import PackedForest, pack_options
from treecredit.results import ScoreResult
from treecredit.shared_memory import SharedMemoryRegion, register_request, regions_of
from treecredit.curriculum import CurriculumHistory, CurriculumPlan, curriculum_request
from treecredit.reflection import Reflection, ReflectionResult
from treecredit.srl import StepSimilarity
from treecredit.toolpo import ToolCalls
from treecredit.tokens import TokenStatsResult, token_stats_call
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import credit_pb2_grpc as pb_grpc
from treecredit.v1 import tokens_pb2 as tpb
from treecredit.watch import AsyncWatchSession, WatchSession, open_request

MAX_MESSAGE_BYTES = 512 << 20
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)

# The estimators Score knows, by the names the clients take ("tree_grpo").
ESTIMATORS = [pb.Estimator.Name(value).removeprefix("ESTIMATOR_").lower()
              for value in pb.Estimator.values() if value != pb.ESTIMATOR_UNSPECIFIED]


def score_request(forest: Forest, estimator: str, *, normalize_std: bool = True,
                  sibling_std: bool = False, min_margin: float = 0.0, tool_calls: ToolCalls | None = None,
                  step_similarity: StepSimilarity | None = None,
                  reflection: Reflection | None = None, window: int | None = None,
                  tail: int | None = None) -> pb.ScoreRequest:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    request = pb.ScoreRequest(
        estimator=pb.Estimator.Value("ESTIMATOR_" + estimator.upper()),
        options=pb.ScoreOptions(normalize_std=normalize_std, sibling_std=sibling_std, min_margin=min_margin,
                                window=window, tail=tail),
    )
    forest.to_proto(into=request.forest)
    for name, part in (("tool_calls", tool_calls), ("step_similarity", step_similarity), ("reflection", reflection)):
        if part is not None:
            getattr(request, name).CopyFrom(part.to_proto())
    return request


def pack_request(forest: Forest, estimator: str, *, loss_agg_mode: str = "token-mean",
                 max_response_length: int | None = None, microbatch_tokens: int | None = None, align: int = 1,
                 **score_options) -> pb.PackRequest:
    request = pb.PackRequest(options=pack_options(loss_agg_mode, max_response_length, microbatch_tokens, align))
    request.score.CopyFrom(score_request(forest, estimator, **score_options))
    return request


def packed(forest: Forest, response, microbatch_tokens: int | None, align: int,
           tool_calls: ToolCalls | None) -> PackedForest | list[PackedForest]:
    parts = PackedForest.from_proto(forest, response, align, None if tool_calls is None else tool_calls.tool_call_mask)
    return parts if microbatch_tokens is not None else parts[0]


def _channel_options(options: Sequence[tuple[str, object]]) -> list[tuple[str, object]]:
    return [*CHANNEL_OPTIONS, *options]


class _Deadline:
    """The clients' default deadline, kept by their `calls.Stub`."""

    _stub: calls.Stub

    @property
    def timeout(self) -> float | None:
        """Seconds each call may take unless it names its own `timeout` (None: no deadline; a Watch session
        has none unless given one)."""
        return self._stub.timeout

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._stub.timeout = calls.checked_timeout(seconds)


class CreditClient(_Deadline):
    """Blocking client. `target` is a gRPC target ("127.0.0.1:50051", "dns:///treecredit:50051").

    `timeout` (seconds, > 0) is the default deadline of each call; `credentials` makes a TLS channel
    (`treecredit.tls_credentials`); `token` is sent as `authorization: Bearer <token>` on every call;
    `options=treecredit.ROUND_ROBIN` spreads calls over every address `target` resolves to.

    A call the server refuses, or that fails on its way, raises the `treecredit.errors` class of its status
    (`InvalidArgument`, `ResourceExhausted`, `Unavailable`, `DeadlineExceeded`, ...): a `grpc.RpcError` that also
    names the request `field` at fault. A `timeout` that is not a number of seconds > 0 raises ValueError.
    """

    def __init__(self, target: str, *, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, token: str | None = None,
                 options: Sequence[tuple[str, object]] = ()):
        self._channel = channel.channel(target, credentials, token, _channel_options(options))
        self._stub = calls.Stub(pb_grpc.CreditServiceStub(self._channel), timeout)

    def score(self, forest: Forest, estimator: str = "tree_grpo", *, timeout: float | None = None,
              **options) -> ScoreResult:
        """Per-step advantages, preferences and the granularity report of `forest`.

        Options: `normalize_std` (default True), `sibling_std` (value_diff), `min_margin` (preferences),
        `tool_calls` (toolpo), `step_similarity` (srl), `reflection` (R3 added to the leaf rewards), `window` and
        `tail` (2048) of the trace confidence returned when the forest carries confidence or topk_logprobs.
        """
        request = score_request(forest, estimator, **options)
        response = self._stub.Score(request, timeout=timeout)
        return ScoreResult.from_proto(forest, response, options.get("tool_calls"), estimator)

    def pack(self, forest: Forest, estimator: str = "tree_grpo", *, loss_agg_mode: str = "token-mean",
             max_response_length: int | None = None, microbatch_tokens: int | None = None, align: int = 1,
             timeout: float | None = None, **score_options) -> PackedForest | list[PackedForest]:
        """The forest packed for training (ALGORITHMS.md section 12): one `PackedForest`, or with
        `microbatch_tokens` a list of them, each at most that many tokens after padding to a multiple of `align`.
        The forest must carry token ids. `loss_agg_mode`: "token-mean", "seq-mean-token-sum",
        "seq-mean-token-mean" or "seq-mean-token-sum-norm" (`max_response_length` its L); the weights are those
        of the whole step. `score_options` as for `score`."""
        request = pack_request(forest, estimator, loss_agg_mode=loss_agg_mode, max_response_length=max_response_length,
                               microbatch_tokens=microbatch_tokens, align=align, **score_options)
        response = self._stub.Pack(request, timeout=timeout)
        return packed(forest, response, microbatch_tokens, align, score_options.get("tool_calls"))

    def reflect(self, reflection: Reflection, *, timeout: float | None = None) -> ReflectionResult:
        """DRO's R3 per rollout, token weights and query verdicts (sections 6-7)."""
        response = self._stub.Reflect(reflection.to_proto(), timeout=timeout)
        return ReflectionResult.from_proto(response)

    def curriculum(self, histories: Sequence[CurriculumHistory], *, timeout: float | None = None,
                   **options) -> CurriculumPlan:
        """R³'s stage, start-depth mix and failing step per demonstration (section 10). Options: `mode`
        ("staged" or "mixed"), `window`, `advance_at`, `success_at`."""
        request = curriculum_request(histories, **options)
        return CurriculumPlan.from_proto(self._stub.Curriculum(request, timeout=timeout))

    def filter(self, forest: Forest, *, timeout: float | None = None, **options) -> FilterResult:
        """Trace verdicts, query verdicts and the confidence-weighted vote (sections 5-6). Options: `metric`
        ("lowest", "bottom10", "tail", "mean"), `keep_percent` (90), `window`, `tail` (2048), `answers` (one per
        leaf, or {leaf: answer}), `zero_variance`, `reflection` (a `Reflection`, one query per group in group order,
        whose `min_spread` or `drop_percent` drops queries)."""
        request = filter_request(forest, **options)
        return FilterResult.from_proto(forest, request, self._stub.Filter(request, timeout=timeout))

    def suggest_forks(self, forest: Forest, *, timeout: float | None = None, **options) -> ForkSuggestions:
        """The top `top_n` fork positions per tree (section 11). Options: `top_n` (4), `ranking` ("neg_logprob" or
        "window_confidence"), `tail_guard` (16), `window` (2048)."""
        response = self._stub.SuggestForks(forks_request(forest, **options), timeout=timeout)
        return ForkSuggestions.from_proto(response)

    def watch(self, *, timeout: float | None = None, **options) -> WatchSession:
        """Open an online early-stopping session for one prompt (section 5); `timeout` bounds the whole stream.
        Options: `warmup` (16), `keep_percent` (90) or a fixed `threshold`, `window` (2048), `consensus` (0.95),
        `budget` (512), `fork_history` (window)."""
        return WatchSession(self._stub, open_request(**options), timeout)

    def token_stats(self, logits=None, ids=None, *, timeout: float | None = None, **options) -> TokenStatsResult:
        """Per-token logprob, entropy, confidence and logsumexp of `logits [T, V]` (numpy or torch; float32, float16
        or bfloat16) for the sampled `ids [T]`; or confidence and entropy_topk of `topk_logprobs=[T, k]`.
        Options: `k` (20), `temperature` (1), `chunk_rows` (stream the logits in chunks of rows; automatic above
        64 MiB), `shared_memory` (a `treecredit.SharedLogits` holding the logits, instead of `logits`)."""
        method, request = token_stats_call(logits, ids, **options)
        return TokenStatsResult.from_proto(getattr(self._stub, method)(request, timeout=timeout))

    def register_shared_memory(self, name: str, key: str, byte_size: int, *, offset: int = 0,
                               timeout: float | None = None) -> None:
        """Register bytes [offset, offset + byte_size) of the POSIX shared-memory object `key` under `name`."""
        self._stub.RegisterSharedMemory(register_request(name, key, byte_size, offset), timeout=timeout)

    def unregister_shared_memory(self, name: str, *, timeout: float | None = None) -> None:
        self._stub.UnregisterSharedMemory(tpb.UnregisterSharedMemoryRequest(name=name), timeout=timeout)

    def shared_memory_status(self, name: str = "", *, timeout: float | None = None) -> list[SharedMemoryRegion]:
        """The registered regions (only `name` if given)."""
        request = tpb.SharedMemoryStatusRequest(name=name)
        return regions_of(self._stub.SharedMemoryStatus(request, timeout=timeout))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CreditClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncCreditClient(_Deadline):
    """The asyncio twin of `CreditClient`: the same methods, awaited, and the same errors."""

    def __init__(self, target: str, *, timeout: float | None = None,
                 credentials: grpc.ChannelCredentials | None = None, token: str | None = None,
                 options: Sequence[tuple[str, object]] = ()):
        self._channel = channel.aio_channel(target, credentials, token, _channel_options(options))
        self._stub = calls.Stub(pb_grpc.CreditServiceStub(self._channel), timeout)

    async def score(self, forest: Forest, estimator: str = "tree_grpo", *, timeout: float | None = None,
                    **options) -> ScoreResult:
        request = score_request(forest, estimator, **options)
        response = await self._stub.Score(request, timeout=timeout)
        return ScoreResult.from_proto(forest, response, options.get("tool_calls"), estimator)

    async def pack(self, forest: Forest, estimator: str = "tree_grpo", *, loss_agg_mode: str = "token-mean",
                   max_response_length: int | None = None, microbatch_tokens: int | None = None, align: int = 1,
                   timeout: float | None = None, **score_options) -> PackedForest | list[PackedForest]:
        request = pack_request(forest, estimator, loss_agg_mode=loss_agg_mode, max_response_length=max_response_length,
                               microbatch_tokens=microbatch_tokens, align=align, **score_options)
        response = await self._stub.Pack(request, timeout=timeout)
        return packed(forest, response, microbatch_tokens, align, score_options.get("tool_calls"))

    async def reflect(self, reflection: Reflection, *, timeout: float | None = None) -> ReflectionResult:
        response = await self._stub.Reflect(reflection.to_proto(), timeout=timeout)
        return ReflectionResult.from_proto(response)

    async def curriculum(self, histories: Sequence[CurriculumHistory], *, timeout: float | None = None,
                         **options) -> CurriculumPlan:
        request = curriculum_request(histories, **options)
        return CurriculumPlan.from_proto(await self._stub.Curriculum(request, timeout=timeout))

    async def filter(self, forest: Forest, *, timeout: float | None = None, **options) -> FilterResult:
        request = filter_request(forest, **options)
        return FilterResult.from_proto(forest, request, await self._stub.Filter(request, timeout=timeout))

    async def suggest_forks(self, forest: Forest, *, timeout: float | None = None, **options) -> ForkSuggestions:
        response = await self._stub.SuggestForks(forks_request(forest, **options), timeout=timeout)
        return ForkSuggestions.from_proto(response)

    def watch(self, *, timeout: float | None = None, **options) -> AsyncWatchSession:
        """`async with client.watch(...) as session:`; see `CreditClient.watch`."""
        return AsyncWatchSession(self._stub, open_request(**options), timeout)

    async def token_stats(self, logits=None, ids=None, *, timeout: float | None = None,
                          **options) -> TokenStatsResult:
        method, request = token_stats_call(logits, ids, **options)
        return TokenStatsResult.from_proto(await getattr(self._stub, method)(request, timeout=timeout))

    async def register_shared_memory(self, name: str, key: str, byte_size: int, *, offset: int = 0,
                                     timeout: float | None = None) -> None:
        request = register_request(name, key, byte_size, offset)
        await self._stub.RegisterSharedMemory(request, timeout=timeout)

    async def unregister_shared_memory(self, name: str, *, timeout: float | None = None) -> None:
        request = tpb.UnregisterSharedMemoryRequest(name=name)
        await self._stub.UnregisterSharedMemory(request, timeout=timeout)

    async def shared_memory_status(self, name: str = "", *,
                                   timeout: float | None = None) -> list[SharedMemoryRegion]:
        request = tpb.SharedMemoryStatusRequest(name=name)
        return regions_of(await self._stub.SharedMemoryStatus(request, timeout=timeout))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncCreditClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
