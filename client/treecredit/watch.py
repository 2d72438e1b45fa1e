"""Watch sessions: online early stopping for a generation loop, without touching streams (ALGORITHMS.md 5).

    with client.watch(warmup=16, keep_percent=90) as session:
        session.start(0)
        session.tokens([0], topk_logprobs=step_topk)      # [num_tokens, k] rows, any number of trajectories
        if session.is_stopped(0): ...                      # decisions arrive in the background
        session.finish(0, answer="42")
    summary = session.summary                              # one verdict per started trajectory

`AsyncWatchSession` is the same with `await` on `start`, `tokens`, `finish` and `close`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from treecredit import _wire
from treecredit.arrays import as_numpy
from treecredit.tokens import encode_floats, wire_floats
from treecredit.v1 import confidence_pb2 as pb

VERDICTS = np.array(["", "kept", "stopped", "cut_off"])
STOP_REASONS = ("", "consensus", "budget")


def open_request(*, warmup: int = 16, keep_percent: float = 90.0, threshold: float | None = None,
                 window: int = 2048, consensus: float = 0.95, budget: int = 512,
                 fork_history: int | None = None) -> pb.WatchRequest:
    return pb.WatchRequest(open=pb.WatchOpen(warmup=warmup, keep_percent=keep_percent, threshold=threshold,
                                             window=window, consensus=consensus, budget=budget,
                                             fork_history=fork_history))


def start_request(trajectory: int, parent: int | None = None, offset: int = 0) -> pb.WatchRequest:
    return pb.WatchRequest(starts=[pb.TrajectoryStart(trajectory=trajectory, parent=parent, fork_offset=offset)])


def tokens_request(trajectories, *, topk_logprobs=None, confidence=None, num_tokens=None) -> pb.WatchRequest:
    """New tokens of one trajectory (an int) or several: rows `[M, k]` of top-k log-probs or confidences `[M]`,
    `num_tokens[j]` of them for `trajectories[j]` in order (default: all M for a single trajectory)."""
    if (topk_logprobs is None) == (confidence is None):
        raise ValueError("give exactly one of topk_logprobs and confidence")
    values, wire_dtype = wire_floats(topk_logprobs) if confidence is None else (as_numpy(confidence, np.float64), None)
    trajectories = np.atleast_1d(as_numpy(trajectories, np.int64))
    if num_tokens is None:
        if len(trajectories) != 1:
            raise ValueError("num_tokens is required with several trajectories")
        num_tokens = [len(values)]
    chunk = pb.TokenChunk(trajectory=_wire.encode(trajectories),
                          num_tokens=_wire.encode(as_numpy(num_tokens), np.int64))
    if confidence is None:
        encode_floats(values, wire_dtype, chunk.topk_logprobs)
    else:
        _wire.encode(values, into=chunk.confidence)
    return pb.WatchRequest(chunk=chunk)


def finish_request(trajectory: int, answer: str | None = None) -> pb.WatchRequest:
    return pb.WatchRequest(finishes=[pb.TrajectoryFinish(trajectory=trajectory, answer=answer)])


class Stop(NamedTuple):
    """STOP trajectory at its 0-based `token`: `window_mean` fell below `threshold`."""

    trajectory: int
    token: int
    window_mean: float
    threshold: float
    received_at: float  # time.perf_counter() when it arrived


class StopSampling(NamedTuple):
    reason: str  # "consensus" or "budget"
    answer: str
    consensus: float
    received_at: float


@dataclass
class WatchSummary:
    """One final verdict per started trajectory `[S]`, in start order, and the confidence-weighted vote."""

    trajectory: np.ndarray
    verdict: np.ndarray     # str: "kept", "stopped" or "cut_off"
    num_tokens: np.ndarray
    lowest: np.ndarray
    stop_token: np.ndarray  # -1 where not stopped
    threshold: float
    answer: str
    consensus: float
    votes: dict[str, float]
    idle_closed: bool  # the server ended the session after watch_idle_seconds without a request

    @classmethod
    def from_proto(cls, message: pb.WatchSummary) -> WatchSummary:
        def array(field: str) -> np.ndarray:
            return _wire.decode(getattr(message, field), field, dtypes=(*_wire.INTEGER, *_wire.FLOAT), ndim=1)

        return cls(array("trajectory"), VERDICTS[array("verdict")], array("num_tokens"), array("lowest"),
                   array("stop_token"), message.threshold, message.answer, message.consensus,
                   dict(zip(message.vote_labels, array("vote_weight").tolist())), message.idle_closed)

    @property
    def cut_off(self) -> np.ndarray:
        """Trajectories the stream ended before they finished."""
        return self.trajectory[self.verdict == "cut_off"]


class _Decisions:
    """What the server has decided so far; fed by whichever thread or task reads the stream."""

    def __init__(self) -> None:
        self.stops: dict[int, Stop] = {}
        self.threshold: float | None = None
        self.stop_sampling: StopSampling | None = None
        self.summary: WatchSummary | None = None
        self.error: BaseException | None = None

    def apply(self, response: pb.WatchResponse) -> None:
        now = time.perf_counter()
        for stop in response.stops:
            self.stops[stop.trajectory] = Stop(stop.trajectory, stop.token, stop.window_mean, stop.threshold, now)
        if response.HasField("threshold"):
            self.threshold = response.threshold
        if response.HasField("stop_sampling"):
            message = response.stop_sampling
            self.stop_sampling = StopSampling(STOP_REASONS[message.reason], message.answer, message.consensus, now)
        if response.HasField("summary"):
            self.summary = WatchSummary.from_proto(response.summary)


class _SessionView:
    """The read side shared by both sessions."""

    _decisions: _Decisions

    def is_stopped(self, trajectory: int) -> bool:
        """Whether the server has said STOP for `trajectory` (so far)."""
        return trajectory in self._decisions.stops

    @property
    def stops(self) -> dict[int, Stop]:
        return dict(self._decisions.stops)

    @property
    def threshold(self) -> float | None:
        return self._decisions.threshold

    @property
    def stop_sampling(self) -> StopSampling | None:
        """Set once the server says to start no more trajectories (consensus reached or budget spent)."""
        return self._decisions.stop_sampling

    @property
    def summary(self) -> WatchSummary | None:
        """The final verdicts, once the session is closed."""
        return self._decisions.summary

    def _check(self) -> None:
        if self._decisions.error is not None:
            raise self._decisions.error


_END = object()


class WatchSession(_SessionView):
    """A blocking session; a background thread reads decisions. Use as a context manager or call `close()`."""

    def __init__(self, stub, open_message: pb.WatchRequest, timeout: float | None):
        self._decisions = _Decisions()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._outbox.put(open_message)
        self._call = stub.Watch(iter(self._outbox.get, _END), timeout=timeout)
        self._reader = threading.Thread(target=self._read, daemon=True, name="treecredit-watch")
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self._decisions.apply(response)
        except Exception as error:  # grpc.RpcError, surfaced on the next call
            self._decisions.error = error

    def _send(self, request: pb.WatchRequest) -> None:
        self._check()
        self._outbox.put(request)

    def start(self, trajectory: int, *, parent: int | None = None, offset: int = 0) -> None:
        self._send(start_request(trajectory, parent, offset))

    def tokens(self, trajectories, *, topk_logprobs=None, confidence=None, num_tokens=None) -> None:
        self._send(tokens_request(trajectories, topk_logprobs=topk_logprobs, confidence=confidence,
                                  num_tokens=num_tokens))

    def finish(self, trajectory: int, answer: str | None = None) -> None:
        self._send(finish_request(trajectory, answer))

    def close(self) -> WatchSummary:
        """End the stream and wait for the summary (trajectories still running are cut off)."""
        self._outbox.put(_END)
        self._reader.join()
        self._check()
        return self._decisions.summary

    def cancel(self) -> None:
        """Drop the stream without a summary; the server frees the session."""
        self._call.cancel()
        self._outbox.put(_END)
        self._reader.join()

    def __enter__(self) -> WatchSession:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()


class AsyncWatchSession(_SessionView):
    """The asyncio session: `await session.start(...)`; a task reads decisions. `async with` or `await close()`."""

    def __init__(self, stub, open_message: pb.WatchRequest, timeout: float | None):
        self._decisions = _Decisions()
        self._call = stub.Watch(timeout=timeout)
        self._opened = asyncio.ensure_future(self._call.write(open_message))
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for response in self._call:
                self._decisions.apply(response)
        except asyncio.CancelledError:  # cancelled by `cancel()`
            pass
        except Exception as error:
            self._decisions.error = error

    async def _send(self, request: pb.WatchRequest) -> None:
        await self._opened
        self._check()
        await self._call.write(request)

    async def start(self, trajectory: int, *, parent: int | None = None, offset: int = 0) -> None:
        await self._send(start_request(trajectory, parent, offset))

    async def tokens(self, trajectories, *, topk_logprobs=None, confidence=None, num_tokens=None) -> None:
        await self._send(tokens_request(trajectories, topk_logprobs=topk_logprobs, confidence=confidence,
                                        num_tokens=num_tokens))

    async def finish(self, trajectory: int, answer: str | None = None) -> None:
        await self._send(finish_request(trajectory, answer))

    async def close(self) -> WatchSummary:
        await self._opened
        await self._call.done_writing()
        await self._reader
        self._check()
        return self._decisions.summary

    async def cancel(self) -> None:
        self._call.cancel()
        await self._reader

    async def __aenter__(self) -> AsyncWatchSession:
        return self

    async def __aexit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.cancel()
