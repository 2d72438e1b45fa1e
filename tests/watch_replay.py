"""ALGORITHMS.md section 5's online early stop replayed event by event in plain Python, written from the text
alone (it imports nothing of the server): whole confidence lists per trajectory, every window recomputed from
them. Also the generators of Watch streams for it: random streams, and random interleavings of one session."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Step:
    """What one request caused: STOPs as {trajectory: (token, window mean, threshold)}, THRESHOLD, STOP_SAMPLING
    as (reason, answer, consensus)."""

    stops: dict[int, tuple[int, float, float]] = field(default_factory=dict)
    threshold: float | None = None
    stop_sampling: tuple[str, str, float] | None = None

    def __bool__(self) -> bool:
        return bool(self.stops) or self.threshold is not None or self.stop_sampling is not None

    def add(self, other: Step) -> Step:
        """Both steps' decisions, as one response carries them."""
        self.stops.update(other.stops)
        self.threshold = other.threshold if other.threshold is not None else self.threshold
        self.stop_sampling = other.stop_sampling or self.stop_sampling
        return self


def percentile(values: list[float], q: float) -> float:
    """numpy's linear percentile (the definition's); NaN for no values."""
    return float(np.percentile(values, q)) if values else math.nan


class Replay:
    """One Watch session replayed event by event; each event returns the `Step` it caused."""

    def __init__(self, *, warmup=16, keep_percent=90.0, threshold=None, window=2048, consensus=0.95, budget=512):
        self.window, self.keep_percent, self.consensus, self.budget = window, keep_percent, consensus, budget
        self.warmup = 0 if threshold is not None else warmup  # a fixed threshold has no warm-up
        self.threshold = threshold
        self.confidence: dict[int, list[float]] = {}  # each trajectory's whole path, inherited prefix included
        self.order: list[int] = []                    # start order
        self.status: dict[int, str] = {}              # "running", "finished" or "stopped"
        self.stops: dict[int, int] = {}
        self.votes: dict[str, float] = {}
        self.stop_sampling: str | None = None

    # -- the definition ---------------------------------------------------------------------------
    def windows(self, values: list[float]) -> list[float]:
        """G_i for i = W..T: the means of the full windows."""
        w = self.window
        return [sum(values[i - w:i]) / w for i in range(w, len(values) + 1)]

    def lowest(self, trajectory: int) -> float:
        """min G; the mean of all when T < W; NaN with no tokens."""
        values = self.confidence[trajectory]
        if not values:
            return math.nan
        return min(self.windows(values)) if len(values) >= self.window else sum(values) / len(values)

    def _checked(self, trajectory: int) -> bool:
        """Whether the threshold applies: it is known and the trajectory is not one of the first `warmup`."""
        return self.threshold is not None and self.order.index(trajectory) >= self.warmup

    def vote(self) -> tuple[str, float]:
        """argmax V (the smallest answer among ties) and its share beta; ("", NaN) without votes."""
        total = sum(self.votes.values())
        if not self.votes or total <= 0:
            return "", math.nan
        answer = sorted(self.votes, key=lambda a: (-self.votes[a], a))[0]
        return answer, self.votes[answer] / total

    # -- events -----------------------------------------------------------------------------------
    def start(self, trajectory, parent=None, offset=0) -> Step:
        step = Step()
        self.confidence[trajectory] = list(self.confidence[parent][:offset]) if parent is not None else []
        self.order.append(trajectory)
        self.status[trajectory] = "running"
        # A fork inherits its prefix's windows: one already below the threshold stops it at its fork point.
        inherited = self.windows(self.confidence[trajectory])
        if self._checked(trajectory) and inherited and min(inherited) < self.threshold:
            self._stop(trajectory, min(inherited), step)
        if len(self.order) >= self.budget:
            self._stop_sampling("budget", step)
        return step

    def tokens(self, trajectory, values) -> Step:
        """Tokens after a STOP were in flight: dropped."""
        step = Step()
        if self.status[trajectory] != "running":
            return step
        mine = self.confidence[trajectory]
        for value in values:
            mine.append(float(value))
            i, w = len(mine), self.window
            if self._checked(trajectory) and i >= w and sum(mine[i - w:i]) / w < self.threshold:
                self._stop(trajectory, sum(mine[i - w:i]) / w, step)
                break
        return step

    def finish(self, trajectory, answer=None) -> Step:
        step = Step()
        if self.status[trajectory] == "running":
            self.status[trajectory] = "finished"
            weight = self.lowest(trajectory)
            if answer is not None and not math.isnan(weight):
                self.votes[answer] = self.votes.get(answer, 0.0) + weight
        warm = self.order[:self.warmup]
        if (self.threshold is None and len(warm) == self.warmup
                and all(self.status[t] != "running" for t in warm)):
            self.threshold = percentile([self.lowest(t) for t in warm if self.confidence[t]], 100 - self.keep_percent)
            step.threshold = self.threshold
            # Those that dipped below it while the warm-up ran stop now, at their last token.
            for t in self.order[self.warmup:]:
                full = self.windows(self.confidence[t])
                if self.status[t] == "running" and full and min(full) < self.threshold:
                    self._stop(t, min(full), step)
        if self.threshold is not None:
            answer_now, beta = self.vote()
            if beta >= self.consensus:
                self._stop_sampling("consensus", step)
        return step

    def _stop(self, trajectory, window_mean, step: Step) -> None:
        self.status[trajectory] = "stopped"
        self.stops[trajectory] = len(self.confidence[trajectory]) - 1
        step.stops[trajectory] = (self.stops[trajectory], window_mean, self.threshold)

    def _stop_sampling(self, reason: str, step: Step) -> None:
        if self.stop_sampling is None:
            self.stop_sampling = reason
            step.stop_sampling = (reason, *self.vote())

    def verdicts(self) -> dict[int, str]:
        names = {"finished": "kept", "stopped": "stopped", "running": "cut_off"}
        return {t: names[self.status[t]] for t in self.order}


def apply(session: Replay, event: tuple) -> Step:
    """Events: ("start", t, parent, offset), ("tokens", [t...], [count...], confidence), ("finish", t, answer)."""
    if event[0] == "start":
        return session.start(*event[1:])
    if event[0] == "finish":
        return session.finish(*event[1:])
    _, chosen, sizes, values = event
    step = Step()
    bounds = np.cumsum([0, *sizes])
    for j, t in enumerate(chosen):
        step.add(session.tokens(t, values[bounds[j]:bounds[j + 1]]))
    return step


def replay(events, **options) -> Replay:
    reference = Replay(**options)
    for event in events:
        apply(reference, event)
    return reference


def random_stream(rng: np.random.Generator, *, trajectories=12, fork_history=4, max_chunk=6,
                  answers=("a", "b", "c"), **options) -> list[tuple]:
    """Events interleaved at random for a session with `options`; forks start from a trajectory at any offset
    whose window state the session keeps (the last `fork_history` tokens, less for a fork of a fork)."""
    session = Replay(**options)
    ring = session.window + fork_history
    inherited: dict[int, int] = {}  # the oldest prefix sum a trajectory's window state holds (forks of forks)

    def fork_floor(t: int, count: int) -> int:
        oldest = max(inherited[t], count - ring + 1)
        return 0 if oldest <= 0 else oldest + session.window - 1

    running: list[int] = []
    events: list[tuple] = []
    started = 0
    while started < trajectories or running:
        roll = rng.random()
        if started < trajectories and (not running or roll < 0.25):
            parent, offset = None, 0
            inherited[started] = 0
            if session.order and rng.random() < 0.4:
                parent = int(rng.choice(session.order))
                count = len(session.confidence[parent])
                offset = int(rng.integers(fork_floor(parent, count), count + 1))
                inherited[started] = max(inherited[parent], count - ring + 1)
            events.append(("start", started, parent, offset))
            running.append(started)
            started += 1
        elif roll < 0.85:
            chosen = rng.choice(running, size=int(rng.integers(1, len(running) + 1)), replace=False).tolist()
            sizes = rng.integers(0, max_chunk + 1, len(chosen)).tolist()
            events.append(("tokens", chosen, sizes, rng.uniform(0.2, 3.0, sum(sizes))))
        else:
            t = running.pop(int(rng.integers(len(running))))
            events.append(("finish", t, None if rng.random() < 0.2 else str(rng.choice(answers))))
        apply(session, events[-1])
    return events


# -- one session, many interleavings ---------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """A trajectory of a session, whatever the interleaving: its fork point, the tokens it adds there, and its
    answer at the end (`finishes=False`: the stream ends first)."""

    parent: int | None
    offset: int
    tokens: tuple[float, ...]
    answer: str | None
    finishes: bool


def path(plans: list[Plan], t: int) -> list[float]:
    """The whole confidence path of trajectory t: the inherited prefix, then its own tokens."""
    plan = plans[t]
    prefix = [] if plan.parent is None else path(plans, plan.parent)[:plan.offset]
    return prefix + list(plan.tokens)


def interleave(plans: list[Plan], options: dict, fork_history: int, rng: random.Random) -> list[list[tuple]]:
    """Requests (lists of events, in the order a request applies them: starts, one chunk, finishes) that run
    `plans` in a random order: trajectories start in any order once their fork point exists, tokens come in
    chunks of random sizes across trajectories, each finishes once all its tokens are sent. Tokens of a stopped
    trajectory are still sent (in flight). A fork whose parent was stopped before its fork point never starts;
    a parent waits with its tokens past `fork_offset + fork_history` until its pending forks have started."""
    session = Replay(**options)
    full = {t: path(plans, t) for t in range(len(plans))}
    sent = {t: 0 for t in range(len(plans))}  # tokens of the path sent or inherited
    pending, skipped, finished = set(range(len(plans))), set(), set()
    requests: list[list[tuple]] = []

    def can_start(t: int) -> bool | None:
        """True/False; None when it never can (its parent stopped, or never started, before the fork point)."""
        parent, offset = plans[t].parent, plans[t].offset
        if parent is None:
            return True
        if parent in skipped:
            return None
        if parent in pending:
            return False
        if len(session.confidence[parent]) >= offset:
            return True
        return None if session.status[parent] != "running" else False

    def cap(t: int) -> int:
        """How much of its path t may have sent while forks of it wait to start."""
        waiting = [plans[c].offset + fork_history for c in pending if plans[c].parent == t]
        return min([len(full[t]), *waiting])

    while pending or any(sent[t] < len(full[t]) for t in session.order) or \
            any(plans[t].finishes and t not in finished for t in session.order):
        events: list[tuple] = []
        for t in sorted(pending):
            if can_start(t) is None:
                pending.discard(t)
                skipped.add(t)
        ready = [t for t in sorted(pending) if can_start(t)]
        for t in rng.sample(ready, min(len(ready), rng.choice((0, 0, 1, 2)))):
            pending.discard(t)
            sent[t] = plans[t].offset
            events.append(("start", t, plans[t].parent, plans[t].offset))
            apply(session, events[-1])
        open_ = [t for t in session.order if sent[t] < cap(t)]
        chosen = rng.sample(open_, rng.randint(0, len(open_))) if open_ else []
        if chosen:
            sizes = [rng.randint(1, cap(t) - sent[t]) for t in chosen]
            values = np.array([v for t, n in zip(chosen, sizes) for v in full[t][sent[t]:sent[t] + n]])
            for t, n in zip(chosen, sizes):
                sent[t] += n
            events.append(("tokens", chosen, sizes, values))
            apply(session, events[-1])
        done = [t for t in session.order
                if plans[t].finishes and t not in finished and sent[t] == len(full[t])]
        for t in rng.sample(done, rng.randint(0 if events else 1, len(done))) if done else []:
            finished.add(t)
            events.append(("finish", t, plans[t].answer))
            apply(session, events[-1])
        if events:
            requests.append(events)
    return requests
