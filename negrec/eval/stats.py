"""Every interval estimate negrec reports: percentile bootstraps over units (users,
histories), paired or independent, and the two-stage bootstrap over training seeds.

A figure measured on one trained model varies with the data it is measured on (users,
histories) *and* with the training run (seed). A bootstrap over users alone hides the second
part, so comparisons of trained models use :func:`hierarchical_ci`: each resample draws seeds
with replacement, then units with replacement within each drawn seed (the two-stage bootstrap
of clustered data), and recomputes the statistic on the pooled draw.

Reproducibility: every function draws from ``numpy.random.default_rng(seed)`` in a fixed
order, so the same inputs and seed give the same interval.

- :func:`bootstrap_ci`: the mean of one array (one interval per offline metric);
- :func:`ratio_of_means_ci`: ``mean(a) / mean(b) - 1`` over paired entries (responsiveness,
  closed-loop rates relative to a baseline);
- :func:`difference_ci`: ``mean(a) - mean(b)`` of two independent groups (HR gap);
- :func:`hierarchical_ci`: any statistic, over seeds and then units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

__all__ = ["Estimate", "bootstrap_ci", "difference_ci", "hierarchical_ci", "ratio_of_means",
           "ratio_of_means_ci"]

#: Resamples drawn per block by the unit bootstraps: memory stays at ROWS_PER_BLOCK x n
#: indices. Every block but the last draws an even number of indices, so the draws are the
#: ones a single ``integers(0, n, (resamples, n))`` call would give (numpy fills int64 draws
#: below 2**32 from 32-bit halves of 64-bit words; an even count leaves no half unused).
ROWS_PER_BLOCK = 200


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


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap statistics at ``level`` (e.g. 0.95)."""
    a = (1 - level) / 2
    return float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def _resample_means(arrays: Sequence[np.ndarray], resamples: int,
                    rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
    """Blocks of bootstrap means of equal-length ``arrays`` [n] resampled with the same indices
    (paired): yields, per block of up to :data:`ROWS_PER_BLOCK` resamples, one [rows] array of
    means per input array."""
    n = len(arrays[0])
    for r0 in range(0, resamples, ROWS_PER_BLOCK):
        idx = rng.integers(0, n, (min(ROWS_PER_BLOCK, resamples - r0), n))
        yield tuple(x[idx].mean(1) for x in arrays)


def _bootstrap_means(arrays: Sequence[np.ndarray], resamples: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """[resamples] bootstrap means of each of the paired ``arrays``."""
    blocks = list(_resample_means(arrays, resamples, rng))
    return tuple(np.concatenate([b[j] for b in blocks]) for j in range(len(arrays)))


def bootstrap_ci(values: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` [n] (NaN when empty or
    ``resamples`` is 0)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or resamples <= 0:
        return (math.nan, math.nan)
    (means,) = _bootstrap_means((values,), resamples, np.random.default_rng(seed))
    return _interval(means, level)


def ratio_of_means_ci(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> Estimate:
    """mean(a) / mean(b) - 1 with a paired percentile bootstrap over the entries of ``a`` and
    ``b`` [n] (the same indices for both). NaN when n = 0 or mean(b) = 0; resamples whose
    denominator is 0 are left out of the interval."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    if n == 0 or b.mean() == 0:
        return Estimate(math.nan, math.nan, math.nan, n)
    point = a.mean() / b.mean() - 1.0
    if resamples <= 0:
        return Estimate(float(point), math.nan, math.nan, n)
    mean_a, mean_b = _bootstrap_means((a, b), resamples, np.random.default_rng(seed))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = mean_a / mean_b - 1.0
    return Estimate(float(point), *_interval(stats[np.isfinite(stats)], level), n)


def difference_ci(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(a) - mean(b) for two independent groups (a [n_a], b [n_b]
    resampled separately: all of a's draws, then b's). NaN when a group is empty or
    ``resamples`` is 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) == 0 or len(b) == 0 or resamples <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    (mean_a,) = _bootstrap_means((a,), resamples, rng)
    (mean_b,) = _bootstrap_means((b,), resamples, rng)
    # this interval has always used the tail probabilities rounded (0.025 / 0.975 exactly for
    # level 0.95, where the others use (1 - level) / 2 = 0.025000000000000022): kept, so that
    # every reported figure reproduces bit for bit
    tail = round((1 - level) / 2, 12)
    return float(np.quantile(mean_a - mean_b, tail)), float(np.quantile(mean_a - mean_b, 1 - tail))


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
    return Estimate(float(point), *_interval(stats, level), n)
