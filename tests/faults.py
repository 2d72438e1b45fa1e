"""Helpers for fault tests and the load bench: big forests, a watcher of a server's health, its log lines."""

from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

import treecredit


def big_forest(nodes: int, seed: int = 0) -> treecredit.Forest:
    """A random recursive forest of `nodes` nodes (roots about every 1000), a few tokens each: slow to score."""
    rng = np.random.default_rng(seed)
    index = np.arange(nodes)
    parent = np.floor(rng.random(nodes) * index).astype(np.int64)
    parent[index % 1000 == 0] = -1
    is_leaf = np.ones(nodes, bool)
    is_leaf[parent[parent >= 0]] = False
    reward = np.where(is_leaf, rng.integers(0, 2, nodes).astype(np.float64), np.nan)
    group = (np.cumsum(parent < 0) - 1) // 4
    return treecredit.Forest.from_arrays(parent, group=group, reward=reward, num_tokens=rng.integers(0, 4, nodes))


class HealthWatch:
    """The statuses a server's health service reports for the whole server, in order, read in the background."""

    def __init__(self, target: str):
        self.statuses: list[int] = []
        self._channel = grpc.insecure_channel(target)
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(health_pb2.HealthCheckRequest())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self.statuses.append(response.status)
        except grpc.RpcError:
            pass

    def close(self) -> list[int]:
        self._reader.join(30)
        self._channel.close()
        return self.statuses


class LogLines:
    """Every JSON line a server process writes, kept as it is read in the background (instead of `drain_log`)."""

    def __init__(self, process):
        self.lines: list[dict] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process) -> None:
        for line in process.stdout:
            self.lines.append(json.loads(line))

    def events(self, name: str, **fields) -> list[dict]:
        return [line for line in list(self.lines)
                if line.get("event") == name and all(line.get(k) == v for k, v in fields.items())]


def eventually(predicate, timeout: float = 20.0) -> bool:
    """Whether `predicate()` holds within `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
