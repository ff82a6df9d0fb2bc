"""The dislike weight chosen on validation events: the not-to-recommend term's weight from a
small grid, per log, by a rule that never trades ranking for fewer disliked items.

Why: one weight does not serve every log. On MovieLens-100K a dislike weight of 60 costs
NDCG@10 against ``positive_only`` (an interval excluding 0), while on the simulated worlds 60
leaves one target unmet and 100 meets it at no ranking cost (docs/generalization_screening.md,
"One dislike weight for every world?"). A weight's pull on the scores grows with the weight
until it starts to push liked items down as well; where that happens depends on the log.

The rule (:func:`choose_dislike_weight`): train ``positive_only`` (the reference) and the NTR
objective at every weight of the grid; keep the **largest weight whose validation NDCG@10 is
not significantly below the reference's and provably not far below it**: the paired 95%
bootstrap interval over validation users of the difference reaches 0 (upper end >= 0) and
stays above -:data:`RANKING_MARGIN` times the reference's NDCG (lower end). When no weight
passes, the smallest is kept and the choice says so. Only validation events are used: the
test events stay unseen.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.log import EventLog
from negrec.data.split import Split, make_split
from negrec.errors import UserError
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_checkpoint
from negrec.eval.stats import Estimate, hierarchical_ci
from negrec.experiments.data import load_data
from negrec.experiments.training import train_and_evaluate
from negrec.files import write_json
from negrec.progress import log as progress_log
from negrec.train.checkpoint import load_checkpoint
from negrec.train.config import TrainConfig
from negrec.train.distributed import process_rank
from negrec.train.objectives import DISLIKE_WEIGHT_GRID, Term, get_objective
from negrec.train.run_folder import check_run_folder, clear_run

__all__ = ["DISLIKE_WEIGHT_GRID", "RANKING_MARGIN", "REFERENCE_OBJECTIVE", "WeightChoice", "choose_dislike_weight",
           "clear_tuning", "is_tuning_folder", "read_plan", "trial_folder", "tune_dislike_weight"]

#: The largest ranking cost a weight's interval may leave open, relative to the reference's
#: validation NDCG (5%: the rule needs evidence that the cost is small, not only no evidence
#: of a cost; see _passes).
RANKING_MARGIN = 0.05
#: The objective whose validation NDCG@10 a weight must not fall significantly below.
REFERENCE_OBJECTIVE = "positive_only"
#: The plan of a tuning folder (its configuration and grid), written before the first training.
PLAN_FILE = "tune_plan.json"
#: The outcome: every weight's validation figures, the choice and the chosen run's test figures.
RESULT_FILE = "tune.json"
#: A link to the chosen weight's run folder.
CHOSEN_LINK = "chosen"
#: The chosen run's files also linked at the top of the tuning folder, so that OUT/best.pt is
#: the model to use, as in a folder of negrec train without a sweep.
CHOSEN_FILES = ("best.pt", "config.yaml", "metrics.json")


@dataclass
class WeightChoice:
    """The outcome of :func:`choose_dislike_weight`.

    ``weight``: the chosen dislike weight; ``versus_reference``: per weight tried, the
    validation NDCG@k difference to the reference (mean over users, paired 95% interval);
    ``passed``: whether the chosen weight passed the rule (False: no weight did, and the
    smallest was kept); ``reference_mean``: the reference's mean validation NDCG@k."""

    weight: float
    versus_reference: dict[float, Estimate]
    passed: bool
    reference_mean: float

    def passes(self, weight: float) -> bool:
        return _passes(self.versus_reference[weight], self.reference_mean)


def _passes(e: Estimate, reference_mean: float) -> bool:
    # "not significantly below" (the interval's upper end reaches 0) is not enough alone: a
    # small validation set gives a wide interval that takes in 0 for any cost, and the rule
    # would then take the largest weight exactly where it can see least (leave-one-out on
    # ml-100k: w 100 at -0.0159 [-0.0380, +0.0057] passed). So the interval must also rule out
    # a cost larger than RANKING_MARGIN of the reference's NDCG (its lower end >= -margin); a
    # NaN interval (too few users to resample) fails, leaving the smallest weight.
    return e.ci_high >= 0 and e.ci_low >= -RANKING_MARGIN * reference_mean


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a) - np.mean(b))


def choose_dislike_weight(reference: np.ndarray, candidates: Mapping[float, np.ndarray], *,
                          resamples: int = 1000, seed: int = 0) -> WeightChoice:
    """The largest weight whose per-user validation metric is neither significantly nor
    possibly more than :data:`RANKING_MARGIN` below the reference's (module docstring).

    ``reference``: float [U], the reference model's per-user validation NDCG@k;
    ``candidates``: weight -> float [U], the same users in the same order. Each difference's
    interval is a paired percentile bootstrap over users (``resamples`` draws from ``seed``)."""
    if not candidates:
        raise ValueError("choose_dislike_weight: no candidate weights")
    reference = np.asarray(reference, np.float64)
    versus = {}
    for weight in sorted(candidates):
        values = np.asarray(candidates[weight], np.float64)
        if values.shape != reference.shape:
            raise ValueError(f"choose_dislike_weight: weight {weight:g} has {values.shape[0]} "
                             f"per-user values, the reference {reference.shape[0]}: the same "
                             "validation users are expected")
        versus[weight] = hierarchical_ci(_mean_difference, [(values, reference)],
                                         resamples=resamples, seed=seed)
    mean = float(reference.mean())
    passing = [w for w, e in versus.items() if _passes(e, mean)]
    if passing:
        return WeightChoice(max(passing), versus, True, mean)
    return WeightChoice(min(versus), versus, False, mean)


def trial_folder(weight: float) -> str:
    """The run folder (inside the tuning folder) of the NTR objective at ``weight``."""
    return f"dislike_{weight:g}"


def _check_tunable(config: TrainConfig) -> None:
    if config.objective.spec.terms.get(Feedback.DISLIKE) is not Term.NTR:
        raise UserError(f"tuning the dislike weight needs an objective that trains dislikes with "
                        f"the not-to-recommend term (input_ntr); got {config.objective.name}")
    if config.placebo:
        raise UserError("tuning the dislike weight needs the real feedback codes; got placebo "
                        "true (train the control with negrec train --placebo at the chosen weight)")


def _check_grid(weights: Sequence[float]) -> tuple[float, ...]:
    grid = tuple(sorted(float(w) for w in weights))
    if not grid or any(not np.isfinite(w) or w <= 0 for w in grid) or len(set(grid)) != len(grid):
        raise UserError(f"dislike weights: expected distinct finite numbers > 0; got {list(weights)}")
    return grid


def tune_dislike_weight(config: TrainConfig, out_dir: str | Path, *,
                        weights: Sequence[float] = DISLIKE_WEIGHT_GRID, log: EventLog | None = None,
                        split: Split | None = None, resume: bool = False, overwrite: bool = False,
                        resamples: int = 1000) -> dict | None:
    """Trains the reference (``positive_only``, folder ``REFERENCE_OBJECTIVE``) and ``config``'s
    NTR objective at every dislike weight of ``weights`` (folders :func:`trial_folder`), each a
    :func:`~negrec.experiments.training.train_and_evaluate` run with ``config``'s other
    settings on one split; chooses the weight on the validation events
    (:func:`choose_dislike_weight`); writes ``tune.json`` and the link ``chosen`` to the chosen
    run's folder (``best.pt``, ``config.yaml`` and ``metrics.json`` link to its files) and
    returns what tune.json holds. None on the other ranks of a torchrun job (they only train).

    ``resume``: runs already evaluated are kept, an interrupted one continues from its last.pt,
    the rest start (with the configuration and grid of the folder's ``tune_plan.json``: pass
    the configuration read by :func:`read_plan`). ``overwrite``: every run starts over."""
    _check_tunable(config)
    grid = _check_grid(weights)
    out = Path(out_dir)
    runs = {REFERENCE_OBJECTIVE: dataclasses.replace(
        config, objective=get_objective(REFERENCE_OBJECTIVE, config.objective.weights))}
    for w in grid:
        runs[trial_folder(w)] = dataclasses.replace(
            config, objective=get_objective(config.objective.name,
                                            {**config.objective.weights, "dislike": w}))
    # under torchrun only rank 0 checks and writes the tuning folder's own files (the other
    # ranks would find rank 0's plan when they share --out); every rank checks the run folders
    # (before its first Trainer: rank 0 writes in them only once every rank has joined)
    main = process_rank() == 0
    if not resume:
        if main and (out / PLAN_FILE).exists() and not overwrite:
            raise UserError(f"{out} already holds a tuning run ({PLAN_FILE}): continue it with "
                            "--resume, or delete it and start over with --overwrite (or choose "
                            "another --out)")
        for folder in (*((out,) if main else ()), *(out / name for name in runs)):
            check_run_folder(folder, resume=False, overwrite=overwrite)
        if main:
            if overwrite:
                clear_run(out)  # a single run's files, or the links to an earlier choice
                for name in (RESULT_FILE, CHOSEN_LINK):  # an earlier choice, never a stale one
                    (out / name).unlink(missing_ok=True)
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / PLAN_FILE, {"config": config.to_dict(), "dislike_weights": list(grid)})
    if split is None:
        split = make_split(log if log is not None else load_data(config.data), config.split)
    key = f"ndcg@{config.eval_k}"
    valid: dict[str, np.ndarray] = {}
    kept = []
    for name, cfg in runs.items():
        folder = out / name
        if resume and (folder / "metrics.json").exists():
            kept.append(name)  # evaluated after the trainings, so that every rank trains in step
            continue
        carry_on = resume and (folder / "last.pt").exists()
        result = train_and_evaluate(cfg, folder, split=split, resume=carry_on,
                                    overwrite=not carry_on,
                                    ks=tuple(sorted({10, 20, config.eval_k})))
        if result is not None:  # None on the other ranks of a torchrun job
            valid[name] = result["per_user"]["valid"][key]
    if not main:  # the other ranks of a torchrun job only train (rank 0 chooses)
        return None
    for name in kept:
        progress_log.info("%s: trained and evaluated before, kept", out / name)
        # per-user figures are not stored: the kept run's best.pt is evaluated again
        best = load_checkpoint(out / name / "best.pt")
        valid[name] = evaluate(from_checkpoint(best), split.valid, ks=(config.eval_k,),
                               bootstrap=0).per_user[key]
    choice = choose_dislike_weight(valid[REFERENCE_OBJECTIVE],
                                   {w: valid[trial_folder(w)] for w in grid},
                                   resamples=resamples, seed=config.seed)
    chosen = trial_folder(choice.weight)
    test = json.loads((out / chosen / "metrics.json").read_text())["test"]
    result = {
        "rule": f"the largest dislike weight whose validation {key} is not significantly below "
                f"{REFERENCE_OBJECTIVE}'s and whose paired 95% bootstrap interval over users "
                f"rules out a cost above {RANKING_MARGIN:.0%} of it",
        "objective": config.objective.name,
        "chosen_weight": choice.weight, "chosen_run": str((out / chosen).resolve()),
        "passed": choice.passed,
        "reference": {"run": REFERENCE_OBJECTIVE, f"valid_{key}": float(valid[REFERENCE_OBJECTIVE].mean())},
        "trials": [{"dislike_weight": w, "run": trial_folder(w),
                    f"valid_{key}": float(valid[trial_folder(w)].mean()),
                    "minus_reference": dataclasses.asdict(choice.versus_reference[w]),
                    "passes": choice.passes(w)} for w in grid],
        "test": test,
    }
    write_json(out / RESULT_FILE, result)
    _link(out / CHOSEN_LINK, chosen)
    for name in CHOSEN_FILES:  # OUT/best.pt serves as a single run's would
        _link(out / name, f"{chosen}/{name}")
    return result


def _link(link: Path, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target, target_is_directory=(link.parent / target).is_dir())


def is_tuning_folder(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a tuning run (finished or not)."""
    return (Path(out_dir) / PLAN_FILE).exists()


def clear_tuning(out_dir: str | Path) -> None:
    """Deletes the tuning run in ``out_dir``: its plan, result and links, and the run folders
    its plan names (a single run written there next must not be taken for it)."""
    out = Path(out_dir)
    if not is_tuning_folder(out):
        return
    _, grid = read_plan(out)
    for name in (REFERENCE_OBJECTIVE, *map(trial_folder, grid)):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (RESULT_FILE, CHOSEN_LINK, *CHOSEN_FILES, PLAN_FILE):
        (out / name).unlink(missing_ok=True)  # a link itself, never its target


def read_plan(out_dir: str | Path) -> tuple[TrainConfig, tuple[float, ...]]:
    """The configuration and grid a tuning folder was started with (for ``resume``)."""
    path = Path(out_dir) / PLAN_FILE
    if not path.exists():
        raise UserError(f"--resume: {path} not found (no tuning run to continue in {out_dir})")
    plan = json.loads(path.read_text())
    return TrainConfig.from_dict(plan["config"]), tuple(plan["dislike_weights"])
