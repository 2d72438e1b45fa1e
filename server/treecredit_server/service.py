"""The gRPC layer: each RPC decodes, hands arrays to the compute layer off the event loop, encodes.

No math lives here. Errors the compute layer raises (`treecredit.errors`) become gRPC statuses.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from concurrent.futures import Executor

import grpc

from treecredit.errors import FailedPrecondition, InvalidArgument, RequestError, ResourceExhausted
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import credit_pb2_grpc as pb_grpc
from treecredit.v1 import structures_pb2 as spb
from treecredit_server import codec, credit, curriculum, log, metrics, reflection, structured, structures_codec
from treecredit_server.config import Settings

_STATUS_OF = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
}
_log = log.get("treecredit.rpc")


def unary(handler):
    """Wrap a unary RPC: a request id, one log line per call, request errors mapped onto statuses."""

    @functools.wraps(handler)
    async def call(self, request, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        request_id = dict(context.invocation_metadata() or ()).get("x-request-id") or uuid.uuid4().hex[:16]
        context.set_trailing_metadata((("x-request-id", request_id),))
        status, response = grpc.StatusCode.OK, None
        metrics.call_started(handler.__name__)
        try:
            response = await handler(self, request, context)
            return response
        except RequestError as error:
            status = _STATUS_OF[type(error)]
            await context.abort(status, str(error))
        except asyncio.CancelledError:
            status = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            status = grpc.StatusCode.INTERNAL
            _log.exception("rpc_failed", method=handler.__name__, request_id=request_id)
            await context.abort(status, f"internal error; request id {request_id}")
        finally:
            _log.info(
                "rpc",
                method=handler.__name__,
                peer=context.peer(),
                request_id=request_id,
                request_bytes=request.ByteSize(),
                response_bytes=response.ByteSize() if response is not None else 0,
                duration_ms=round(1000 * (time.perf_counter() - started), 3),
                status=status.name,
            )
            metrics.call_finished(handler.__name__, status.name, time.perf_counter() - started, request)

    return call


class CreditService(pb_grpc.CreditServiceServicer):
    def __init__(self, settings: Settings, executor: Executor):
        self._limits = settings.limits
        self._executor = executor

    async def _off_loop(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    @unary
    async def Score(self, request: pb.ScoreRequest, context) -> pb.ScoreResponse:
        return await self._off_loop(self._score, request)

    def _score(self, request: pb.ScoreRequest) -> pb.ScoreResponse:
        forest = codec.decode_forest(request.forest, self._limits)
        estimator = codec.decode_estimator(request.estimator)
        options = codec.decode_score_options(request.options)
        inputs = structures_codec.decode_score_inputs(request, forest, estimator, self._limits)
        prepared = structured.prepare(forest, estimator, inputs, normalize_std=options["normalize_std"])
        result = credit.score(prepared.forest, estimator, **options, max_sibling_pairs=self._limits.max_sibling_pairs,
                              leaf_advantage=prepared.leaf_advantage)
        return structures_codec.encode_score_extras(codec.encode_credit(result, estimator), prepared)

    @unary
    async def Reflect(self, request: spb.ReflectRequest, context) -> spb.ReflectResponse:
        return await self._off_loop(self._reflect, request)

    def _reflect(self, request: spb.ReflectRequest) -> spb.ReflectResponse:
        arguments = structures_codec.decode_reflect(request, self._limits)
        return structures_codec.encode_reflection(reflection.reflect(**arguments))

    @unary
    async def Curriculum(self, request: spb.CurriculumRequest, context) -> spb.CurriculumResponse:
        return await self._off_loop(self._curriculum, request)

    def _curriculum(self, request: spb.CurriculumRequest) -> spb.CurriculumResponse:
        forest, trunk_end, options = structures_codec.decode_curriculum(request, self._limits)
        return structures_codec.encode_plan(curriculum.plan(forest, trunk_end, **options))
