"""``negrec responsiveness``: counterfactual responsiveness (and closed-loop rates) of
checkpoints, with a report."""

from __future__ import annotations

import argparse

from negrec.cli.options import at_least

DESCRIPTION = """Measure how much each checkpoint backs off from similar items right after a
dislike (and a skip): counterfactual branching of histories, top-10 at the next step, share in
the branched item's cluster / creator, responsiveness = ratio of means - 1 with a paired
bootstrap 95% interval. Checkpoints trained on simulated data are measured on simulated
histories (users consuming the model's recommendations) and also run in closed loop; others on
their data's training histories (the branched item is the model's own top-1). Data without
item clusters gets clusters from item co-occurrence. Writes report.md / report.json / PNGs.

examples:
  negrec responsiveness --checkpoint runs/po/best.pt --checkpoint runs/ntr/best.pt --out resp
  negrec responsiveness --checkpoint runs/ml_ntr/best.pt --histories 943 --out resp_ml"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", required=True, help="repeatable")
    p.add_argument("--out", default="responsiveness_report")
    p.add_argument("--histories", type=at_least(1), default=1000,
                   help="simulated histories (or real users sampled) per checkpoint")
    p.add_argument("--steps", type=at_least(1), default=49, help="simulated items consumed before the branch")
    p.add_argument("--actions", default="dislike,skip", help="feedback types compared with positive")
    p.add_argument("--loop-users", type=at_least(1), default=500, help="closed-loop users (simulated data)")
    p.add_argument("--loop-steps", type=at_least(1), default=50)
    p.add_argument("--loop-warmup", type=at_least(0), default=20,
                   help="logged events each closed-loop user has before the model takes over "
                        "(0: cold start)")
    p.add_argument("--clusters", type=at_least(1), default=20,
                   help="co-occurrence clusters when the data has none")
    p.add_argument("--bootstrap", type=at_least(0), default=1000)
    p.add_argument("--seed", type=at_least(0), default=0)


def parse_actions(text: str) -> list[str]:
    """``--actions``: feedback types other than positive (checked before any work)."""
    from negrec.cli.options import CLIError
    from negrec.data.feedback import Feedback, parse_feedback

    actions = [a.strip() for a in text.split(",") if a.strip()]
    if not actions:
        raise CLIError(f"--actions must name feedback types (dislike, skip, neutral); got {text!r}")
    for a in actions:
        try:
            code = parse_feedback(a)
        except ValueError as exc:
            raise CLIError(f"--actions: {exc}") from None
        if code in (Feedback.POSITIVE, Feedback.PAD):
            raise CLIError(f"--actions: {a!r} cannot be compared with the positive branch; give "
                           "dislike, skip or neutral")
    return actions


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from negrec.eval.report import markdown_table, responsiveness_summary, write_report
    from negrec.experiments.measure import MeasureSizes, measure, world_of
    from negrec.train.checkpoint import load_checkpoint
    from negrec.train.resume import stored_config

    sizes = MeasureSizes(histories=args.histories, steps=args.steps,
                         actions=parse_actions(args.actions), loop_users=args.loop_users,
                         loop_steps=args.loop_steps, loop_warmup=args.loop_warmup,
                         clusters=args.clusters, bootstrap=args.bootstrap, seed=args.seed)
    report = {"title": "negrec responsiveness report", "description": (
        "Counterfactual responsiveness (dislike vs positive branch) with 95% paired bootstrap "
        "intervals; closed-loop rates for simulated data."), "objectives": {}}
    for path in args.checkpoint:
        ck = load_checkpoint(path)
        name = ck.objective.name
        if name in report["objectives"]:
            name = f"{name} ({Path(path).parent.name})"
        world = world_of(stored_config(ck).data, ck.model.num_items, str(path))
        entry = measure(ck, sizes, world, progress=True).entry
        report["objectives"][name] = {**entry, "checkpoint": str(path)}
    report["responsiveness"] = responsiveness_summary(report["objectives"])
    paths = write_report(report, args.out)
    print(markdown_table(report))
    print(f"\nreport: {paths['markdown']}")
    return 0
