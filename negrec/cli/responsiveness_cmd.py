"""``negrec responsiveness``: counterfactual responsiveness (and closed-loop rates) of
checkpoints, with a report."""

from __future__ import annotations

import argparse

from negrec.cli.data_cmd import (add_source_arguments, reject_source_options_without_source,
                                 spec_from_args)
from negrec.cli.options import at_least

DESCRIPTION = """Measure how much each model backs off from similar items right after a dislike
(and a skip): counterfactual branching of histories, top-10 at the next step, share in the
branched item's cluster / creator, responsiveness = ratio of means - 1. Checkpoints of the same
objective are that model's training seeds: a report row pools them, with 95% intervals over the
seeds and the histories (give >= 3 seeds per objective). Every report has a placebo control
(input_ntr trained with the feedback codes shuffled across events; given with --control, or
trained here from the first input_ntr checkpoint's configuration, --train-controls seeds): a model's
figure counts as a response to the dislike only beyond the control's ("vs control"). An
action with no event in the model's training data (e.g. skip on MovieLens) is not measured.
Checkpoints trained on simulated data are measured on simulated histories (users consuming the
model's recommendations) and also run in closed loop; others on their data's training
histories (the branched item is the model's own top-1). Data without item clusters gets
clusters from item co-occurrence. Writes report.md / report.json / PNGs.

Any other recommender: --recommender pkg.module:factory (repeatable), a callable that takes the
item catalogue (negrec.data.ItemMeta: num_items, cluster, creator) and returns an object with
recommend(items, feedback, k) -> [n, k] int64 item ids (negrec.eval.recommender.Recommender).
Alone, it is measured on --data (its training histories) or, without --data, on the demo's
simulator (histories made by its own slates, then the closed loop), beside the baselines
(--baselines); with --checkpoint, in the first checkpoint's world. A row is named by the
recommender's `name` attribute, else the factory's dotted path.

examples:
  negrec responsiveness --checkpoint runs/ntr_s0/best.pt --checkpoint runs/ntr_s1/best.pt \\
      --checkpoint runs/ntr_s2/best.pt --out resp      # trains 3 placebo controls
  negrec responsiveness --checkpoint runs/ntr_s*/best.pt --control runs/placebo_s*/best.pt \\
      --out resp                                        # controls from negrec train --placebo
  negrec responsiveness --recommender mypkg.models:make_recommender --out resp  # simulator
  negrec responsiveness --recommender mypkg.models:make_recommender \\
      --data movielens --path ../shared/data/ml-100k --out resp_ml"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", default=[], nargs="+",
                   help="repeatable; checkpoints of one objective are its training seeds")
    p.add_argument("--recommender", action="append", default=[], metavar="MODULE:FACTORY",
                   help="repeatable; pkg.module:factory, a callable taking the item catalogue "
                        "and returning a recommender")
    p.add_argument("--baselines", default="auto",
                   help="comma-separated baselines (most_popular, item_knn, "
                        "item_knn+filter_disliked: negrec.eval.baselines.BASELINES), 'none', or "
                        "'auto' (default: all of them with --recommender, none otherwise)")
    p.add_argument("--control", action="append", default=[], nargs="+",
                   help="placebo checkpoints (negrec train --placebo ...); repeatable")
    p.add_argument("--train-controls", type=at_least(0), default=3, metavar="SEEDS",
                   help="without --control: placebo controls to train from the first "
                        "checkpoint's configuration into OUT/controls (default 3; 0: none, and "
                        "the report says its figures are not evidence)")
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
    add_source_arguments(p, required=False)


def parse_baselines(text: str, with_recommenders: bool) -> list[str]:
    """``--baselines``: names of :data:`negrec.eval.baselines.BASELINES`, ``none`` or ``auto``."""
    from negrec.cli.options import CLIError
    from negrec.eval.baselines import BASELINES

    if text == "auto":
        return list(BASELINES) if with_recommenders else []
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise CLIError(f"--baselines: unknown {', '.join(unknown)}; expected some of "
                       f"{', '.join(BASELINES)}, none or auto")
    return names


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
    from negrec.cli.options import CLIError
    from negrec.eval.report import explain, markdown_table, write_report
    from negrec.experiments.measure import MeasureSizes
    from negrec.experiments.recommenders import build_recommenders, outside_report, world_of_spec
    from negrec.experiments.responsiveness import responsiveness_report

    sizes = MeasureSizes(histories=args.histories, steps=args.steps,
                         actions=parse_actions(args.actions), loop_users=args.loop_users,
                         loop_steps=args.loop_steps, loop_warmup=args.loop_warmup,
                         clusters=args.clusters, bootstrap=args.bootstrap, seed=args.seed)
    checkpoints = [p for group in args.checkpoint for p in group]
    controls = [p for group in args.control for p in group]
    if not checkpoints and not args.recommender:
        raise CLIError("give --checkpoint and/or --recommender (what to measure)")
    baselines = parse_baselines(args.baselines, bool(args.recommender))
    reject_source_options_without_source(args, "negrec responsiveness")
    if checkpoints:
        if args.source is not None:
            raise CLIError("--data is for --recommender alone: checkpoints are measured on "
                           "their own data (and recommenders beside them, in that world)")
        report = responsiveness_report(checkpoints, sizes, controls=controls,
                                       train_control_seeds=args.train_controls, out_dir=args.out,
                                       progress=True, recommenders=args.recommender,
                                       baselines=baselines)
    else:
        world = world_of_spec(spec_from_args(args) if args.source is not None else None)
        report = outside_report(build_recommenders(args.recommender, world.item_meta), world,
                                sizes, baseline_names=baselines, progress=True)
    paths = write_report(report, args.out)
    print(markdown_table(report))
    print()
    print(explain(report))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"\nreport: {paths['markdown']}")
    return 0
