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
    from negrec.cli import CLIError
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
    import dataclasses
    from pathlib import Path

    import numpy as np

    from negrec.cli import CLIError
    from negrec.cli.pipeline import stored_config
    from negrec.data.spec import load_data
    from negrec.data.split import leave_one_out
    from negrec.eval.closed_loop import closed_loop
    from negrec.eval.counterfactual import (cooccurrence_clusters, log_histories, responsiveness,
                                            simulated_histories)
    from negrec.eval.report import markdown_table, write_report
    from negrec.models.checkpoint import load_checkpoint

    actions = parse_actions(args.actions)
    report = {"title": "negrec responsiveness report", "description": (
        "Counterfactual responsiveness (dislike vs positive branch) with 95% paired bootstrap "
        "intervals; closed-loop rates for simulated data."), "objectives": {}}
    for path in args.checkpoint:
        ck = load_checkpoint(path)
        name = ck.objective.name
        if name in report["objectives"]:
            name = f"{name} ({Path(path).parent.name})"
        spec = stored_config(ck).data
        entry = {}
        meta = ck.item_meta
        if spec.source == "simulated":
            from negrec.sim import SimConfig, Simulator

            sim = Simulator(SimConfig(**spec.sim_config), seed=spec.sim_seed)
            if sim.config.num_items != ck.model.num_items:
                raise CLIError(f"{path}: the checkpoint's simulator has {sim.config.num_items} "
                               f"items but the model {ck.model.num_items}")
            hist, branched, _ = simulated_histories(ck.model, ck.objective, sim,
                                                    num_users=args.histories, steps=args.steps,
                                                    seed=10_000 + args.seed, progress=True)
            loop = closed_loop(ck.model, ck.objective, sim, num_users=args.loop_users,
                               steps=args.loop_steps, seed=20_000 + args.seed,
                               warmup_events=args.loop_warmup,
                               bootstrap=args.bootstrap, progress=True)
            entry["closed_loop"] = loop.to_dict()
        else:
            log = load_data(spec)
            split = leave_one_out(log)
            rng = np.random.default_rng(args.seed)
            users = np.arange(split.train.num_users)
            if len(users) > args.histories:
                users = np.sort(rng.choice(users, args.histories, replace=False))
            hist, branched, _ = log_histories(ck.model, ck.objective, split.train, users)
            if (meta.cluster < 0).all():
                meta = dataclasses.replace(meta, cluster=cooccurrence_clusters(log, args.clusters),
                                           cluster_names=[f"cooc{k}" for k in range(args.clusters)])
                entry["clusters"] = f"{args.clusters} co-occurrence clusters (the data has none)"
        resp = responsiveness(ck.model, ck.objective, hist, branched, meta, actions=actions,
                              bootstrap=args.bootstrap, seed=args.seed, progress=True)
        rd = resp.to_dict()
        entry.update(responsiveness=rd["responsiveness"], repeated_dislikes=rd["repeated_dislikes"],
                     mean_similarity=rd["mean_similarity"], checkpoint=str(path),
                     num_histories=rd["num_histories"])
        report["objectives"][name] = entry
    report["responsiveness"] = {n: {k: o["responsiveness"]["cluster"]["dislike"][k]
                                    for k in ("mean", "ci_low", "ci_high")}
                                for n, o in report["objectives"].items()}
    paths = write_report(report, args.out)
    print(markdown_table(report))
    print(f"\nreport: {paths['markdown']}")
    return 0
