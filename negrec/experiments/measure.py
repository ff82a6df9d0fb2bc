"""Measuring a trained model's responsiveness to negative feedback: counterfactual branching of
histories (simulated or from a log) and, on simulated data, the closed loop. One function,
:func:`measure_recommender`, serves any recommender; :func:`measure` is its checkpoint form
(``negrec demo`` and ``negrec responsiveness``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from negrec.data.feedback import parse_feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.data.split import make_split
from negrec.errors import UserError
from negrec.eval.closed_loop import ClosedLoopResult, closed_loop
from negrec.eval.counterfactual import (ResponsivenessResult, cooccurrence_clusters,
                                        log_histories, responsiveness, simulated_histories)
from negrec.eval.recommender import Recommender, from_checkpoint
from negrec.experiments.data import load_data
from negrec.sim import Simulator
from negrec.train.checkpoint import LoadedCheckpoint
from negrec.train.config import TrainConfig
from negrec.train.data_spec import SIMULATED, DataSpec
from negrec.train.resume import stored_config

__all__ = ["HISTORY_SEED_OFFSET", "LOOP_SEED_OFFSET", "Measurement", "MeasureSizes", "measure",
           "measurable_actions", "measure_recommender", "world_of"]

#: Seeds of the simulated populations, offset from the measurement's seed so that the
#: counterfactual histories, the closed-loop users and the training log (seed 0 + the run's
#: seed) never share a population.
HISTORY_SEED_OFFSET = 10_000
LOOP_SEED_OFFSET = 20_000


@dataclass
class MeasureSizes:
    """How much to measure. ``histories``: simulated histories (or log users sampled);
    ``steps``: items a simulated history consumes before the branch; ``actions``: feedback
    types compared with the positive branch; ``loop_*``: closed-loop users (0: no closed
    loop), steps and logged warm-up events (simulated data only); ``clusters``: co-occurrence clusters for data without
    any; ``bootstrap``: resamples of the intervals; ``seed``: of every draw."""

    histories: int = 1000
    steps: int = 49
    actions: Sequence[str] = ("dislike", "skip")
    loop_users: int = 500
    loop_steps: int = 50
    loop_warmup: int = 20
    clusters: int = 20
    bootstrap: int = 1000
    seed: int = 0


@dataclass
class Measurement:
    """``entry``: a report entry (``responsiveness``, ``repeated_dislikes``,
    ``mean_similarity``, ``num_histories``; ``closed_loop`` on simulated data; ``clusters``
    when co-occurrence clusters were made); ``result``: the counterfactual result with its
    per-history scores and ``loop`` the closed-loop result with its per-user rates (or None),
    for pooling over training seeds and comparisons (:mod:`negrec.experiments.pooling`)."""

    entry: dict = field(default_factory=dict)
    result: ResponsivenessResult | None = None
    loop: ClosedLoopResult | None = None


def world_of(spec: DataSpec, num_items: int, what: str) -> Simulator | EventLog:
    """Where a model trained on ``spec`` is measured: its simulator (rebuilt from the spec) or
    its data's full log. ``what`` names the model in errors."""
    if spec.source != SIMULATED:
        return load_data(spec)
    sim = Simulator(spec.sim, seed=spec.sim_seed)
    if sim.config.num_items != num_items:
        raise UserError(f"{what}: the checkpoint's simulator has {sim.config.num_items} items but "
                        f"the model {num_items}")
    return sim


def measurable_actions(ck: LoadedCheckpoint, actions: Sequence[str]
                       ) -> tuple[list[str], dict[str, str]]:
    """The ``actions`` the model can be asked about, and why each other one is not measured:
    an action with no event in the model's training data has never been given a meaning, so
    whatever the model does after it is noise (the outside report of issue 18 measured "skip
    responsiveness" on a log without skips). Checkpoints that do not record their training
    events (older ones) keep every action."""
    counts = ck.train_feedback
    if counts is None:
        return list(actions), {}
    kept, skipped = [], {}
    for action in actions:
        label = parse_feedback(action).label
        if counts.get(label, 0) > 0:
            kept.append(action)
        else:
            skipped[action] = f"n/a: no {label} events in the training data"
    return kept, skipped


def measure(ck: LoadedCheckpoint, sizes: MeasureSizes, world: Simulator | EventLog, *,
            progress: bool = False) -> Measurement:
    """Responsiveness of ``ck``'s model (through its adapter,
    :func:`~negrec.eval.recommender.from_checkpoint`) in ``world``, for the actions its training
    data gave a meaning (:func:`measurable_actions`); see :func:`measure_recommender`."""
    actions, skipped = measurable_actions(ck, sizes.actions)
    if not actions:
        raise UserError(f"{ck.path}: none of the actions {', '.join(sizes.actions)} occurs in the "
                        "model's training data; there is nothing to measure")
    out = measure_recommender(from_checkpoint(ck), ck.item_meta,
                              dataclasses.replace(sizes, actions=tuple(actions)), world,
                              split=stored_config(ck).split, progress=progress)
    if skipped:
        out.entry = {"not_measured": skipped, **out.entry}
    return out


def measure_recommender(recommender: Recommender, item_meta: ItemMeta, sizes: MeasureSizes,
                        world: Simulator | EventLog, *, split: str | None = None,
                        progress: bool = False) -> Measurement:
    """Responsiveness of any ``recommender`` over ``item_meta``'s catalogue in ``world``: a
    :class:`Simulator` (histories made by simulated users consuming the recommender's slates,
    then the closed loop) or an :class:`EventLog` (its training histories under the split
    called ``split``, by default the training configuration's, branched at the recommender's top-1;
    co-occurrence clusters when the items have none)."""
    meta, out = item_meta, Measurement()
    if isinstance(world, Simulator):
        hist, branched, _ = simulated_histories(
            recommender, world, num_users=sizes.histories, steps=sizes.steps,
            seed=HISTORY_SEED_OFFSET + sizes.seed, progress=progress)
        if sizes.loop_users > 0:
            out.loop = closed_loop(recommender, world, num_users=sizes.loop_users,
                                   steps=sizes.loop_steps, seed=LOOP_SEED_OFFSET + sizes.seed,
                                   warmup_events=sizes.loop_warmup, bootstrap=sizes.bootstrap,
                                   progress=progress)
    else:
        train = make_split(world, split or TrainConfig.split).train
        users = np.arange(train.num_users)
        if len(users) > sizes.histories:
            rng = np.random.default_rng(sizes.seed)
            users = np.sort(rng.choice(users, sizes.histories, replace=False))
        hist, branched, _ = log_histories(recommender, train, users)
        if (meta.cluster < 0).all():
            meta = dataclasses.replace(meta, cluster=cooccurrence_clusters(world, sizes.clusters),
                                       cluster_names=[f"cooc{k}" for k in range(sizes.clusters)])
            out.entry["clusters"] = f"{sizes.clusters} co-occurrence clusters (the data has none)"
    out.result = responsiveness(recommender, hist, branched, meta, actions=sizes.actions,
                                bootstrap=sizes.bootstrap, seed=sizes.seed, progress=progress)
    result = out.result.to_dict()
    out.entry.update(responsiveness=result["responsiveness"],
                     repeated_dislikes=result["repeated_dislikes"],
                     mean_similarity=result["mean_similarity"],
                     num_histories=result["num_histories"])
    if out.loop is not None:
        out.entry["closed_loop"] = out.loop.to_dict()
    return out
