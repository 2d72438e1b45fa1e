"""The errors of treecredit calls, one class per gRPC status, shared by the SDK and the server.

The server raises `RequestError`s (`InvalidArgument`, `ResourceExhausted`, `FailedPrecondition`) naming the
request field at fault; it ends the call with the class's status, the details `field: problem`, and the field
in the trailing metadata (`FIELD_KEY`). The SDK turns whatever status a call ends with into the class of that
status (`from_rpc_error`). Every class is a `grpc.RpcError` with `code()`, `details()` and `trailing_metadata()`,
so `except grpc.RpcError` handlers keep working, and adds `field` ("" when no field is at fault), `problem`
and `request_id` (the server's `x-request-id` for the call, when it sent one).

    try:
        client.score(forest)
    except treecredit.InvalidArgument as error:   # also a ValueError and a grpc.RpcError
        print(error.code(), error.field, error.problem)
    except treecredit.Unavailable:                 # no server answered
        ...
"""

from __future__ import annotations

import grpc

FIELD_KEY = "treecredit-field-bin"  # trailing metadata: the field a refused request got wrong (UTF-8 bytes)
REQUEST_ID_KEY = "x-request-id"


class ServiceError(grpc.RpcError):
    """A call that ended with a status other than OK: `code()`, `details()`, `field`, `problem`, `request_id`."""

    status = grpc.StatusCode.UNKNOWN

    def __init__(self, field: str, problem: str, *, trailing_metadata=()):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self._trailing_metadata = tuple(trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return str(self)

    def trailing_metadata(self) -> tuple:
        return self._trailing_metadata

    @property
    def request_id(self) -> str | None:
        return dict(self._trailing_metadata).get(REQUEST_ID_KEY)


class RequestError(ServiceError):
    """A request that cannot be served as sent; `field` names the offending part (e.g. `forest.parent[7]`)."""


class InvalidArgument(RequestError, ValueError):
    """Malformed input: a wrong dtype, shape or value."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(RequestError):
    """Well-formed input over one of the server's configured limits (or gRPC's message size limit)."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RequestError):
    """Input that is valid on its own but not in the state it refers to (a missing session or region)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ServiceError):
    """No valid bearer token (or client certificate) came with the call."""

    status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    status = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ServiceError):
    """No server answered: not reachable, restarting or shutting down. Safe to retry (`treecredit.RETRY`)."""

    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError, TimeoutError):
    """The call's `timeout` passed before the answer came."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ServiceError):
    status = grpc.StatusCode.CANCELLED


class Unimplemented(ServiceError):
    """The server does not know the method (an older server than this SDK)."""

    status = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServiceError):
    """A bug in the server; `request_id` finds its log line."""

    status = grpc.StatusCode.INTERNAL


_CLASS_OF = {cls.status: cls for cls in (InvalidArgument, ResourceExhausted, FailedPrecondition, Unauthenticated,
                                          PermissionDenied, Unavailable, DeadlineExceeded, Cancelled, Unimplemented,
                                          Internal)}


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """The treecredit error of a failed call (a `grpc.RpcError` carrying a status, sync or asyncio)."""
    if isinstance(error, ServiceError):
        return error
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or ""
    metadata = tuple(error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else ()
    field = next((value for key, value in metadata if key == FIELD_KEY), b"").decode("utf-8", "replace")
    problem = details.removeprefix(f"{field}: ") if field else details
    kind = _CLASS_OF.get(code)
    translated = (kind or ServiceError)(field, problem, trailing_metadata=metadata)
    if kind is None:
        translated.status = code
    return translated
