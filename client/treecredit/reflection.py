"""DRO's reflection reward R3 and its query filter (ALGORITHMS.md sections 6-7): the Reflect RPC, and the
reflection part of Score and Filter.

    reflected = client.reflect(Reflection([ell_q1, ell_q2]))    # or Score(..., reflection=Reflection(...))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from treecredit import _wire
from treecredit.arrays import as_numpy
from treecredit.v1 import reflection_pb2 as pb


@dataclass
class Reflection:
    """DRO's R3 inputs: per query q a `[G_q, L_q]` matrix `ell[q][i, j] = log pi(y_j | q, c_i, y_<j)` and
    optionally a baseline `[L_q]`. Filter (section 6): `min_spread` or `drop_percent`, not both.
    Inside a Score call, query q is group q and its rollouts are that group's leaves, ascending."""

    ell: Sequence[np.ndarray]
    baseline: Sequence[np.ndarray] | None = None
    power: float | None = None
    min_spread: float | None = None
    drop_percent: float | None = None

    def to_proto(self, into: pb.ReflectRequest | None = None) -> pb.ReflectRequest:
        matrices = [as_numpy(m, np.float64) for m in self.ell]
        matrices = [m.reshape(m.shape[0], -1) for m in matrices]
        message = pb.ReflectRequest() if into is None else into
        _wire.encode(np.concatenate([m.reshape(-1) for m in matrices]) if matrices else np.zeros(0), into=message.ell)
        _wire.encode([m.shape[0] for m in matrices], np.int64, into=message.rows)
        _wire.encode([m.shape[1] for m in matrices], np.int64, into=message.cols)
        if self.baseline is not None:
            message.baseline.CopyFrom(_wire.encode(np.concatenate([np.ravel(b) for b in self.baseline])
                                                   if len(self.baseline) else np.zeros(0)))
        for name in ("power", "min_spread", "drop_percent"):
            if getattr(self, name) is not None:
                setattr(message, name, getattr(self, name))
        return message


@dataclass
class ReflectionResult(_wire.Results):
    """`reward` float64 `[sum G_q]` (R3 per rollout), `weights`/`sigma` float64 `[sum L_q]`,
    `spread` float64 `[Q]`, `kept` bool `[Q]` (the query filter's verdict)."""

    reward: np.ndarray
    weights: np.ndarray
    sigma: np.ndarray
    spread: np.ndarray
    kept: np.ndarray
