"""Interval estimates shared by every report: bootstrap over units (users, histories) and
over training seeds.

A figure measured on one trained model varies with the data it is measured on (users,
histories) *and* with the training run (seed). A bootstrap over users alone hides the second
part, so comparisons of trained models use :func:`hierarchical_ci`: each resample draws seeds
with replacement, then units with replacement within each drawn seed (the two-stage bootstrap
of clustered data), and recomputes the statistic on the pooled draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["Estimate", "hierarchical_ci", "ratio_of_means"]


@dataclass
class Estimate:
    """A point estimate with a two-sided interval; ``n`` is the number of units behind it."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def ratio_of_means(a: np.ndarray, b: np.ndarray) -> float:
    """mean(a) / mean(b) - 1 (NaN when mean(b) is 0)."""
    den = float(np.mean(b)) if len(b) else 0.0
    return float(np.mean(a)) / den - 1.0 if den != 0 else math.nan


# one sample: per seed, a tuple of equal-length arrays that are resampled together (paired)
Sample = Sequence[Sequence[np.ndarray]]


def _pool(sample: Sample, picks: list[tuple[int, np.ndarray | None]]) -> tuple[np.ndarray, ...]:
    arity = len(sample[0])
    parts: list[list[np.ndarray]] = [[] for _ in range(arity)]
    for s, idx in picks:
        for j in range(arity):
            arr = np.asarray(sample[s][j], dtype=np.float64)
            parts[j].append(arr if idx is None else arr[idx])
    return tuple(np.concatenate(p) if p else np.zeros(0) for p in parts)


def hierarchical_ci(statistic: Callable[..., float], *samples: Sample, resamples: int = 1000,
                    seed: int = 0, level: float = 0.95) -> Estimate:
    """``statistic`` of the pooled data, with a two-stage percentile bootstrap interval.

    Each ``sample`` is a list over training seeds of tuples of aligned per-unit arrays (the
    arrays of one seed are resampled with the same indices, so paired figures stay paired).
    ``statistic`` receives, for every sample in order, its pooled arrays as separate
    arguments: ``statistic(*pooled(sample0), *pooled(sample1), ...)``. Different samples
    (e.g. a model and its control, trained separately) are resampled independently. With a
    single seed the interval is over units only.
    """
    if not samples or any(len(s) == 0 for s in samples):
        raise ValueError("hierarchical_ci: every sample needs at least one seed")
    for s in samples:
        for seed_arrays in s:
            if len({len(a) for a in seed_arrays}) != 1:
                raise ValueError("hierarchical_ci: the arrays of one seed must have equal "
                                 f"lengths; got {[len(a) for a in seed_arrays]}")
    full = [_pool(s, [(i, None) for i in range(len(s))]) for s in samples]
    point = statistic(*[a for pooled in full for a in pooled])
    n = sum(len(pooled[0]) for pooled in full)
    if resamples <= 0:
        return Estimate(float(point), math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for r in range(resamples):
        args: list[np.ndarray] = []
        for s in samples:
            seeds = rng.integers(0, len(s), len(s)) if len(s) > 1 else np.zeros(1, np.int64)
            picks = [(int(i), rng.integers(0, len(s[i][0]), len(s[i][0]))) for i in seeds]
            args.extend(_pool(s, picks))
        stats[r] = statistic(*args)
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return Estimate(float(point), math.nan, math.nan, n)
    a = (1 - level) / 2
    return Estimate(float(point), float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a)), n)
