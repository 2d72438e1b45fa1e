"""The errors of treecredit calls, one class per gRPC status: what SDK users catch.

The server raises `RequestError`s (`treecredit._request_errors`, free of gRPC) naming the request field at fault;
it ends the call with the class's status, the details `field: problem`, and the field in the trailing metadata
(`FIELD_KEY`). The SDK turns whatever status a call ends with into the class of that status (`from_rpc_error`).
Every class is a `grpc.RpcError` with `code()`, `details()` and `trailing_metadata()`, so `except grpc.RpcError`
handlers keep working, and adds `field` ("" when no field is at fault), `problem` and `request_id` (the server's
`x-request-id` for the call, when it sent one). `InvalidArgument`, `ResourceExhausted` and `FailedPrecondition`
also derive from the gRPC-free class of their status, so catching those catches the SDK's classes too.

    try:
        client.score(forest)
    except treecredit.InvalidArgument as error:   # also a ValueError and a grpc.RpcError
        print(error.code(), error.field, error.problem)
    except treecredit.Unavailable:                 # no server answered
        ...
"""

from __future__ import annotations

import grpc

from treecredit import _request_errors

FIELD_KEY = "treecredit-field-bin"  # trailing metadata: the field a refused request got wrong (UTF-8 bytes)
REQUEST_ID_KEY = "x-request-id"


class ServiceError(grpc.RpcError, _request_errors.FieldError):
    """A call that ended with a status other than OK: `code()`, `details()`, `field`, `problem`, `request_id`."""

    def __init__(self, field: str, problem: str, *, trailing_metadata=()):
        super().__init__(field, problem)
        self._trailing_metadata = tuple(trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.status_name]

    def details(self) -> str:
        return str(self)

    def trailing_metadata(self) -> tuple:
        return self._trailing_metadata

    @property
    def request_id(self) -> str | None:
        return dict(self._trailing_metadata).get(REQUEST_ID_KEY)


class RequestError(ServiceError, _request_errors.RequestError):
    __doc__ = _request_errors.RequestError.__doc__


class InvalidArgument(RequestError, _request_errors.InvalidArgument):
    __doc__ = _request_errors.InvalidArgument.__doc__


class ResourceExhausted(RequestError, _request_errors.ResourceExhausted):
    __doc__ = _request_errors.ResourceExhausted.__doc__


class FailedPrecondition(RequestError, _request_errors.FailedPrecondition):
    __doc__ = _request_errors.FailedPrecondition.__doc__


class Unauthenticated(ServiceError):
    """No valid bearer token (or client certificate) came with the call."""

    status_name = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    status_name = "PERMISSION_DENIED"


class Unavailable(ServiceError):
    """No server answered: not reachable, restarting or shutting down. Safe to retry (`treecredit.RETRY`)."""

    status_name = "UNAVAILABLE"


class DeadlineExceeded(ServiceError, TimeoutError):
    """The call's `timeout` passed before the answer came."""

    status_name = "DEADLINE_EXCEEDED"


class Cancelled(ServiceError):
    status_name = "CANCELLED"


class Unimplemented(ServiceError):
    """The server does not know the method (an older server than this SDK)."""

    status_name = "UNIMPLEMENTED"


class Internal(ServiceError):
    """A bug in the server; `request_id` finds its log line."""

    status_name = "INTERNAL"


_CLASS_OF = {cls.status_name: cls for cls in (InvalidArgument, ResourceExhausted, FailedPrecondition,
                                               Unauthenticated, PermissionDenied, Unavailable, DeadlineExceeded,
                                               Cancelled, Unimplemented, Internal)}


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """The treecredit error of a failed call (a `grpc.RpcError` carrying a status, sync or asyncio)."""
    if isinstance(error, ServiceError):
        return error
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else None) or ""
    metadata = tuple(error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else ()
    field = next((value for key, value in metadata if key == FIELD_KEY), b"").decode("utf-8", "replace")
    problem = details.removeprefix(f"{field}: ") if field else details
    status_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    kind = _CLASS_OF.get(status_name)
    translated = (kind or ServiceError)(field, problem, trailing_metadata=metadata)
    if kind is None:
        translated.status_name = status_name
    return translated
