"""Request bytes that parse as no message of the method's type get INVALID_ARGUMENT, not gRPC's UNKNOWN.

gRPC turns an exception in a request deserializer into UNKNOWN (unary calls) or an error inside the handler's
request iterator (INTERNAL, streams). `TolerantParsing` swaps each CreditService deserializer for one that
returns a `MalformedRequest` instead of raising; `service.unary` and the stream wrappers refuse it with
INVALID_ARGUMENT, so the call is logged and metered like any other refusal.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from treecredit._request_errors import InvalidArgument
from treecredit.v1 import credit_pb2

SERVICE_NAME = credit_pb2.DESCRIPTOR.services_by_name["CreditService"].full_name


class MalformedRequest:
    """What arrives in place of a request whose bytes do not parse; sized and counted as an empty message."""

    def __init__(self, problem: str):
        self.problem = problem

    def refuse(self, field: str = "request") -> InvalidArgument:
        return InvalidArgument(field, f"the bytes are not a valid protobuf message: {self.problem}")

    def ByteSize(self) -> int:
        return 0

    def ListFields(self) -> tuple:
        return ()


def _tolerant(deserialize):
    def parse(data: bytes):
        try:
            return deserialize(data)
        except DecodeError as error:
            return MalformedRequest(str(error))

    return parse


class TolerantParsing(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = await continuation(handler_call_details)
        if (handler is None or handler.request_deserializer is None
                or handler_call_details.method.split("/")[1] != SERVICE_NAME):
            return handler
        return handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
