"""Errors that name what was wrong with a request. The server maps them onto gRPC status codes."""


class RequestError(Exception):
    """A request that cannot be served as sent; `field` names the offending part (e.g. `forest.parent[7]`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidArgument(RequestError, ValueError):
    """Malformed input: a wrong dtype, shape or value."""


class ResourceExhausted(RequestError):
    """Well-formed input over one of the server's configured limits."""


class FailedPrecondition(RequestError):
    """Input that is valid on its own but not in the state it refers to (a missing session or region)."""
