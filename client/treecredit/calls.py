"""Every call the clients make goes through `Stub`: deadlines checked, failures raised as `treecredit.errors`.

One wrapper for all RPCs of both clients, whatever their shape: a unary answer (Score, TokenStatsStream, ...)
raises on the call; a streamed answer (Watch) raises where the stream is read or written.
"""

from __future__ import annotations

import math
import numbers

import grpc

from treecredit.errors import from_rpc_error

_STREAMED_ANSWER = (grpc.UnaryStreamMultiCallable, grpc.StreamStreamMultiCallable,
                    grpc.aio.UnaryStreamMultiCallable, grpc.aio.StreamStreamMultiCallable)
_ASYNCIO = (grpc.aio.UnaryUnaryMultiCallable, grpc.aio.UnaryStreamMultiCallable,
            grpc.aio.StreamUnaryMultiCallable, grpc.aio.StreamStreamMultiCallable)


def checked_timeout(timeout: float | None) -> float | None:
    """`timeout` if it is None (no deadline) or a finite number of seconds > 0; else ValueError."""
    if timeout is None:
        return None
    seconds = float(timeout) if isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) else math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"timeout: {timeout!r} is not a number of seconds > 0 (None: no deadline)")
    return seconds


class Stub:
    """`stub`'s methods, each raising `treecredit.errors` instead of gRPC's errors. A call with a unary answer
    and no `timeout` gets `self.timeout`; a streamed answer (a Watch session) has no deadline unless given one."""

    def __init__(self, stub, timeout: float | None):
        self.timeout = checked_timeout(timeout)
        for name, method in vars(stub).items():
            if callable(method):
                setattr(self, name, self._wrap(method))

    def _deadline(self, method, timeout: float | None) -> float | None:
        if timeout is None and not isinstance(method, _STREAMED_ANSWER):
            return self.timeout
        return checked_timeout(timeout)

    def _wrap(self, method):
        streamed = isinstance(method, _STREAMED_ANSWER)
        if isinstance(method, _ASYNCIO):
            if streamed:
                def call(*args, timeout=None, **kwargs):
                    return _AsyncStream(method(*args, timeout=self._deadline(method, timeout), **kwargs))
                return call

            async def answer(*args, timeout=None, **kwargs):
                try:
                    return await method(*args, timeout=self._deadline(method, timeout), **kwargs)
                except grpc.RpcError as error:
                    raise from_rpc_error(error) from None
            return answer

        def blocking(*args, timeout=None, **kwargs):
            try:
                result = method(*args, timeout=self._deadline(method, timeout), **kwargs)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None
            return _Stream(result) if streamed else result
        return blocking


class _Stream:
    """A blocking call's streamed answer: iterate it for the responses; `cancel()` and the rest as gRPC's call."""

    def __init__(self, call):
        self._call = call

    def __iter__(self) -> _Stream:
        return self

    def __next__(self):
        try:
            return next(self._call)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def __getattr__(self, name: str):
        return getattr(self._call, name)


class _AsyncStream:
    """An asyncio call with a streamed answer: `write`, `done_writing`, `read` and `async for` raise treecredit
    errors; `cancel()` and the rest as gRPC's call."""

    def __init__(self, call):
        self._call = call

    async def write(self, request) -> None:
        await self._checked(self._call.write(request))

    async def done_writing(self) -> None:
        await self._checked(self._call.done_writing())

    async def read(self):
        return await self._checked(self._call.read())

    async def __aiter__(self):
        try:
            async for response in self._call:
                yield response
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    @staticmethod
    async def _checked(awaitable):
        try:
            return await awaitable
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def __getattr__(self, name: str):
        return getattr(self._call, name)
