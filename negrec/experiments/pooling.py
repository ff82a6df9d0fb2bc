"""Figures of a model trained with several seeds, and of a model against its control.

A figure of one trained model varies with the histories it is measured on *and* with the
training run. Every figure here pools the training seeds and carries a two-stage bootstrap
interval (:func:`negrec.eval.stats.hierarchical_ci`: seeds, then histories or users within
each drawn seed). Responsiveness is also reported *beyond a placebo control*: the same
architecture and objective trained on the same log with the feedback codes shuffled across
events (:func:`negrec.data.transforms.permute_feedback`), which sees feedback codes with
their real frequencies but no meaning. What a model does after a dislike counts as a response
to the dislike only as far as it differs from what the control does when the code merely
changes (docs/generalization.md).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from negrec.eval.closed_loop import RATES
from negrec.eval.stats import Estimate, hierarchical_ci, ratio_of_means
from negrec.experiments.measure import Measurement

__all__ = ["control_difference", "pooled_closed_loop", "pooled_mean", "pooled_responsiveness",
           "pooled_versus"]


def _estimate(e: Estimate, **extra) -> dict:
    return {**dataclasses.asdict(e), **extra}


def _difference_of_ratios(a, b, c, d) -> float:
    return ratio_of_means(a, b) - ratio_of_means(c, d)


def pooled_responsiveness(runs: Sequence[Measurement], *, bootstrap: int = 1000,
                          seed: int = 0) -> dict:
    """Responsiveness of one model over its training seeds (one :class:`Measurement` per
    seed): per similarity kind and action, the pooled ratio of means with its two-stage
    interval, and each seed's own figure; the same for repeated dislikes; mean similarities."""
    if not runs:
        raise ValueError("pooled_responsiveness: no measurements")
    first = runs[0].result
    out: dict = {"seeds": len(runs), "num_histories": sum(r.result.num_histories for r in runs),
                 "responsiveness": {}, "per_seed": {}, "repeated_dislikes": {},
                 "mean_similarity": {}}
    for kind, by_action in first.similarity.items():
        out["responsiveness"][kind], out["per_seed"][kind] = {}, {}
        for action in first.actions:
            sample = [(r.result.similarity[kind][action], r.result.similarity[kind]["positive"])
                      for r in runs]
            est = hierarchical_ci(ratio_of_means, sample, resamples=bootstrap, seed=seed)
            out["responsiveness"][kind][action] = _estimate(est, seeds=len(runs))
            out["per_seed"][kind][action] = [ratio_of_means(a, b) for a, b in sample]
        out["mean_similarity"][kind] = {a: float(np.mean([np.mean(r.result.similarity[kind][a])
                                                          for r in runs])) for a in by_action}
        out["repeated_dislikes"][kind] = {
            str(n): _estimate(hierarchical_ci(
                ratio_of_means, [r.result.repeated_similarity[kind][n] for r in runs],
                resamples=bootstrap, seed=seed), seeds=len(runs))
            for n in first.repeated_similarity.get(kind, {})}
    return out


def control_difference(runs: Sequence[Measurement], control: Sequence[Measurement], *,
                       bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per kind and action (those both measured): the model's responsiveness minus the
    control's (a difference of fractions: -0.20 is 20 percentage points more backing-off than
    the control), with a two-stage interval; the two are trained separately, so their seeds and
    histories are resampled independently."""
    out: dict = {}
    mine, theirs = runs[0].result, control[0].result
    for kind in mine.similarity:
        if kind not in theirs.similarity:
            continue
        out[kind] = {}
        for action in mine.actions:
            if action not in theirs.actions:
                continue
            sample = [(r.result.similarity[kind][action], r.result.similarity[kind]["positive"])
                      for r in runs]
            base = [(r.result.similarity[kind][action], r.result.similarity[kind]["positive"])
                    for r in control]
            est = hierarchical_ci(_difference_of_ratios, sample, base, resamples=bootstrap,
                                  seed=seed)
            out[kind][action] = _estimate(est, seeds=len(runs), control_seeds=len(control))
    return out


def pooled_closed_loop(runs: Sequence[Measurement], *, bootstrap: int = 1000,
                       seed: int = 0) -> dict:
    """Closed-loop rates over the training seeds (two-stage intervals over seeds and users),
    and the per-step rates averaged over the seeds."""
    loops = [r.loop for r in runs]
    rates = {rate: _estimate(hierarchical_ci(np.mean, [(lp.per_user[rate],) for lp in loops],
                                             resamples=bootstrap, seed=seed), seeds=len(loops))
             for rate in RATES}
    per_step = {rate: np.mean([lp.per_step[rate] for lp in loops], axis=0).tolist()
                for rate in RATES}
    first = loops[0]
    return {"num_users": first.num_users, "steps": first.steps,
            "warmup_events": first.warmup_events, "seeds": len(loops), "rates": rates,
            "per_step": per_step}


def pooled_versus(runs: Sequence[Measurement], base: Sequence[Measurement],
                  rates: Sequence[str], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Closed-loop ``rates`` of a model relative to a baseline's (ratio of means - 1). The two
    met the same simulated users (the same measurement seed), so seed i of the model is paired
    with seed i of the baseline, user by user."""
    pairs = list(zip(runs, base))
    return {rate: _estimate(hierarchical_ci(
        ratio_of_means, [(a.loop.per_user[rate], b.loop.per_user[rate]) for a, b in pairs],
        resamples=bootstrap, seed=seed), seeds=len(pairs)) for rate in rates}


def pooled_mean(per_seed: Sequence[np.ndarray], base: Sequence[np.ndarray] | None = None, *,
                relative: bool = False, bootstrap: int = 1000, seed: int = 0) -> dict:
    """A per-user metric over the training seeds (``per_seed``: one [U] array per seed): its
    mean, or with ``base`` (the same users, seed by seed) the paired difference of means
    (``relative``: the ratio of means - 1), each with a two-stage interval."""
    if base is None:
        est = hierarchical_ci(np.mean, [(a,) for a in per_seed], resamples=bootstrap, seed=seed)
    else:
        stat = ratio_of_means if relative else (lambda a, b: float(np.mean(a) - np.mean(b)))
        est = hierarchical_ci(stat, list(zip(per_seed, base)), resamples=bootstrap, seed=seed)
    return _estimate(est, seeds=len(per_seed))
