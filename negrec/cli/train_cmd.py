"""``negrec train``: train a model and evaluate it (metrics.json, checkpoints, config)."""

from __future__ import annotations

import argparse

from negrec.cli.data_cmd import add_source_arguments, load_and_report, spec_from_args

DESCRIPTION = """Train a sequential recommender with one of the objectives (positive_only,
input_only, input_ntr, filter_history), with early stopping on validation NDCG@10, then
evaluate the best checkpoint. Writes under --out: best.pt, last.pt, config.yaml (the full
resolved config), metrics.csv (training curve), metrics.json (validation and test metrics:
ndcg@10, recall@10, mrr, dislike_exposure@10, hr_gap@10, with 95% intervals and user counts).

examples:
  negrec train --data movielens --path ../shared/data/ml-100k --objective input_ntr --out runs/ntr
  negrec train --config my.yaml --set optim.lr=3e-3 --set model.kind=gru --out runs/gru
  negrec train --data simulated --epochs 5 --out runs/sim
  negrec train --out runs/ntr --resume        # continue a killed run"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (defaults for anything it does not set)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--objective", choices=["positive_only", "input_only", "input_ntr", "filter_history"])
    p.add_argument("--model", dest="model_kind", choices=["sasrec", "gru"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--max-minutes", type=float, help="training-time budget")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr=3e-3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_source_arguments(p, required=False)


def build_config(args: argparse.Namespace):
    from negrec.train.config import apply_overrides, load_config

    cfg = load_config(args.config)
    if args.source is not None:
        cfg.data = spec_from_args(args)
    sets = list(args.set)
    for flag, key in (("objective", "objective"), ("model_kind", "model.kind"), ("epochs", "epochs"),
                      ("seed", "seed"), ("device", "device"), ("max_minutes", "max_minutes")):
        value = getattr(args, flag)
        if value is not None:
            sets.insert(0, f"{key}={value}")
    if args.no_progress:
        sets.append("progress=false")
    return apply_overrides(cfg, sets)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from negrec.cli import CLIError
    from negrec.cli.pipeline import train_and_evaluate

    if args.resume:
        from negrec.train.config import load_config

        saved = Path(args.out) / "config.yaml"
        if not saved.exists():
            raise CLIError(f"--resume: {saved} not found (nothing to resume in {args.out})")
        cfg = load_config(saved)
    else:
        cfg = build_config(args)
    log = load_and_report(cfg.data, "train")  # the loader's summary line on stderr
    metrics = train_and_evaluate(cfg, args.out, log=log, resume=args.resume)
    t = metrics["test"]
    summary = {k: t[k] for k in ("ndcg@10", "recall@10", "mrr", "dislike_exposure@10",
                                 "positive_users", "dislike_users") if k in t}
    print(json.dumps({"out": str(args.out), "objective": cfg.objective, "test": summary,
                      "train_seconds": round(metrics["train"]["train_seconds"], 1),
                      "targets_per_s": round(metrics["train"]["targets_per_s"])}, indent=2))
    return 0
