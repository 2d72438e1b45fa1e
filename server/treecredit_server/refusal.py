"""Turning a call away before it reaches the service: a handler of the call's RPC shape that only aborts."""

from __future__ import annotations

import grpc

from treecredit_server import metrics

# A handler factory per RPC shape (request_streaming, response_streaming).
_HANDLER_OF_SHAPE = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def refusing_handler(handler: grpc.RpcMethodHandler, method: str, code: grpc.StatusCode, details: str):
    """A handler of `handler`'s shape that ends the call with `code` and `details`, counted in the metrics."""

    async def refuse(request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, details)

    metrics.REQUESTS.labels(method, code.name).inc()
    return _HANDLER_OF_SHAPE[handler.request_streaming, handler.response_streaming](refuse)
