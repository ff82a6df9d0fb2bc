"""``negrec evaluate``: offline metrics of a checkpoint."""

from __future__ import annotations

import argparse

from negrec.cli.data_cmd import (add_source_arguments, reject_source_options_without_source,
                                 spec_from_args)
from negrec.cli.options import at_least

DESCRIPTION = """Evaluate a checkpoint by full ranking on the validation or test events of its
own data (or of --data ...), split as in its training (negrec train --split), through the
checkpoint's own objective (input filter, feedback input). Prints JSON: metrics, 95%
bootstrap intervals and user counts.

--recommender pkg.module:factory (repeatable) evaluates any recommender (a callable taking the
item catalogue and returning an object with recommend(items, feedback, k)) on --data (default:
the demo's simulated log), split by --split-kind; it is ranked by its top-K list (K the largest
--k): metrics at cut-offs <= K are exact, MRR is MRR@K ("ranking": "top-K").

examples:
  negrec evaluate --checkpoint runs/ntr/best.pt
  negrec evaluate --checkpoint runs/ntr/best.pt --split valid --keep-history-items
  negrec evaluate --recommender mypkg.models:make_recommender --data movielens --path ml-100k"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="a best.pt / last.pt written by negrec train")
    p.add_argument("--recommender", action="append", default=[], metavar="MODULE:FACTORY",
                   help="repeatable; pkg.module:factory returning a recommender")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("--keep-history-items", action="store_true",
                   help="do not exclude the user's history items from the ranking")
    p.add_argument("--k", type=at_least(1), action="append", help="cut-offs (default 10 and 20)")
    p.add_argument("--bootstrap", type=at_least(0), default=1000,
                   help="bootstrap resamples for the intervals (0: none)")
    p.add_argument("--out", help="also write the JSON here")
    add_source_arguments(p, required=False)


def run(args: argparse.Namespace) -> int:
    from negrec.cli.options import CLIError
    from negrec.data.split import make_split
    from negrec.eval.metrics import evaluate
    from negrec.eval.recommender import from_checkpoint
    from negrec.experiments.data import load_data
    from negrec.files import strict_json, write_json
    from negrec.train.checkpoint import load_checkpoint
    from negrec.train.resume import stored_config
    from negrec.experiments.recommenders import build_recommenders, simulated_world_spec
    from negrec.train.config import TrainConfig

    reject_source_options_without_source(args, "negrec evaluate")
    if not args.checkpoint and not args.recommender:
        raise CLIError("give --checkpoint and/or --recommender (what to evaluate)")
    ks = tuple(args.k or (10, 20))
    out: dict = {}
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint)
        spec = spec_from_args(args) if args.source is not None else stored_config(ck).data
        log = load_data(spec)
        if log.num_items != ck.model.num_items:
            raise CLIError(f"the data has {log.num_items} items but the checkpoint was trained "
                           f"on {ck.model.num_items}: evaluate on the data it was trained on")
        split = make_split(log, stored_config(ck).split)  # the held-out events of its training
        held = split.test if args.split == "test" else split.valid
        res = evaluate(from_checkpoint(ck, exclude_history=not args.keep_history_items), held,
                       ks=ks, bootstrap=args.bootstrap)
        out = {"checkpoint": str(args.checkpoint), "objective": ck.objective.name,
               "split": args.split, **res.to_dict()}
    if args.recommender:
        if args.keep_history_items:
            raise CLIError("--keep-history-items is for --checkpoint: a recommender decides "
                           "itself what it excludes")
        spec = spec_from_args(args) if args.source is not None else simulated_world_spec()
        log = load_data(spec)
        split = make_split(log, TrainConfig.split)
        held = split.test if args.split == "test" else split.valid
        recs = build_recommenders(args.recommender, log.item_meta)
        out["recommenders"] = {name: {"split": args.split,
                                      **evaluate(rec, held, ks=ks, bootstrap=args.bootstrap).to_dict()}
                               for name, rec in recs.items()}
    if args.out:
        write_json(args.out, out)
    print(strict_json(out, indent=2))
    return 0
