"""Section 5's online early stop replayed token by token in plain Python, and random event streams for it."""

from __future__ import annotations

import math

import numpy as np


class Replay:
    """The offline replay of a Watch stream: every decision recomputed from whole confidence lists."""

    def __init__(self, *, warmup=16, keep_percent=90.0, threshold=None, window=2048, consensus=0.95, budget=512):
        self.window, self.keep_percent, self.consensus, self.budget = window, keep_percent, consensus, budget
        self.warmup = 0 if threshold is not None else warmup
        self.threshold = threshold
        self.confidence: dict[int, list[float]] = {}
        self.order: list[int] = []
        self.status: dict[int, str] = {}
        self.stops: dict[int, int] = {}
        self.votes: dict[str, float] = {}
        self.stop_sampling: str | None = None

    def windows(self, values: list[float]) -> list[float]:
        w = self.window
        return [sum(values[i - w:i]) / w for i in range(w, len(values) + 1)]

    def lowest(self, trajectory: int) -> float:
        values = self.confidence[trajectory]
        if not values:
            return math.nan
        return min(self.windows(values)) if len(values) >= self.window else sum(values) / len(values)

    def _eligible(self, trajectory: int) -> bool:
        return self.threshold is not None and self.order.index(trajectory) >= self.warmup

    def start(self, trajectory, parent=None, offset=0):
        self.confidence[trajectory] = list(self.confidence[parent][:offset]) if parent is not None else []
        self.order.append(trajectory)
        self.status[trajectory] = "running"
        if len(self.order) >= self.budget and self.stop_sampling is None:
            self.stop_sampling = "budget"

    def tokens(self, trajectory, values):
        if self.status[trajectory] != "running":
            return
        mine = self.confidence[trajectory]
        for value in values:
            mine.append(float(value))
            i, w = len(mine), self.window
            if self._eligible(trajectory) and i >= w and sum(mine[i - w:i]) / w < self.threshold:
                self._stop(trajectory)
                return

    def _stop(self, trajectory):
        self.status[trajectory] = "stopped"
        self.stops[trajectory] = len(self.confidence[trajectory]) - 1

    def finish(self, trajectory, answer=None):
        if self.status[trajectory] == "running":
            self.status[trajectory] = "finished"
            weight = self.lowest(trajectory)
            if answer is not None and not math.isnan(weight):
                self.votes[answer] = self.votes.get(answer, 0.0) + weight
        warm = self.order[:self.warmup]
        if (self.threshold is None and len(warm) == self.warmup
                and all(self.status[t] != "running" for t in warm)):
            lows = [self.lowest(t) for t in warm if self.confidence[t]]
            self.threshold = float(np.percentile(lows, 100 - self.keep_percent)) if lows else math.nan
            for t in self.order[self.warmup:]:
                full = self.windows(self.confidence[t])
                if self.status[t] == "running" and full and min(full) < self.threshold:
                    self._stop(t)
        if self.threshold is not None and self.stop_sampling is None and self.votes:
            total = sum(self.votes.values())
            if total > 0 and max(self.votes.values()) / total >= self.consensus:
                self.stop_sampling = "consensus"

    def verdicts(self) -> dict[int, str]:
        names = {"finished": "kept", "stopped": "stopped", "running": "cut_off"}
        return {t: names[self.status[t]] for t in self.order}


def random_stream(rng: np.random.Generator, *, trajectories=12, fork_history=4, max_chunk=6,
                  answers=("a", "b", "c"), **options) -> list[tuple]:
    """Events ("start", t, parent, offset), ("tokens", [t...], [count...], confidence), ("finish", t, answer),
    interleaved at random, for a session with `options`; forks start from a trajectory at any offset whose
    window state the session keeps (the last `fork_history` tokens, less for a fork of a fork)."""
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


def apply(session: Replay, event: tuple) -> None:
    if event[0] == "start":
        session.start(*event[1:])
    elif event[0] == "tokens":
        _, chosen, sizes, values = event
        bounds = np.cumsum([0, *sizes])
        for j, t in enumerate(chosen):
            session.tokens(t, values[bounds[j]:bounds[j + 1]])
    else:
        session.finish(*event[1:])


def replay(events, **options) -> Replay:
    reference = Replay(**options)
    for event in events:
        apply(reference, event)
    return reference
