"""Measuring any recommender: a factory named ``pkg.module:factory`` (the command line's
``--recommender``), a :class:`~negrec.eval.recommender.Recommender` object or a function, on the
embedded simulator or on a data set, beside the baselines (:mod:`negrec.eval.baselines`).

A factory is any callable that takes the data's item catalogue (:class:`negrec.data.ItemMeta`:
``num_items``, ``cluster``, ``creator``) and returns a recommender. :func:`measure` is the
Python API (``negrec.measure``); it returns the report dict that ``negrec responsiveness``
writes (``responsiveness: {name: {mean, ci_low, ci_high}}``, one row per recommender keyed by
its ``name``, else the factory's dotted path, baselines alongside).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from negrec.data.log import EventLog, ItemMeta
from negrec.data.split import make_split
from negrec.errors import UserError
from negrec.eval.baselines import BASELINES, baselines
from negrec.eval.recommender import Recommender, from_function, recommender_name
from negrec.eval.report import responsiveness_summary, write_report
from negrec.experiments.data import load_data
from negrec.experiments.measure import MeasureSizes, measure_recommender
from negrec.experiments.pooling import pooled_closed_loop, pooled_responsiveness
from negrec.progress import stage
from negrec.sim import Simulator
from negrec.train.config import TrainConfig
from negrec.train.data_spec import SIMULATED, DataSpec

__all__ = ["World", "build_recommenders", "load_factory", "measure", "measured_rows",
           "outside_report", "simulated_world_spec", "world_of_spec"]


def simulated_world_spec() -> DataSpec:
    """The world outside recommenders are measured in without data: the demo's simulator."""
    from negrec.experiments.demo import DemoConfig

    demo = DemoConfig()
    return DataSpec(source=SIMULATED, sim=demo.sim_config(), sim_seed=demo.seed)


@dataclass
class World:
    """Where recommenders are measured: ``world`` (a :class:`Simulator` or the data's
    :class:`EventLog`), its catalogue ``item_meta``, the training log the baselines learn from
    (``train_log``) and the split that gave it (``split``); ``simulated``."""

    world: Simulator | EventLog
    item_meta: ItemMeta
    train_log: EventLog
    split: str
    simulated: bool


def world_of_spec(spec: DataSpec | None = None, split: str | None = None) -> World:
    """The :class:`World` of a data spec (default :func:`simulated_world_spec`): its simulator
    and the simulator's log, or its data."""
    spec = spec or simulated_world_spec()
    split = split or TrainConfig.split
    log = load_data(spec)
    train = make_split(log, split).train
    if spec.source == SIMULATED:
        sim = Simulator(spec.sim, seed=spec.sim_seed)
        return World(sim, sim.item_meta(), train, split, True)
    return World(log, log.item_meta, train, split, False)


def load_factory(spec: str) -> Callable[[ItemMeta], Recommender]:
    """The callable named ``pkg.module:factory`` (the working directory is importable, as for
    ``python -m``); a UserError naming the module and the exception when it cannot be found."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"--recommender {spec!r}: expected pkg.module:factory (a module and a "
                        "callable in it that takes the item catalogue and returns a recommender)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # whatever the user's module raises on import
        raise UserError(f"--recommender {spec}: cannot import module {module_name!r}: "
                        f"{type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(f"--recommender {spec}: module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"--recommender {spec}: {attr!r} is a {type(target).__name__}, not a "
                        "callable")
    return target


def _as_recommender(thing, item_meta: ItemMeta, label: str) -> Recommender:
    """A recommender from ``thing``: a ``module:factory`` string or a factory (called with the
    catalogue), a recommender object, or a function ``(items, feedback, k)``."""
    if isinstance(thing, str):
        factory = load_factory(thing)
        try:
            thing = factory(item_meta)
        except Exception as exc:  # the user's factory failed: one line (--debug: traceback)
            raise UserError(f"--recommender {thing}: the factory raised {type(exc).__name__}: "
                            f"{exc}") from exc
    elif not hasattr(thing, "recommend") and callable(thing):
        try:  # a factory takes one argument (the catalogue); a recommend function three
            import inspect

            arity = len(inspect.signature(thing).parameters)
        except (TypeError, ValueError):
            arity = 1
        thing = from_function(thing) if arity == 3 else thing(item_meta)
    if not callable(getattr(thing, "recommend", None)):
        raise UserError(f"{label}: expected a recommender (an object with recommend(items, "
                        f"feedback, k)); got {type(thing).__name__}")
    return thing


def build_recommenders(recommenders, item_meta: ItemMeta) -> dict[str, Recommender]:
    """Named recommenders from ``recommenders``: one recommender / factory / ``module:factory``
    string, a sequence of them, or a mapping name -> one of them. A row is named by the
    mapping's key, else the recommender's ``name``, else the factory's dotted path."""
    if isinstance(recommenders, Mapping):
        items = list(recommenders.items())
    else:
        seq = recommenders if isinstance(recommenders, (list, tuple)) else [recommenders]
        items = [(None, r) for r in seq]
    out: dict[str, Recommender] = {}
    for n, (key, thing) in enumerate(items):
        label = f"recommender {key or (thing if isinstance(thing, str) else n + 1)}"
        rec = _as_recommender(thing, item_meta, label)
        name = key or recommender_name(rec, thing if isinstance(thing, str) else f"recommender{n + 1}")
        if name in out:
            raise UserError(f"{label}: two recommenders are named {name!r}; give them distinct "
                            "names (a `name` attribute, or a mapping name -> recommender)")
        out[name] = rec
    return out


def measured_rows(recommenders: Mapping[str, Recommender], world: World, sizes: MeasureSizes,
                  *, kind: str, progress: bool = False) -> dict[str, dict]:
    """One report row per recommender (``kind``: "recommender" or "baseline"), measured once
    (``seeds`` 1: intervals over histories or users)."""
    rows = {}
    pool = dict(bootstrap=sizes.bootstrap, seed=sizes.seed)
    for name, rec in recommenders.items():
        with stage(f"measure {kind} {name}"):
            m = measure_recommender(rec, world.item_meta, sizes, world.world, split=world.split,
                                    progress=progress)
        row = {"kind": kind, **pooled_responsiveness([m], **pool)}
        if "clusters" in m.entry:
            row["clusters"] = m.entry["clusters"]
        if m.loop is not None:
            row["closed_loop"] = pooled_closed_loop([m], **pool)
        rows[name] = row
    return rows


def measure(recommenders, data: DataSpec | None = None, *, sizes: MeasureSizes | None = None,
            include_baselines: Sequence[str] | bool = True, out_dir: str | Path | None = None,
            progress: bool = False) -> dict:
    """The responsiveness report of any recommenders (see :func:`build_recommenders` for what
    ``recommenders`` may be) on ``data`` (default: the demo's simulator, histories made by each
    recommender's own slates, then the closed loop) beside the baselines
    (``include_baselines``: True for all of :data:`~negrec.eval.baselines.BASELINES`, or their
    names). Writes report.md / report.json / PNGs into ``out_dir`` when given; returns the
    report dict."""
    sizes = sizes or MeasureSizes()
    world = world_of_spec(data)
    recs = build_recommenders(recommenders, world.item_meta)
    names = tuple(BASELINES) if include_baselines is True else tuple(include_baselines or ())
    report = outside_report(recs, world, sizes, baseline_names=names, progress=progress)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def outside_report(recs: Mapping[str, Recommender], world: World, sizes: MeasureSizes, *,
                   baseline_names: Sequence[str] = tuple(BASELINES), progress: bool = False,
                   rows: dict | None = None) -> dict:
    """The report of ``recs`` and the baselines ``baseline_names`` in ``world``, after the
    report rows ``rows`` already made (e.g. pooled checkpoints); names must not collide."""
    rows = dict(rows or {})
    base = baselines(world.train_log, world.item_meta, baseline_names)
    for name in list(recs) + list(base):
        if name in rows:
            raise UserError(f"recommender {name!r}: a report row of that name exists already; "
                            "rename the recommender")
    rows.update(measured_rows(recs, world, sizes, kind="recommender", progress=progress))
    rows.update(measured_rows(base, world, sizes, kind="baseline", progress=progress))
    where = "the embedded simulator" if world.simulated else "the data's training histories"
    return {
        "title": "negrec responsiveness report",
        "description": (
            f"Counterfactual responsiveness on {where} (dislike vs positive branch: the relative "
            "change of the share of the next top-10 in the branched item's cluster / creator), "
            "with 95% bootstrap intervals over histories; closed-loop rates on the simulator. "
            f"Baselines: {', '.join(base) or 'none'}."),
        "simulated": world.simulated,
        "objectives": rows,
        "notes": ["Outside recommenders have no placebo control: their figures are what they do "
                  "after a dislike, not evidence that the dislike's meaning was learnt (a "
                  "FeedbackBlind ablation of a recommender gives 0 by construction)."],
        "responsiveness": responsiveness_summary(rows),
    }
