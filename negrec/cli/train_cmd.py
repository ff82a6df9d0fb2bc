"""``negrec train``: train a model and evaluate it (metrics.json, checkpoints, config)."""

from __future__ import annotations

import argparse
from pathlib import Path

from negrec.cli.data_cmd import (add_source_arguments, given_source_options, load_and_report,
                                 reject_source_options_without_source, spec_from_args)
from negrec.cli.flags import Flag, add_flags, given_flags

DESCRIPTION = """Train a sequential recommender with one of the objectives (--objective; see
docs/objectives.md), with early stopping on validation NDCG@10, then evaluate the best
checkpoint. Writes under --out: best.pt (the best validated model, or the last model when no
validation ran), last.pt, config.yaml (the full resolved config), metrics.csv (training
curve), metrics.json (validation and test metrics: ndcg@10, recall@10, mrr,
dislike_exposure@10, hr_gap@10, with 95% intervals and user counts).

An objective with the not-to-recommend term (input_ntr, the default) has its dislike weight
chosen for the log by default (objective.weights.dislike auto), as negrec tune chooses it:
positive_only and the objective are trained at each weight of negrec tune's grid (negrec tune
--help) into OUT/positive_only, OUT/dislike_20, ..., and the largest weight whose validation
NDCG@10 is neither significantly nor possibly more than 5% below positive_only's is kept
(OUT/tune.json; OUT/best.pt, config.yaml and metrics.json link to the chosen run's; --resume continues
an interrupted sweep). That costs a training per weight and one more; --set
objective.weights.dislike=W trains one model at W.

An --out that already holds a run is refused: continue it with --resume, or start over with
--overwrite. --resume continues from OUT/last.pt with the configuration stored in it; only
--epochs, --max-minutes, --no-progress and --set epochs=/max_steps=/max_minutes=/progress= may
change it (epochs not with the cosine schedule).

examples:
  negrec train --data movielens --path ../shared/data/ml-100k --objective input_ntr --out runs/ntr
  negrec train --config my.yaml --set optim.lr=3e-3 --set model.kind=gru --out runs/gru
  negrec train --data simulated --epochs 5 --out runs/sim --set objective.weights.dislike=50
  negrec train --data movielens --path ../shared/data/ml-100k --placebo --out runs/placebo \
      --set objective.weights.dislike=20   # a control, at the weight runs/ntr/tune.json chose
  negrec train --out runs/ntr --resume                # continue a killed run
  negrec train --out runs/ntr --resume --epochs 40    # train a finished run for longer"""

#: Flags that are shorthands for one configuration key, generated from TrainConfig's fields
#: (--set reaches every other key); not given, they change nothing.
TRAIN_FLAGS = (Flag("objective.name", ("--objective",), dest="objective"),
               Flag("model.kind", ("--model",), dest="model_kind"),
               Flag("epochs"), Flag("seed"), Flag("device"), Flag("max_minutes"),
               Flag("placebo"), Flag("split"))
NO_PROGRESS = Flag("progress", ("--no-progress",), dest="no_progress", negate=True)
#: The flags a resumed run may give (they change when it stops, never which steps it takes).
RESUME_FLAGS = ("epochs", "max_minutes")


def add_arguments(p: argparse.ArgumentParser, *,
                  resume_help: str = "continue the run in OUT from OUT/last.pt") -> None:
    from negrec.train.config import TrainConfig

    p.add_argument("--config", help="YAML config (defaults for anything it does not set)")
    p.add_argument("--out", required=True, help="output folder")
    add_flags(p, TrainConfig, TRAIN_FLAGS, defaults=False)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr=3e-3 (repeatable)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help=resume_help)
    run.add_argument("--overwrite", action="store_true",
                     help="delete the run already in OUT (checkpoints, config.yaml, metrics.csv, "
                          "metrics.json, tensorboard/) and start a new one")
    add_flags(p, TrainConfig, (NO_PROGRESS,), defaults=False)
    add_source_arguments(p, required=False)


def given_train_flags(args: argparse.Namespace) -> list[tuple[Flag, object]]:
    from negrec.train.config import TrainConfig

    return given_flags(args, TrainConfig, TRAIN_FLAGS, defaults=False)


def _overrides(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(what the user typed, ``key=value``) for every configuration change asked for: the
    flags, then the --set's (which win), then --no-progress."""
    sets = [(f"{flag.option_strings[0]} {value}", f"{flag.key}={value}")
            for flag, value in given_train_flags(args)]
    sets += [(f"--set {item}", item) for item in args.set]
    if args.no_progress:
        sets.append(("--no-progress", "progress=false"))
    return sets


def build_config(args: argparse.Namespace):
    """The configuration of a new run: --config (or the defaults), the data options, then the
    flags and --set overrides."""
    from negrec.cli.options import CLIError
    from negrec.train.config import apply_overrides, load_config
    from negrec.train.data_spec import DataSpec

    reject_source_options_without_source(args, "negrec train")
    cfg = load_config(args.config)
    if args.source is not None:
        if args.config and cfg.data != DataSpec():
            raise CLIError(f"--config {args.config} has a data section and --data {args.source} is "
                           "given: the data come from one of them (drop one)")
        cfg.data = spec_from_args(args)
    return apply_overrides(cfg, [item for _, item in _overrides(args)])


def resume_config(args: argparse.Namespace):
    """The configuration stored in OUT/last.pt, with the changes a resumed run may make;
    anything else asked for is refused (it would otherwise be ignored)."""
    from negrec.cli.options import CLIError
    from negrec.train.config import apply_overrides, parse_override, resume_adjustable_keys
    from negrec.train.resume import config_from_checkpoint

    last = Path(args.out) / "last.pt"
    fixed = (["--config"] if args.config else []) + [
        flag.option_strings[0] for flag, _ in given_train_flags(args) if flag.key not in RESUME_FLAGS
    ] + given_source_options(args)
    if fixed:
        raise CLIError(f"--resume continues {last} with the configuration stored in it; "
                       f"{', '.join(fixed)} would change it: start a new run instead (--overwrite "
                       "or another --out)")
    if not last.exists():
        raise CLIError(f"--resume: {last} not found (nothing to resume in {args.out})")
    cfg = config_from_checkpoint(last)
    adjustable = resume_adjustable_keys(cfg)
    sets = _overrides(args)
    for label, item in sets:
        key, _ = parse_override(item)
        if key not in adjustable:
            raise CLIError(f"--resume: {label} cannot be applied: {key} is fixed once a run has "
                           f"started (a resumed run can change only {', '.join(adjustable)}); "
                           "start a new run instead (--overwrite or another --out)")
    return apply_overrides(cfg, [item for _, item in sets])


def run(args: argparse.Namespace) -> int:
    from negrec.cli.options import CLIError
    from negrec.experiments.training import train_and_evaluate
    from negrec.experiments.tuning import clear_tuning, is_tuning_folder
    from negrec.files import strict_json
    from negrec.train.objectives import DISLIKE_WEIGHT_GRID
    from negrec.train.run_folder import check_run_folder

    out = Path(args.out)
    if args.resume and is_tuning_folder(out) and not (out / "last.pt").exists():
        return tune(args, None)  # a sweep (below) interrupted; a single run has its own last.pt
    cfg = resume_config(args) if args.resume else build_config(args)
    if cfg.objective.chooses_dislike_weight:
        # objective.weights.dislike auto (the default): the weight is chosen on the validation
        # events by negrec tune's sweep, and OUT/best.pt is the chosen run's
        if cfg.placebo:
            raise CLIError("--placebo trains the control of one model and takes its dislike "
                           "weight; got objective.weights.dislike auto: give the model's with "
                           "--set objective.weights.dislike=W (a tuned run's tune.json has it "
                           "as chosen_weight)")
        return _tune(cfg, DISLIKE_WEIGHT_GRID, args)
    if not args.resume and is_tuning_folder(out):  # one model where a sweep was
        if not args.overwrite:
            raise CLIError(f"{out} already holds a tuning run (tune_plan.json): continue it with "
                           "--resume, or delete it and start over with --overwrite (or choose "
                           "another --out)")
        clear_tuning(out)
    check_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)  # before loading
    log = load_and_report(cfg.data, "train")  # the loader's summary line on stderr
    metrics = train_and_evaluate(cfg, args.out, log=log, resume=args.resume,
                                 overwrite=args.overwrite)
    if metrics is None:  # a rank other than 0 of a torchrun job: rank 0 reports
        return 0
    t = metrics["test"]
    summary = {k: t[k] for k in ("ndcg@10", "recall@10", "mrr", "dislike_exposure@10",
                                 "positive_users", "dislike_users") if k in t}
    print(strict_json({"out": str(args.out), "objective": cfg.objective.name, "test": summary,
                       "train_seconds": round(metrics["train"]["train_seconds"], 1),
                       "targets_per_s": round(metrics["train"]["targets_per_s"])}, indent=2))
    return 0


def tune(args: argparse.Namespace, grid) -> int:
    """``negrec tune`` (and ``negrec train --resume`` of a sweep): the tuning run of the
    configuration the options give, over ``grid`` (None: the default grid), or with --resume
    the one in --out continued."""
    from negrec.cli.data_cmd import given_source_options
    from negrec.cli.options import CLIError
    from negrec.experiments.tuning import read_plan
    from negrec.train.objectives import DISLIKE_WEIGHT_GRID

    if args.resume:
        fixed = ((["--config"] if args.config else [])
                 + [flag.option_strings[0] for flag, _ in given_train_flags(args)]
                 + given_source_options(args) + (["--set"] if args.set else [])
                 + (["--dislike-weights"] if grid is not None else []))
        if fixed:
            raise CLIError(f"--resume continues the tuning run in {args.out} with the configuration "
                           f"and weights of its tune_plan.json; {', '.join(fixed)} would change "
                           "them: start a new tuning run instead (--overwrite or another --out)")
        cfg, weights = read_plan(args.out)
    else:
        cfg = build_config(args)
        weights = grid or DISLIKE_WEIGHT_GRID
    return _tune(cfg, weights, args)


def _tune(cfg, weights, args: argparse.Namespace) -> int:
    """Runs (or, with --resume, continues) the tuning of ``cfg`` over ``weights`` in --out and
    prints its summary."""
    from negrec.experiments.tuning import tune_dislike_weight
    from negrec.files import strict_json

    log = load_and_report(cfg.data, "tune")
    result = tune_dislike_weight(cfg, args.out, weights=weights, log=log, resume=args.resume,
                                 overwrite=args.overwrite)
    if result is None:  # a rank other than 0 of a torchrun job: rank 0 reports
        return 0
    t = result["test"]
    print(strict_json({
        "out": str(args.out), "objective": result["objective"],
        "chosen_weight": result["chosen_weight"], "passed": result["passed"],
        "checkpoint": str(Path(args.out) / "best.pt"),
        "valid_minus_positive_only": {
            f"{trial['dislike_weight']:g}": [round(trial["minus_reference"][k], 4)
                                             for k in ("mean", "ci_low", "ci_high")]
            for trial in result["trials"]},
        "test": {k: t[k] for k in ("ndcg@10", "recall@10", "dislike_exposure@10") if k in t},
    }, indent=2))
    return 0
