"""``negrec responsiveness``: the responsiveness report of trained checkpoints, pooled over the
training seeds of each objective and measured against a placebo control.

Checkpoints of the same objective are the training seeds of one model (a report row); the
control is either given (checkpoints trained with ``placebo: true``, e.g. ``negrec train
--placebo``) or trained here from the stored configuration of the first checkpoint trained with the
not-to-recommend term (else the first): ``input_ntr``
with the same data, architecture and weights, its training events' feedback codes shuffled
(:mod:`negrec.experiments.pooling` explains why a figure without a control is not evidence).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from negrec.data.feedback import Feedback
from negrec.errors import UserError
from negrec.eval.report import responsiveness_summary
from negrec.experiments.measure import Measurement, MeasureSizes, measure, world_of
from negrec.experiments.recommenders import build_recommenders, outside_report, world_of_spec
from negrec.experiments.pooling import (control_difference, pooled_closed_loop,
                                        pooled_responsiveness)
from negrec.experiments.training import train_and_evaluate
from negrec.progress import stage
from negrec.train.checkpoint import LoadedCheckpoint, load_checkpoint
from negrec.train.data_spec import SIMULATED
from negrec.train.objectives import Objective, Term
from negrec.train.resume import stored_config

__all__ = ["CONTROL_OBJECTIVE", "control_config", "responsiveness_report", "train_controls"]

#: The objective a trained control has (a model that sees feedback codes and trains on them).
CONTROL_OBJECTIVE = "input_ntr"


def train_controls(template: LoadedCheckpoint, seeds: int, out_dir: Path, *,
                   echo: Callable[[str], None] = print) -> list[Path]:
    """Trains ``seeds`` placebo controls from ``template``'s stored configuration into
    ``out_dir/seed<k>`` (a finished control of the same configuration there is reused);
    returns their best checkpoints."""
    config = control_config(template)
    paths = []
    for seed in range(seeds):
        folder = out_dir / f"seed{seed}"
        wanted = dataclasses.replace(config, seed=seed)
        if not _finished_with(folder, wanted):
            echo(f"training placebo control {seed + 1}/{seeds} into {folder}")
            with stage(f"train placebo control {seed + 1}/{seeds}"):
                train_and_evaluate(wanted, folder, ks=(10,), bootstrap=0, overwrite=True)
        paths.append(folder / "best.pt")
    return paths


def control_config(template: LoadedCheckpoint):
    """The training configuration of a placebo control of ``template``: its stored
    configuration, the control objective with the same weights, feedback codes shuffled.
    UserError when the template's dislike weight was never chosen (auto)."""
    base = stored_config(template)
    config = dataclasses.replace(
        base, objective=Objective(CONTROL_OBJECTIVE, dict(base.objective.weights)), placebo=True,
        progress=False, tensorboard=False)
    config.model.feedback_input = config.objective.inputs.codes
    if config.objective.chooses_dislike_weight:
        raise UserError(f"{template.path}: the placebo control takes the dislike weight of the "
                        "model it controls, and this checkpoint's objective "
                        f"({template.objective.name}) was trained without one (auto); give a "
                        "checkpoint trained with the not-to-recommend term, or controls trained "
                        "with negrec train --placebo --set objective.weights.dislike=W")
    return config


def _control_template(groups: dict[str, list[LoadedCheckpoint]]) -> LoadedCheckpoint:
    """The checkpoint whose configuration the trained controls copy: the first one trained
    with the control's dislike term (its weight is the one to control), else the first."""
    cks = [ck for group in groups.values() for ck in group]
    ntr = [ck for ck in cks if ck.objective.spec.terms.get(Feedback.DISLIKE) is Term.NTR]
    return (ntr or cks)[0]


def _finished_with(folder: Path, config) -> bool:
    if not (folder / "metrics.json").exists() or not (folder / "best.pt").exists():
        return False
    try:
        return not stored_config(load_checkpoint(folder / "best.pt")).differences(config)
    except UserError:
        return False


def _groups(checkpoints: Sequence[str | Path]) -> dict[str, list[LoadedCheckpoint]]:
    groups: dict[str, list[LoadedCheckpoint]] = {}
    for path in checkpoints:
        ck = load_checkpoint(path)
        groups.setdefault(ck.objective.name, []).append(ck)
    for name, cks in groups.items():
        specs = {repr(stored_config(ck).data) for ck in cks}
        if len(specs) > 1:
            raise UserError(f"--checkpoint: the {name} checkpoints ({', '.join(str(c.path) for c in cks)}) "
                            "were trained on different data; a report row pools the training "
                            "seeds of one model on one data set")
    return groups


def _measure_all(cks: Sequence[LoadedCheckpoint], sizes: MeasureSizes, worlds: dict,
                 progress: bool) -> list[Measurement]:
    out = []
    for ck in cks:
        spec = stored_config(ck).data
        key = repr(spec)
        if key not in worlds:
            worlds[key] = world_of(spec, ck.model.num_items, str(ck.path))
        with stage(f"measure {ck.objective.name}{' (placebo)' if stored_config(ck).placebo else ''}"
                   f" ({ck.path})"):
            out.append(measure(ck, sizes, worlds[key], progress=progress))
    return out


def responsiveness_report(checkpoints: Sequence[str | Path], sizes: MeasureSizes, *,
                          controls: Sequence[str | Path] = (), train_control_seeds: int = 3,
                          out_dir: str | Path, progress: bool = False,
                          echo: Callable[[str], None] = print, recommenders=(),
                          baselines: Sequence[str] = ()) -> dict:
    """The report (see the module docstring): ``objectives`` (one pooled entry per objective,
    with ``vs_control`` when there is a control; then a row per recommender of
    ``recommenders`` and per baseline of ``baselines``, measured in the first checkpoint's
    world: :mod:`negrec.experiments.recommenders`), ``control``, ``responsiveness`` (the
    README's shape), ``simulated`` and ``notes``."""
    if not checkpoints:
        raise UserError("responsiveness_report: no checkpoints (outside recommenders alone: "
                        "negrec.experiments.recommenders.measure)")
    groups = _groups(checkpoints)
    control_cks = [load_checkpoint(p) for p in controls]  # every input checked before any work
    not_placebo = [str(c.path) for c in control_cks if not stored_config(c).placebo]
    if not_placebo:
        raise UserError(f"--control: {', '.join(not_placebo)} was not trained as a placebo "
                        "(train one with `negrec train --placebo ...`)")
    if not control_cks and train_control_seeds > 0:
        control_config(_control_template(groups))  # a control it cannot train: before any work
    worlds: dict = {}
    measured = {name: _measure_all(cks, sizes, worlds, progress) for name, cks in groups.items()}
    notes = []
    control_runs: list[Measurement] = []
    if control_cks:
        control_runs = _measure_all(control_cks, sizes, worlds, progress)
    elif train_control_seeds > 0:
        paths = train_controls(_control_template(groups), train_control_seeds,
                               Path(out_dir) / "controls", echo=echo)
        control_runs = _measure_all([load_checkpoint(p) for p in paths], sizes, worlds, progress)
    else:
        notes.append("No placebo control (--train-controls 0): the responsiveness figures are "
                     "not compared with what a model does when a feedback code merely changes, "
                     "so they are not evidence of a response to the dislike.")
    report: dict = {
        "title": "negrec responsiveness report",
        "description": (
            "Counterfactual responsiveness (dislike vs positive branch: the relative change of the "
            "share of the next top-10 in the branched item's cluster / creator), pooled over each "
            "objective's training seeds (one checkpoint per seed), with 95% two-stage bootstrap "
            "intervals over seeds and histories; 'vs control' = that minus the placebo control's "
            "(input_ntr trained with shuffled feedback codes), in percentage points; closed-loop "
            "rates for simulated data."),
        "simulated": all(stored_config(ck).data.source == SIMULATED
                         for cks in groups.values() for ck in cks),
        "objectives": {}, "notes": notes,
    }
    pool = dict(bootstrap=sizes.bootstrap, seed=sizes.seed)
    for name, runs in measured.items():
        entry = {"checkpoints": [str(ck.path) for ck in groups[name]],
                 **pooled_responsiveness(runs, **pool)}
        if "clusters" in runs[0].entry:
            entry["clusters"] = runs[0].entry["clusters"]
        if runs[0].entry.get("not_measured"):
            entry["not_measured"] = runs[0].entry["not_measured"]
            notes += [f"{name}: {action} {why}" for action, why in entry["not_measured"].items()]
        if control_runs:
            entry["vs_control"] = control_difference(runs, control_runs, **pool)
        if all(r.loop is not None for r in runs):
            entry["closed_loop"] = pooled_closed_loop(runs, **pool)
        report["objectives"][name] = entry
    if control_runs:
        report["control"] = {"checkpoints": [str(p) for p in controls] or "trained here",
                             **pooled_responsiveness(control_runs, **pool)}
        if all(r.loop is not None for r in control_runs):
            report["control"]["closed_loop"] = pooled_closed_loop(control_runs, **pool)
    if recommenders or baselines:
        first = stored_config(next(iter(groups.values()))[0])
        world = world_of_spec(first.data, first.split)
        extra = outside_report(build_recommenders(recommenders, world.item_meta), world, sizes,
                               baseline_names=baselines, progress=progress,
                               rows=report["objectives"])
        report["objectives"] = extra["objectives"]
    report["responsiveness"] = responsiveness_summary(report["objectives"])
    return report
