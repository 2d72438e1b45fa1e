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


def random_stream(rng: np.random.Generator, *, trajectories=12, window=4, fork_history=4, warmup=4,
                  max_chunk=6, answers=("a", "b", "c")) -> list[tuple]:
    """Events ("start", t, parent, offset), ("tokens", [t...], [count...], confidence), ("finish", t, answer),
    interleaved at random; forks start from a trajectory at an offset within its last `fork_history` tokens."""
    counts: dict[int, int] = {}
    running: list[int] = []
    events: list[tuple] = []
    started = 0
    while started < trajectories or running:
        roll = rng.random()
        if started < trajectories and (not running or roll < 0.25):
            parent, offset = None, 0
            if counts and rng.random() < 0.4:
                parent = int(rng.choice(list(counts)))
                offset = int(rng.integers(max(0, counts[parent] - fork_history), counts[parent] + 1))
            events.append(("start", started, parent, offset))
            counts[started] = offset
            running.append(started)
            started += 1
        elif roll < 0.85 or len(running) == 1 and started < warmup:
            chosen = rng.choice(running, size=int(rng.integers(1, len(running) + 1)), replace=False).tolist()
            sizes = rng.integers(0, max_chunk + 1, len(chosen)).tolist()
            events.append(("tokens", chosen, sizes, rng.uniform(0.2, 3.0, sum(sizes))))
            for t, n in zip(chosen, sizes):
                counts[t] += n
        else:
            t = running.pop(int(rng.integers(len(running))))
            answer = None if rng.random() < 0.2 else str(rng.choice(answers))
            events.append(("finish", t, answer))
    return events


def replay(events, **options) -> Replay:
    reference = Replay(**options)
    for event in events:
        if event[0] == "start":
            reference.start(*event[1:])
        elif event[0] == "tokens":
            _, chosen, sizes, values = event
            bounds = np.cumsum([0, *sizes])
            for j, t in enumerate(chosen):
                reference.tokens(t, values[bounds[j]:bounds[j + 1]])
        else:
            reference.finish(*event[1:])
    return reference
