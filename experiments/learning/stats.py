"""Statistics: rank correlation, sign agreement, normalised AUC, tokens to a success level, bootstrap intervals."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 10_000


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends - 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN when either side is constant."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def sign_agreement(estimate: np.ndarray, truth: np.ndarray, tolerance: float = 1e-9) -> float:
    """The fraction of entries where both are non-zero (beyond `tolerance`) that have the same sign: an estimate of 0
    gives no direction, and A* = 0 (an outcome already settled) has none to agree with."""
    informative = (np.abs(truth) > tolerance) & (np.abs(estimate) > tolerance)
    if not informative.any():
        return float("nan")
    return float(np.mean(np.sign(estimate[informative]) == np.sign(truth[informative])))


def normalised_auc(tokens: np.ndarray, values: np.ndarray, horizon: float) -> float:
    """The mean of the curve over [0, horizon] generated tokens (piecewise linear between evaluations, held flat
    after the last): 0 = never succeeds, 1 = succeeds from the first token."""
    grid = np.linspace(0.0, horizon, 513)
    curve = np.interp(grid, tokens, values)
    return float(np.sum((curve[1:] + curve[:-1]) / 2) / (len(grid) - 1))


def tokens_to_reach(tokens: np.ndarray, values: np.ndarray, level: float) -> float:
    """The first evaluated token count at which the curve reaches `level`; inf if it never does."""
    reached = np.flatnonzero(np.asarray(values) >= level)
    return float(tokens[reached[0]]) if len(reached) else float("inf")


def bootstrap_interval(samples: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap interval of the mean over seeds (`samples [S, ...]`, rows resampled jointly, so a
    curve keeps its shape); for a paired comparison pass the per-seed differences. NaN with fewer than 2 seeds."""
    samples = np.asarray(samples, float)
    if len(samples) < 2:
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan
    picks = np.random.default_rng(seed).integers(0, len(samples), size=(BOOTSTRAP_SAMPLES, len(samples)))
    means = samples[picks].mean(axis=1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)
