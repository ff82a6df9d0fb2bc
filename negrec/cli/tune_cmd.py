"""``negrec tune``: choose the dislike weight of the not-to-recommend term on validation events
(negrec.experiments.tuning) and keep the chosen run."""

from __future__ import annotations

import argparse

from negrec.cli import train_cmd

DESCRIPTION = """Choose the not-to-recommend term's dislike weight for this log on its
validation events. Trains positive_only (the reference) and --objective (default input_ntr) at
every weight of --dislike-weights, with the same configuration otherwise (as negrec train
would: --config, --set and the data options), and keeps the largest weight whose validation
NDCG@10 is not significantly below positive_only's and not possibly more than 5% below it
(paired 95% bootstrap interval over the validation users); when none passes, the smallest,
said so ("passed": false). Costs one training per weight plus the reference. Test events are
never used to choose.

Writes under --out: one run folder per training (positive_only/, dislike_20/, ...), each as
negrec train writes it; tune_plan.json (the configuration and weights); tune.json (every
weight's validation figures, the choice, the chosen run's test metrics); chosen -> the chosen
run's folder, and best.pt, config.yaml and metrics.json -> its files (evaluate it, recommend with it, or
measure it: negrec responsiveness --checkpoint OUT/best.pt). negrec train does the same by
default (objective.weights.dislike auto) with the default grid. docs/generalization.md says
why the weight is chosen per log.

examples:
  negrec tune --data movielens --path ../shared/data/ml-100k --out runs/tune
  negrec tune --data simulated --sim-preset mild_users --dislike-weights 10,30,100 --out runs/t
  negrec tune --out runs/tune --resume        # continue a killed tuning run"""


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 20,60,100; got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from negrec.experiments.tuning import DISLIKE_WEIGHT_GRID

    train_cmd.add_arguments(p, resume_help="continue the tuning run in OUT (tune_plan.json): "
                                           "finished runs are kept, an interrupted one resumes")
    p.add_argument("--dislike-weights", type=_weights, default=None,
                   help="the dislike weights tried, comma-separated (default "
                        f"{','.join(f'{w:g}' for w in DISLIKE_WEIGHT_GRID)})")


def run(args: argparse.Namespace) -> int:
    return train_cmd.tune(args, args.dislike_weights)
