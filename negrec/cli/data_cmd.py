"""``negrec data stats``: load a log and print its statistics as JSON."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """Load an event log and print its statistics as JSON: users, items, events, the
event count per feedback type (positive, neutral, skip, dislike), sequence-length percentiles
and what the loader dropped or repaired.

examples:
  negrec data stats --source movielens --path ../shared/data/ml-100k
  negrec data stats --source csv --path events.csv --user-col uid --item-col iid \\
      --time-col ts --feedback-col action --feedback-map like=positive,hate=dislike,skip=skip
  negrec data stats --source simulated"""


def add_source_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The data-source options shared by every command that reads a log."""
    g = p.add_argument_group("data source")
    g.add_argument("--source", "--data", dest="source", required=required,
                   choices=["movielens", "kuairand", "csv", "parquet", "npz", "simulated"],
                   help="kind of log")
    g.add_argument("--path", help="folder (movielens, kuairand) or file (csv, parquet, npz)")
    g.add_argument("--user-col", default="user", help="csv/parquet: user column")
    g.add_argument("--item-col", default="item", help="csv/parquet: item column")
    g.add_argument("--time-col", default="timestamp", help="csv/parquet: timestamp column")
    g.add_argument("--feedback-col", default=None, help="csv/parquet: feedback label column")
    g.add_argument("--rating-col", default=None, help="csv/parquet: numeric rating column "
                   "(mapped with --positive-min / --dislike-max)")
    g.add_argument("--dwell-col", default=None, help="csv/parquet: dwell/strength column")
    g.add_argument("--feedback-map", default=None,
                   help="csv/parquet: raw label -> feedback, e.g. 'like=positive,hate=dislike'")
    g.add_argument("--items-path", default=None, help="csv/parquet: item metadata file")
    g.add_argument("--item-category-col", default="category")
    g.add_argument("--item-creator-col", default=None)
    g.add_argument("--delimiter", default=",")
    g.add_argument("--positive-min", type=float, default=4.0,
                   help="ratings >= this are positive (default 4)")
    g.add_argument("--dislike-max", type=float, default=2.0,
                   help="ratings <= this are dislikes (default 2)")
    g.add_argument("--all-positive", action="store_true",
                   help="treat every event as a positive interaction (RecBole's convention)")
    g.add_argument("--on-bad-rows", choices=["error", "skip"], default="error")
    g.add_argument("--sim-users", type=int, default=None, help="simulated: number of users")
    g.add_argument("--sim-events", type=int, default=None, help="simulated: events per user")
    g.add_argument("--sim-seed", type=int, default=0, help="simulated: world seed")


def spec_from_args(args: argparse.Namespace, base=None):
    """The DataSpec described by the data-source options (over ``base``, if given)."""
    from dataclasses import replace

    from negrec.cli import CLIError
    from negrec.data.spec import DataSpec

    fmap = None
    if args.feedback_map:
        try:
            fmap = dict(kv.split("=", 1) for kv in args.feedback_map.split(","))
        except ValueError:
            raise CLIError(f"--feedback-map must look like 'like=positive,hate=dislike'; got "
                           f"{args.feedback_map!r}") from None
    if args.source in ("csv", "parquet") and (args.feedback_col is None) == (args.rating_col is None):
        raise CLIError("--source csv/parquet needs exactly one of --feedback-col and --rating-col")
    if args.source not in (None, "simulated") and not args.path:
        raise CLIError(f"--path is required for --source {args.source}")
    if args.path and not __import__("pathlib").Path(args.path).exists():
        raise CLIError(f"--path {args.path}: no such file or folder")
    values = dict(
        source=args.source, path=args.path, user_col=args.user_col, item_col=args.item_col,
        time_col=args.time_col, feedback_col=args.feedback_col, rating_col=args.rating_col,
        dwell_col=args.dwell_col, feedback_map=fmap, items_path=args.items_path,
        item_category_col=args.item_category_col, item_creator_col=args.item_creator_col,
        delimiter=args.delimiter, positive_min=args.positive_min, dislike_max=args.dislike_max,
        all_positive=args.all_positive, on_bad_rows=args.on_bad_rows, sim_users=args.sim_users,
        sim_events=args.sim_events, sim_seed=args.sim_seed)
    if base is None:
        return DataSpec(**values)
    given = {k: v for k, v in values.items() if v is not None and v != DataSpec.__dataclass_fields__[k].default}
    return replace(base, **given) if given else base


def load_from_args(args: argparse.Namespace):
    """The EventLog described by the data-source options."""
    from negrec.data.spec import load_data

    return load_data(spec_from_args(args))


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="print a log's statistics as JSON",
                           description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(stats)
    stats.add_argument("--save", help="also save the loaded log as .npz here")


def run(args: argparse.Namespace) -> int:
    log = load_from_args(args)
    if getattr(args, "save", None):
        log.save(args.save)
    print(json.dumps(log.stats(), indent=2))
    return 0
