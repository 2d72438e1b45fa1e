"""The errors that name a request field at fault, without gRPC: what the wire codec, the server's decoding and its
Watch sessions raise, and what the server maps onto a gRPC status by `status_name`.

The SDK's classes users catch (`treecredit.errors`: `treecredit.InvalidArgument`, ...) derive from these and add
`grpc.RpcError`: `except treecredit.InvalidArgument` catches a server's refusal and the SDK's own checks, and
an `except` of a class here also catches the SDK's class of the same status. Nothing here imports grpc: the
server's compute layer uses it.
"""

from __future__ import annotations


class FieldError(Exception):
    """An error naming the `field` at fault ("" when none) and the `problem`; `str()` is `field: problem`.
    `status_name` is the name of its gRPC status (`grpc.StatusCode[status_name]`)."""

    status_name = "UNKNOWN"

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class RequestError(FieldError):
    """A request that cannot be served as sent; `field` names the offending part (e.g. `forest.parent[7]`)."""


class InvalidArgument(RequestError, ValueError):
    """Malformed input: a wrong dtype, shape or value."""

    status_name = "INVALID_ARGUMENT"


class ResourceExhausted(RequestError):
    """Well-formed input over one of the server's configured limits (or gRPC's message size limit)."""

    status_name = "RESOURCE_EXHAUSTED"


class FailedPrecondition(RequestError):
    """Input that is valid on its own but not in the state it refers to (a missing session or region)."""

    status_name = "FAILED_PRECONDITION"
