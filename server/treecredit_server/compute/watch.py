"""Online early stopping (ALGORITHMS.md section 5): one `WatchSession` per prompt, incremental numpy state.

Every trajectory keeps its token count, running prefix sum P_T, its lowest full-window mean so far, and a ring
of its last R = window + fork_history prefix sums and lowest-so-far values (slot j mod R holds P_j and the
lowest mean after j tokens). The window mean ending at token i (1-based) is G_i = (P_i - P_{i-W}) / W, so a
chunk is processed with whole-array operations over all its tokens, whichever trajectories they belong to.
A fork at offset o copies its parent's ring row: P_{o-W+1..o} and the lowest mean at o are in it as long as the
parent has not gone more than fork_history tokens past o (a fork of a fork reaches back no further than the
window state it inherited). Nothing here knows of gRPC or protobuf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from treecredit._request_errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from treecredit_server.compute.filtering import grouped_threshold
from treecredit_server.compute.trace_confidence import topk_confidence

BYTES_PER_RING_ENTRY = 16  # a float64 prefix sum and a float64 lowest-so-far


class Status(IntEnum):
    RUNNING = 0
    FINISHED = 1
    STOPPED = 2


class Verdict(IntEnum):
    KEPT = 1
    STOPPED = 2
    CUT_OFF = 3


class StopReason(IntEnum):
    CONSENSUS = 1
    BUDGET = 2


@dataclass(frozen=True)
class WatchOptions:
    warmup: int = 16
    keep_percent: float = 90.0
    threshold: float | None = None  # fixed: no warm-up
    window: int = 2048
    consensus: float = 0.95
    budget: int = 512
    fork_history: int | None = None  # default: window

    @property
    def ring(self) -> int:
        return self.window + (self.window if self.fork_history is None else self.fork_history)


@dataclass(frozen=True)
class Stop:
    trajectory: int
    token: int           # 0-based index of the last token seen
    window_mean: float
    threshold: float


@dataclass(frozen=True)
class StopSampling:
    reason: StopReason
    answer: str
    consensus: float


@dataclass
class Decisions:
    """What one request caused."""

    stops: list[Stop]
    threshold: float | None = None
    stop_sampling: StopSampling | None = None

    def add(self, other: Decisions) -> Decisions:
        self.stops.extend(other.stops)
        self.threshold = other.threshold if other.threshold is not None else self.threshold
        self.stop_sampling = other.stop_sampling or self.stop_sampling
        return self


@dataclass(frozen=True)
class Summary:
    trajectory: np.ndarray  # int64 [S], in start order
    verdict: np.ndarray     # int32 [S]
    num_tokens: np.ndarray  # int64 [S]
    lowest: np.ndarray      # float64 [S]
    stop_token: np.ndarray  # int64 [S], -1 if not stopped
    threshold: float
    answer: str
    consensus: float
    votes: dict[str, float]


@dataclass(frozen=True)
class Chunk:
    """Tokens of several trajectories: `trajectory [C]`, `num_tokens [C]` (int64), and for the sum(num_tokens) tokens
    either their `confidence [M]` or the top-k log-probs `[M, k]` it comes from (`trace_confidence.topk_confidence`)."""

    trajectory: np.ndarray
    num_tokens: np.ndarray
    confidence: np.ndarray | None = None
    topk_logprobs: np.ndarray | None = None

    def token_confidence(self) -> np.ndarray:
        """float64 `[M]`."""
        if self.confidence is None:
            return topk_confidence(self.topk_logprobs)
        return np.asarray(self.confidence, dtype=np.float64)


@dataclass(frozen=True)
class Start:
    trajectory: int
    parent: int | None
    fork_offset: int
    field: str  # the request's name for it, in errors


@dataclass(frozen=True)
class Finish:
    trajectory: int
    answer: str | None
    field: str


@dataclass(frozen=True)
class Step:
    """One request of a stream: it may open the session, then starts, one chunk, finishes, applied in that order."""

    opens: bool
    starts: list[Start]
    chunk: Chunk | None
    finishes: list[Finish]


class WatchSession:
    """The state of one prompt's stream. Methods raise `treecredit._request_errors` naming the offending field."""

    def __init__(self, options: WatchOptions, *, max_trajectories: int, max_bytes: int):
        self.options = options
        self._max_trajectories = max_trajectories
        self._max_bytes = max_bytes
        self._warmup = 0 if options.threshold is not None else options.warmup
        self.threshold = math.nan if options.threshold is None else options.threshold
        self.threshold_set = options.threshold is not None
        self._stop_sampling_sent = False
        self._votes: dict[str, float] = {}
        self._ids = np.zeros(0, np.int64)      # trajectory ids, sorted
        self._slot_of = np.zeros(0, np.int64)  # their slots
        self.size = 0                          # trajectories started
        # Rows are allocated as trajectories start, never more than the limits allow (a window of 2^20 is 32 MiB
        # a row): opening a session allocates nothing the client could not have started.
        self._max_slots = min(max_trajectories, max_bytes // (options.ring * BYTES_PER_RING_ENTRY))
        capacity = min(8, self._max_slots)
        self._id = np.zeros(capacity, np.int64)
        self._count = np.zeros(capacity, np.int64)
        self._total = np.zeros(capacity)
        self._lowest = np.full(capacity, np.inf)  # lowest full-window mean so far
        self._status = np.zeros(capacity, np.int8)
        self._stop_token = np.full(capacity, -1, np.int64)
        self._oldest = np.zeros(capacity, np.int64)  # the oldest P_j inherited in the ring (forks of forks)
        self._prefix = np.zeros((capacity, options.ring))
        self._lowest_at = np.full((capacity, options.ring), np.inf)

    # -- events ----------------------------------------------------------------------------------
    def apply(self, step: Step) -> Decisions:
        """Everything one request causes."""
        decisions = self.opened() if step.opens else Decisions([])
        for start in step.starts:
            decisions.add(self.start(start.trajectory, start.parent, start.fork_offset, start.field))
        if step.chunk is not None:
            decisions.add(self.chunk(step.chunk))
        for finish in step.finishes:
            decisions.add(self.finish(finish.trajectory, finish.answer, finish.field))
        return decisions

    def opened(self) -> Decisions:
        """What the session says as it opens: a fixed threshold is set at once."""
        return Decisions([], threshold=self.threshold if self.threshold_set else None)

    def start(self, trajectory: int, parent: int | None, fork_offset: int, field: str) -> Decisions:
        """A new trajectory (a fork inherits the first `fork_offset` tokens of `parent`). A fork that inherits a
        full window below a known threshold is stopped at once, at token `fork_offset - 1`."""
        if self.size >= self._max_trajectories:
            raise ResourceExhausted(field, f"a session holds at most {self._max_trajectories} trajectories")
        if (self.size + 1) * self.options.ring * BYTES_PER_RING_ENTRY > self._max_bytes:
            raise ResourceExhausted(field, f"the session's window state would exceed {self._max_bytes >> 20} MiB; "
                                           "use a smaller window or fork_history")
        if self._find(np.array([trajectory]))[0] >= 0:
            raise InvalidArgument(f"{field}.trajectory", f"trajectory {trajectory} already started")
        slot = self.size
        self._grow(slot + 1)
        self._id[slot] = trajectory
        if parent is None:
            if fork_offset != 0:
                raise InvalidArgument(f"{field}.fork_offset", "is only meaningful with a parent")
            self._prefix[slot, 0], self._lowest_at[slot, 0] = 0.0, np.inf
        else:
            source = self._find(np.array([parent]))[0]
            if source < 0:
                raise InvalidArgument(f"{field}.parent", f"trajectory {parent} was never started")
            count, lowest_offset = int(self._count[source]), self._fork_floor(source)
            if not lowest_offset <= fork_offset <= count:
                raise InvalidArgument(f"{field}.fork_offset", f"{fork_offset} is outside [{lowest_offset}, {count}]: "
                                      f"trajectory {parent} has {count} tokens and keeps the window state of its last "
                                      f"fork_history = {self.options.ring - self.options.window} of them, and no more "
                                      "than it inherited")
            self._prefix[slot], self._lowest_at[slot] = self._prefix[source], self._lowest_at[source]
            self._oldest[slot] = max(self._oldest[source], count - self.options.ring + 1)
            cell = fork_offset % self.options.ring
            self._count[slot] = fork_offset
            self._total[slot], self._lowest[slot] = self._prefix[source, cell], self._lowest_at[source, cell]
        position = np.searchsorted(self._ids, trajectory)
        self._ids = np.insert(self._ids, position, trajectory)
        self._slot_of = np.insert(self._slot_of, position, slot)
        self.size += 1
        decisions = Decisions([])
        # A fork inherits its prefix's windows: one already below a known threshold stops it at its fork point,
        # before any new token, as it would have been had it started before the threshold was set.
        if self._eligible(slot) and self._lowest[slot] < self.threshold:
            decisions.stops.append(self._stop(slot, float(self._lowest[slot])))
        if self.size >= self.options.budget:
            decisions.stop_sampling = self._stop_sampling(StopReason.BUDGET)
        return decisions

    def chunk(self, chunk: Chunk, field: str = "chunk") -> Decisions:
        """Append tokens; STOP every non-warm-up trajectory whose window mean falls below the threshold."""
        if len(chunk.trajectory) == 0:
            return Decisions([])
        slots = self._find(chunk.trajectory)
        for bad, problem in ((slots < 0, "was never started"),
                             (self._status[np.maximum(slots, 0)] == Status.FINISHED, "has finished")):
            if bad.any():
                j = int(np.argmax(bad))
                raise InvalidArgument(f"{field}.trajectory[{j}]", f"trajectory {chunk.trajectory[j]} {problem}")
        unique, first = np.unique(slots, return_index=True)
        if len(unique) < len(slots):
            j = int(np.setdiff1d(np.arange(len(slots)), first)[0])
            raise InvalidArgument(f"{field}.trajectory[{j}]", f"trajectory {chunk.trajectory[j]} appears twice")

        # Tokens of stopped trajectories were in flight when the STOP went out: they are dropped.
        active = (self._status[slots] == Status.RUNNING) & (chunk.num_tokens > 0)
        slots, lengths = slots[active], chunk.num_tokens[active]
        confidence = chunk.token_confidence()[np.repeat(active, chunk.num_tokens)]
        if len(confidence) == 0:
            return Decisions([])
        W, R = self.options.window, self.options.ring
        segment = np.repeat(np.arange(len(slots)), lengths)
        seg_start = np.cumsum(lengths) - lengths
        k = np.arange(len(confidence)) - seg_start[segment]  # index within the segment
        slot = slots[segment]
        old = self._count[slot]
        i = old + k + 1                                      # 1-based position in the trajectory
        running_sum = np.cumsum(confidence)
        P = self._total[slot] + running_sum - np.concatenate(([0.0], running_sum))[seg_start][segment]
        j = i - W                                            # P_j ends the window's far side
        inside = j > old
        P_far = np.where(inside, P[np.clip(np.arange(len(P)) - W, 0, None)],
                         self._prefix[slot, np.maximum(j, 0) % R])
        full = i >= W
        G = np.where(full, (P - P_far) / W, np.inf)
        lowest = np.minimum(self._lowest[slot], _segment_cummin(G, seg_start, lengths, segment))

        decisions = Decisions([])
        eligible = self._eligible(slot)
        violation = np.flatnonzero(full & eligible & (G < self.threshold))
        stopped_segments, first_violation = np.unique(segment[violation], return_index=True)
        stop_index = violation[first_violation]
        end = seg_start + lengths  # exclusive end of each segment's accepted tokens
        end[stopped_segments] = stop_index + 1
        accepted = np.arange(len(confidence)) < end[segment]
        write = accepted & (np.arange(len(confidence)) >= end[segment] - R)
        self._prefix[slot[write], i[write] % R] = P[write]
        self._lowest_at[slot[write], i[write] % R] = lowest[write]
        last = end - 1
        self._count[slots] = i[last]
        self._total[slots] = P[last]
        self._lowest[slots] = lowest[last]
        for index in stop_index:
            decisions.stops.append(self._stop(int(slot[index]), float(G[index])))
        return decisions

    def finish(self, trajectory: int, answer: str | None, field: str) -> Decisions:
        """The trajectory ended; with the warm-up done the threshold is set; the consensus is checked."""
        slot = self._find(np.array([trajectory]))[0]
        if slot < 0:
            raise InvalidArgument(f"{field}.trajectory", f"trajectory {trajectory} was never started")
        if self._status[slot] == Status.FINISHED:
            raise FailedPrecondition(f"{field}.trajectory", f"trajectory {trajectory} has already finished")
        decisions = Decisions([])
        if self._status[slot] == Status.RUNNING:
            self._status[slot] = Status.FINISHED
            weight = self._lowest_of(np.array([slot]))[0]
            if answer is not None and np.isfinite(weight):
                self._votes[answer] = self._votes.get(answer, 0.0) + float(weight)
        if not self.threshold_set and self._warmup_done():
            self._set_threshold(decisions)
        if self.threshold_set and not self._stop_sampling_sent:
            answer_now, beta = self.vote()
            if beta >= self.options.consensus:
                decisions.stop_sampling = self._stop_sampling(StopReason.CONSENSUS)
        return decisions

    def summary(self) -> Summary:
        """One final verdict per started trajectory; those still running are cut off."""
        n = self.size
        status = self._status[:n]
        verdict = np.select([status == Status.FINISHED, status == Status.STOPPED],
                            [Verdict.KEPT, Verdict.STOPPED], Verdict.CUT_OFF).astype(np.int32)
        answer, beta = self.vote()
        return Summary(self._id[:n].copy(), verdict, self._count[:n].copy(), self._lowest_of(np.arange(n)),
                       self._stop_token[:n].copy(), self.threshold, answer, beta, dict(self._votes))

    def verdict_counts(self) -> dict[str, int]:
        """Trajectories started, and how many hold each final verdict (those still running are cut off)."""
        counts = np.bincount(self.summary().verdict, minlength=max(Verdict) + 1)
        return {"started": self.size, **{verdict.name.lower(): int(counts[verdict]) for verdict in Verdict}}

    def vote(self) -> tuple[str, float]:
        """The answer with the most weight (the smallest among ties) and its share β, or ("", NaN)."""
        total = sum(self._votes.values())
        if not self._votes or total <= 0:
            return "", math.nan
        answer = min(self._votes, key=lambda a: (-self._votes[a], a))
        return answer, self._votes[answer] / total

    # -- internals -------------------------------------------------------------------------------
    def _find(self, trajectory: np.ndarray) -> np.ndarray:
        """Slots of the given trajectory ids, -1 where unknown."""
        if not len(self._ids):
            return np.full(len(trajectory), -1, np.int64)
        position = np.minimum(np.searchsorted(self._ids, trajectory), len(self._ids) - 1)
        return np.where(self._ids[position] == trajectory, self._slot_of[position], -1)

    def _grow(self, needed: int) -> None:
        capacity = len(self._id)
        if needed <= capacity:
            return
        extra = min(max(capacity, needed - capacity), max(self._max_slots - capacity, needed - capacity))
        for name, fill in (("_id", 0), ("_count", 0), ("_total", 0.0), ("_lowest", np.inf), ("_status", 0),
                           ("_stop_token", -1), ("_oldest", 0), ("_prefix", 0.0), ("_lowest_at", np.inf)):
            array = getattr(self, name)
            setattr(self, name, np.concatenate([array, np.full((extra, *array.shape[1:]), fill, array.dtype)]))

    def _fork_floor(self, slot: int) -> int:
        """The lowest offset a fork of `slot` may start at: its ring must still hold P_j for the window before
        the offset, j >= offset - W + 1 (j >= 0), and they must be its own (not a parent's later tokens)."""
        oldest = max(int(self._oldest[slot]), int(self._count[slot]) - self.options.ring + 1)
        return 0 if oldest <= 0 else oldest + self.options.window - 1

    def _eligible(self, slot: np.ndarray | int) -> np.ndarray | bool:
        """Whether the threshold applies to these slots: it is set and they are past the warm-up."""
        return (slot >= self._warmup) & self.threshold_set

    def _lowest_of(self, slots: np.ndarray) -> np.ndarray:
        """A trajectory's lowest window mean: min G over full windows, the mean of all when T < W, NaN if empty."""
        count = self._count[slots]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._total[slots] / count
        return np.where(count >= self.options.window, self._lowest[slots], np.where(count > 0, mean, np.nan))

    def _warmup_done(self) -> bool:
        return self.size >= self._warmup and bool((self._status[:self._warmup] != Status.RUNNING).all())

    def _set_threshold(self, decisions: Decisions) -> None:
        lowest = self._lowest_of(np.arange(self._warmup))
        lowest = lowest[np.isfinite(lowest)]
        self.threshold = float(grouped_threshold(lowest, np.zeros(len(lowest), np.int64), 1,
                                                 100 - self.options.keep_percent)[0])
        self.threshold_set = True
        decisions.threshold = self.threshold
        # Trajectories that already dipped below it while the warm-up ran stop now.
        slots = np.arange(self._warmup, self.size)
        late = slots[(self._status[slots] == Status.RUNNING) & (self._lowest[slots] < self.threshold)]
        decisions.stops.extend(self._stop(int(slot), float(self._lowest[slot])) for slot in late)

    def _stop(self, slot: int, window_mean: float) -> Stop:
        self._status[slot] = Status.STOPPED
        self._stop_token[slot] = self._count[slot] - 1
        return Stop(int(self._id[slot]), int(self._count[slot] - 1), window_mean, self.threshold)

    def _stop_sampling(self, reason: StopReason) -> StopSampling | None:
        if self._stop_sampling_sent:
            return None
        self._stop_sampling_sent = True
        answer, beta = self.vote()
        return StopSampling(reason, answer, beta)


def _segment_cummin(values: np.ndarray, seg_start: np.ndarray, lengths: np.ndarray,
                    segment: np.ndarray) -> np.ndarray:
    """Running minimum of `values` restarting at each segment, by doubling: O(M log max(lengths))."""
    out = values.copy()
    index = np.arange(len(values))
    reach = index - seg_start[segment]  # how far back the segment goes
    step = 1
    longest = int(lengths.max(initial=0))
    while step < longest:
        back = reach >= step
        out[back] = np.minimum(out[back], out[index[back] - step])
        step *= 2
    return out


class WatchSessions:
    """The open sessions of a server, at most `max_sessions`; each holds at most `max_trajectories` and
    `max_bytes` of window state."""

    def __init__(self, max_sessions: int, max_trajectories: int, max_bytes: int):
        self.max_sessions = max_sessions
        self._max_trajectories = max_trajectories
        self._max_bytes = max_bytes
        self._open: set[WatchSession] = set()

    def __len__(self) -> int:
        return len(self._open)

    def open(self, options: WatchOptions) -> WatchSession:
        if len(self._open) >= self.max_sessions:
            raise ResourceExhausted("open", f"the server already holds {self.max_sessions} watch sessions")
        session = WatchSession(options, max_trajectories=self._max_trajectories, max_bytes=self._max_bytes)
        self._open.add(session)
        return session

    def close(self, session: WatchSession) -> None:
        self._open.discard(session)
