"""R³ reverse curriculum (ALGORITHMS.md section 10) over a forest of demonstrations and their rollouts.

Each demonstration is a trunk of depth S in its own tree, ending at a leaf; every other leaf is a rollout
forked from the trunk at its start depth 0..S-1, node order being the order the rollouts were run. A stage
advances only once a full `window` of rollouts exists at its start depth, and a mastered stage never falls
back. The schedule is replayed from this history on every call, so the service keeps no state. Whole-array
numpy with one loop over stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from treecredit_server.compute.forest import ForestArrays

WINDOW = 64
ADVANCE_AT = 0.8
SUCCESS_AT = 1.0


@dataclass(frozen=True)
class Plan:
    """D demonstrations; per-depth arrays are `[D, S_max + 1]`, indexed by start depth."""

    num_steps: np.ndarray           # int64 [D]
    stage: np.ndarray               # int64 [D], 1..S
    complete: np.ndarray            # bool [D]
    sample_probability: np.ndarray  # float64 [D, S_max + 1]
    success_rate: np.ndarray        # float64 [D, S_max + 1], NaN where no rollouts
    rollouts: np.ndarray            # int64 [D, S_max + 1]
    failing_step: np.ndarray        # int64 [D], 0 if none
    rollouts_before_advance: np.ndarray  # int64 [D]: max(0, window - rollouts from the current stage's depth)


def rollouts(forest: ForestArrays, trunk_end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(num_steps [D], leaf [M], demonstration [M], start_depth [M])` of the rollouts, in the order run
    (`trunk_end` as `codec.curriculum` checks it: one trunk of depth >= 1 per tree, every leaf in such a tree)."""
    topology = forest.topology
    num_steps = topology.depth[trunk_end]
    root = topology.root[trunk_end]
    on_trunk = np.zeros(forest.num_nodes, bool)
    on_trunk[topology.path_pairs(trunk_end)[1]] = True
    leaf = forest.leaves[~on_trunk[forest.leaves]]
    demonstration_of_root = np.full(forest.num_nodes, -1)
    demonstration_of_root[root] = np.arange(len(root))
    demonstration = demonstration_of_root[topology.root[leaf]]
    row, node = topology.path_pairs(leaf)
    start_depth = np.zeros(len(leaf), np.int64)
    np.maximum.at(start_depth, row[on_trunk[node]], topology.depth[node[on_trunk[node]]])
    return num_steps, leaf, demonstration, start_depth


def plan(
    forest: ForestArrays,
    trunk_end: np.ndarray,
    *,
    mixed: bool = False,
    window: int = WINDOW,
    advance_at: float = ADVANCE_AT,
    success_at: float = SUCCESS_AT,
) -> Plan:
    """Current stage, the start-depth mix to sample next, success rates and the failing step."""
    num_steps, leaf, demonstration, start_depth = rollouts(forest, trunk_end)
    num_demos, width = len(num_steps), int(num_steps.max(initial=0)) + 1
    success = (forest.reward[leaf] >= success_at).astype(np.float64)

    # Rollouts sorted by (demonstration, start depth), in the order run within each; windows over each run.
    cell = demonstration * width + start_depth
    order = np.argsort(cell, kind="stable")
    cell, success, time = cell[order], success[order], leaf[order]
    counts = np.bincount(cell, minlength=num_demos * width)
    cell_start = (np.cumsum(counts) - counts)[cell]
    position = np.arange(len(cell)) - cell_start
    cumulative = np.concatenate(([0.0], np.cumsum(success)))
    in_window = np.minimum(position + 1, window)
    window_rate = (cumulative[1:] - cumulative[np.arange(len(cell)) + 1 - in_window]) / in_window
    passes = (position + 1 >= window) & (window_rate >= advance_at)
    last_of_cell = np.append(cell[1:] != cell[:-1], True)[: len(cell)]
    next_time = np.where(last_of_cell, np.iinfo(np.int64).max, np.append(time[1:], 0)[: len(time)])

    success_rate = np.full(num_demos * width, np.nan)
    success_rate[cell[last_of_cell]] = window_rate[last_of_cell]
    success_rate = success_rate.reshape(num_demos, width)

    # Replay the schedule: stage s is passed at the first moment after it became current at which the
    # last `window` rollouts from depth S - s pass (the window may already pass when the stage begins).
    stage = np.ones(num_demos, np.int64)
    since = np.full(num_demos, -1, np.int64)
    complete = np.zeros(num_demos, bool)
    never = np.iinfo(np.int64).max
    demo_of_cell = cell // width
    for s in range(1, width):
        current = (stage == s) & ~complete
        candidate = passes & current[demo_of_cell] & (cell % width == num_steps[demo_of_cell] - s)
        begun = since[demo_of_cell]
        moment = np.where(time > begun, time, np.where(next_time > begun, begun, never))
        passed_at = np.full(num_demos, never)
        np.minimum.at(passed_at, demo_of_cell[candidate], moment[candidate])
        passed = current & (passed_at < never)
        complete |= passed & (num_steps == s)
        advance = passed & (num_steps > s)
        stage[advance] += 1
        since[advance] = passed_at[advance]

    depth = np.arange(width)
    first_depth = (num_steps - stage)[:, None]
    if mixed:
        chosen = (depth >= first_depth) & (depth < num_steps[:, None])
    else:
        chosen = depth == first_depth
    sample_probability = chosen / chosen.sum(axis=1, keepdims=True)

    # Walking back from the end of the trunk, the first tried depth that falls short names the next step.
    short = (success_rate < advance_at) & (depth < num_steps[:, None])
    deepest_short = np.where(short, depth, -1).max(axis=1, initial=-1)
    per_depth = counts.reshape(num_demos, width)
    at_stage = per_depth[np.arange(num_demos), num_steps - stage]
    return Plan(
        num_steps=num_steps.astype(np.int64),
        stage=stage,
        complete=complete,
        sample_probability=sample_probability,
        success_rate=success_rate,
        rollouts=per_depth,
        failing_step=deepest_short + 1,
        rollouts_before_advance=np.maximum(window - at_stage, 0),
    )
