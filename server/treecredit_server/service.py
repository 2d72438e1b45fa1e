"""The gRPC layer: each RPC reads straight down, off the event loop: one decode that validates every field, one
compute call, one encode.

No math lives here. Request errors (`treecredit._request_errors`, free of gRPC, raised by decoding and by Watch
sessions) become the gRPC status they name, with the field at fault in the trailing metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor

import grpc

from treecredit._request_errors import InvalidArgument, RequestError, ResourceExhausted
from treecredit.errors import FIELD_KEY, REQUEST_ID_KEY
from treecredit.v1 import confidence_pb2 as cpb
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import credit_pb2_grpc as pb_grpc
from treecredit.v1 import curriculum_pb2 as cupb
from treecredit.v1 import reflection_pb2 as rpb
from treecredit.v1 import tokens_pb2 as tpb
from treecredit_server import log, metrics, shared_memory
from treecredit_server.codec import confidence as confidence_codec
from treecredit_server.codec import curriculum as curriculum_codec
from treecredit_server.codec import packing as packing_codec
from treecredit_server.codec import reflection as reflection_codec
from treecredit_server.codec import score as score_codec
from treecredit_server.codec import tokens as tokens_codec
from treecredit_server.compute import curriculum, filtering, forks, packing, reflection, score, tokens, watch
from treecredit_server.parsing import MalformedRequest
from treecredit_server.config import Settings

_log = log.get("treecredit.rpc")
# Watch requests up to this size are applied on the event loop: about 0.3 ms of work for 1 MiB of top-k rows.
INLINE_WATCH_BYTES = 1 << 20


def unary(handler):
    """Wrap a unary RPC: a request id, one log line per call, request errors mapped onto statuses.

    The status is settled first (a response too large to send is refused here, not by gRPC after the log
    line), then the call is logged and metered, then the status leaves: whoever has the answer finds it
    recorded, under the status the client got. A failure to record is logged and changes nothing.
    """

    @functools.wraps(handler)
    async def call(self, request, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        request_id = dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY) or uuid.uuid4().hex[:16]
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        peer = context.peer()  # read now: after a cancellation, reading it crashes grpcio 1.85 (SIGSEGV)
        status, details, response, response_bytes = grpc.StatusCode.OK, "", None, 0
        metrics.call_started(handler.__name__)

        def record(status: grpc.StatusCode) -> None:
            seconds = time.perf_counter() - started
            _recorded(_log.info, "rpc", method=handler.__name__, peer=peer, request_id=request_id,
                      request_bytes=request.ByteSize(), response_bytes=response_bytes,
                      duration_ms=round(1000 * seconds, 3), status=status.name)
            _recorded(metrics.call_finished, handler.__name__, status.name, seconds)

        try:
            if isinstance(request, MalformedRequest):
                raise request.refuse()
            response = await handler(self, request, context)
            response_bytes = _sendable_size(response, self._max_response_bytes)
        except RequestError as error:
            status, details, response, response_bytes = grpc.StatusCode[error.status_name], str(error), None, 0
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), (FIELD_KEY, error.field.encode())))
        except asyncio.CancelledError:
            record(grpc.StatusCode.CANCELLED)
            raise
        except Exception:
            status, details = grpc.StatusCode.INTERNAL, f"internal error; request id {request_id}"
            response, response_bytes = None, 0
            _recorded(_log.exception, "rpc_failed", method=handler.__name__, request_id=request_id)
        record(status)
        if status is not grpc.StatusCode.OK:
            await context.abort(status, details)
        return response

    return call


def _recorded(write, *args, **fields) -> None:
    """Call a logging or metrics `write`; should it fail, log that (if logging works) and carry on."""
    try:
        write(*args, **fields)
    except Exception:
        with contextlib.suppress(Exception):
            _log.exception("record_failed", record=args[0] if args else None)


def _sendable_size(response, max_bytes: int) -> int:
    """The size of `response` (a message, or None for a stream); ResourceExhausted when it is over what the server
    may send."""
    size = response.ByteSize() if response is not None else 0
    if size > max_bytes:
        raise ResourceExhausted("response", f"{size} bytes exceed the {max_bytes} bytes the server may send "
                                            "(--max-message-mb, at most 2 GiB); ask for less per call")
    return size


class _CountedRequests:
    """A client stream's requests, counted as they are read. `unary` logs and meters it like a request message:
    its ByteSize is the bytes received so far, and it holds no forests."""

    def __init__(self, requests):
        self._requests = requests
        self._bytes = 0

    async def __aiter__(self):
        count = 0
        async for request in self._requests:
            if isinstance(request, MalformedRequest):
                raise request.refuse(f"requests[{count}]")
            count += 1
            self._bytes += request.ByteSize()
            yield request

    def ByteSize(self) -> int:
        return self._bytes

    def ListFields(self) -> tuple:
        return ()


def client_stream(handler):
    """Wrap a client-streaming RPC as `unary` wraps a unary one; the handler reads a `_CountedRequests`."""
    wrapped = unary(handler)

    @functools.wraps(handler)
    async def call(self, requests, context: grpc.aio.ServicerContext):
        return await wrapped(self, _CountedRequests(requests), context)

    return call


def stream(handler):
    """Wrap a bidirectional-stream RPC as `client_stream` does (one log line per stream); the handler is an
    async generator whose responses are written as it yields them."""

    @functools.wraps(handler)
    async def written(self, requests, context: grpc.aio.ServicerContext) -> None:
        async with contextlib.aclosing(handler(self, requests, context)) as responses:
            async for response in responses:
                try:
                    await context.write(response)
                except Exception:  # grpc's ExecuteBatchError: the client cancelled, timed out or went away
                    raise asyncio.CancelledError from None

    return client_stream(written)


class CreditService(pb_grpc.CreditServiceServicer):
    def __init__(self, settings: Settings):
        self._limits = settings.limits
        self._max_response_bytes = min(settings.max_message_bytes, (1 << 31) - 1)  # protobuf's own ceiling: 2 GiB
        # Batch computations and Watch events run on separate threads, so that a stop decision never waits
        # behind a large Score or Filter.
        self._compute = ThreadPoolExecutor(settings.compute_threads, thread_name_prefix="compute")
        self._sessions = ThreadPoolExecutor(settings.session_threads, thread_name_prefix="sessions")
        self._watch_sessions = watch.WatchSessions(settings.watch_max_sessions, settings.watch_max_trajectories,
                                                   settings.watch_session_mb << 20)
        self._watch_idle_seconds = settings.watch_idle_seconds
        self._shared_memory = shared_memory.SharedMemoryRegistry(settings.max_shared_memory_regions,
                                                                 settings.max_shared_memory_mb << 20)
        self._compute_stats = functools.partial(tokens.compute, device=tokens.check_device(settings.device),
                                                shared_memory=self._shared_memory)

    def shutdown(self) -> None:
        """Wait for the computations in flight, then free the threads."""
        self._compute.shutdown(wait=True)
        self._sessions.shutdown(wait=True)

    async def _off_loop(self, function, *args, executor: Executor | None = None):
        """`function(*args)` on a thread, in the call's context (its metrics notes)."""
        call = functools.partial(contextvars.copy_context().run, function, *args)
        return await asyncio.get_running_loop().run_in_executor(executor or self._compute, call)

    @unary
    async def Score(self, request: pb.ScoreRequest, context) -> pb.ScoreResponse:
        return await self._off_loop(self._score, request)

    def _score(self, request: pb.ScoreRequest) -> pb.ScoreResponse:
        inputs = score_codec.decode_score(request, self._limits)
        metrics.forest_decoded(inputs.forest)
        return score_codec.encode_score(score.score(inputs))

    @unary
    async def Pack(self, request: pb.PackRequest, context) -> pb.PackResponse:
        return await self._off_loop(self._pack, request)

    def _pack(self, request: pb.PackRequest):
        inputs = packing_codec.decode_pack(request, self._limits)
        metrics.forest_decoded(inputs.score.forest)
        return packing_codec.encode_pack(packing.pack(inputs))

    @unary
    async def Reflect(self, request: rpb.ReflectRequest, context) -> rpb.ReflectResponse:
        return await self._off_loop(self._reflect, request)

    def _reflect(self, request: rpb.ReflectRequest) -> rpb.ReflectResponse:
        queries = reflection_codec.decode_reflect(request, self._limits)
        return reflection_codec.encode_reflection(reflection.reflect(**queries))

    @unary
    async def Curriculum(self, request: cupb.CurriculumRequest, context) -> cupb.CurriculumResponse:
        return await self._off_loop(self._curriculum, request)

    def _curriculum(self, request: cupb.CurriculumRequest) -> cupb.CurriculumResponse:
        forest, trunk_end, options = curriculum_codec.decode_curriculum(request, self._limits)
        metrics.forest_decoded(forest)
        return curriculum_codec.encode_plan(curriculum.plan(forest, trunk_end, **options))

    @unary
    async def Filter(self, request: cpb.FilterRequest, context) -> cpb.FilterResponse:
        return await self._off_loop(self._filter, request)

    def _filter(self, request: cpb.FilterRequest) -> cpb.FilterResponse:
        forest, options = confidence_codec.decode_filter(request, self._limits)
        metrics.forest_decoded(forest)
        return confidence_codec.encode_filter(filtering.filter_forest(forest, **options))

    @unary
    async def SuggestForks(self, request: cpb.SuggestForksRequest, context) -> cpb.SuggestForksResponse:
        return await self._off_loop(self._suggest_forks, request)

    def _suggest_forks(self, request: cpb.SuggestForksRequest) -> cpb.SuggestForksResponse:
        forest, options = confidence_codec.decode_forks(request, self._limits)
        metrics.forest_decoded(forest)
        return confidence_codec.encode_forks(forks.suggest_forks(forest, **options))

    @stream
    async def Watch(self, requests, context):
        """One session per stream: the decisions each request causes, the summary once the client half-closes
        or has sent nothing for `watch_idle_seconds`. The session is freed however the stream ends."""
        pending = requests.__aiter__()

        async def next_request() -> cpb.WatchRequest | None:
            return await asyncio.wait_for(anext(pending, None), self._watch_idle_seconds)

        try:
            request = await next_request()
        except TimeoutError:
            return
        if request is None:
            return
        if not request.HasField("open"):
            raise InvalidArgument("open", "the first request of a stream must open the session")
        session = self._watch_sessions.open(confidence_codec.decode_watch_open(request.open))
        metrics.SESSIONS_OPEN.set(len(self._watch_sessions))
        ended = "cancelled"  # unless the stream gets to its summary or a refusal
        try:
            while request is not None:
                if request.ByteSize() <= INLINE_WATCH_BYTES:  # a thread hop would cost more than the step
                    response = self._watch_step(session, request)
                else:
                    response = await self._off_loop(self._watch_step, session, request, executor=self._sessions)
                if response.ByteSize():
                    yield response
                try:
                    request = await next_request()
                except TimeoutError:
                    break
                if request is not None and request.HasField("open"):
                    raise InvalidArgument("open", "only the first request of a stream opens the session")
            yield confidence_codec.encode_summary(session.summary(), idle=request is not None)
            ended = "idle" if request is not None else "closed"
        except RequestError:
            ended = "refused"
            raise
        finally:
            self._watch_sessions.close(session)
            metrics.SESSIONS_OPEN.set(len(self._watch_sessions))
            # One line per session however it ended: every started trajectory has exactly one final verdict.
            _log.info("watch_session", request_id=dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY),
                      ended=ended, **session.verdict_counts())

    def _watch_step(self, session: watch.WatchSession, request: cpb.WatchRequest) -> cpb.WatchResponse:
        step = confidence_codec.decode_watch_step(request, self._limits)
        return confidence_codec.encode_decisions(session.apply(step))

    @unary
    async def TokenStats(self, request: tpb.TokenStatsRequest, context) -> tpb.TokenStatsResponse:
        return await self._off_loop(self._token_stats, request)

    def _token_stats(self, request: tpb.TokenStatsRequest) -> tpb.TokenStatsResponse:
        job = tokens_codec.decode_token_stats(request, self._limits)
        return tokens_codec.encode_stats(self._compute_stats(job))

    @client_stream
    async def TokenStatsStream(self, chunks, context) -> tpb.TokenStatsResponse:
        """Each chunk's rows are computed as it arrives, so the stream's logits are never held all at once."""
        decoder = tokens_codec.ChunkDecoder(self._limits)
        parts = [await self._off_loop(self._chunk_stats, decoder, chunk) async for chunk in chunks]
        decoder.finish()
        return tokens_codec.encode_stats(tokens.concatenate(parts))

    def _chunk_stats(self, decoder: tokens_codec.ChunkDecoder, chunk: tpb.TokenStatsChunk) -> tokens.Stats:
        return self._compute_stats(decoder.decode(chunk))

    @unary
    async def RegisterSharedMemory(self, request: tpb.RegisterSharedMemoryRequest, context):
        self._shared_memory.register(request.name, request.key, request.offset, request.byte_size)
        return tpb.RegisterSharedMemoryResponse()

    @unary
    async def UnregisterSharedMemory(self, request: tpb.UnregisterSharedMemoryRequest, context):
        self._shared_memory.unregister(request.name)
        return tpb.UnregisterSharedMemoryResponse()

    @unary
    async def SharedMemoryStatus(self, request: tpb.SharedMemoryStatusRequest, context):
        return tokens_codec.encode_regions(self._shared_memory.status(request.name))
