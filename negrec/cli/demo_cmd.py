"""``negrec demo``: the main job (simulate, train four objectives, measure, report)."""

from __future__ import annotations

import argparse

from negrec.cli.options import at_least

DESCRIPTION = """Run the whole story on the embedded simulator: generate a log with likes,
skips and dislikes, train the four objectives (positive_only, input_only, input_ntr,
filter_history), evaluate them offline, measure their counterfactual responsiveness to a
dislike and their closed-loop dislike rates with simulated users, and write a report folder
(report.md, report.json, PNG plots) whose summary table is also printed beside the reference
paper's figures. 5 models (the four objectives and a placebo control) x 3 training seeds;
README gives measured times (tens of minutes on 2 CPU cores; --seeds 1 is three times faster).

examples:
  negrec demo --out demo_report
  negrec demo --quick --out /tmp/demo
  negrec demo --full-size --out demo_full     # the paper's 2,000 simulated histories"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_report", help="report folder (default: demo_report)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a reduced run (smaller log and fewer histories)")
    size.add_argument("--full-size", action="store_true",
                      help="2,000 simulated histories and closed-loop users (longer)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="seed of the simulated world and the first training seed")
    p.add_argument("--seeds", type=at_least(1), default=None,
                   help="training seeds per objective and for the placebo control (default 3: "
                        "the intervals then cover seed-to-seed variation)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the training runs of an earlier demo in the same folder")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from negrec.experiments.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick() if args.quick else DemoConfig.full_size() if args.full_size else DemoConfig()
    cfg.seed = args.seed
    if args.seeds is not None:
        cfg.seeds = args.seeds
    cfg.progress = not args.no_progress
    run_demo(cfg, args.out, overwrite=args.overwrite)
    return 0
