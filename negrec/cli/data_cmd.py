"""``negrec data stats``: load a log and print its statistics as JSON."""

from __future__ import annotations

import argparse
import codecs
import json
import shlex
import sys

DESCRIPTION = """Load an event log and print its statistics as JSON: users, items, events, the
event count per feedback type (positive, neutral, skip, dislike), sequence-length percentiles
and what the loader dropped, repaired or noted (duplicate events, events out of time order);
the loader's one-line summary also goes to stderr.

examples:
  negrec data stats --source movielens --path ../shared/data/ml-100k
  negrec data stats --source csv --path events.csv --user-col uid --item-col iid \\
      --time-col ts --feedback-col action --feedback-map like=positive,hate=dislike,skip=skip
  negrec data stats --source csv --path events.tsv --delimiter '\\t' --feedback-col label \\
      --feedback-map 1=positive,0=skip
  negrec data stats --source simulated"""

#: --delimiter words (any case) and the characters they stand for.
DELIMITER_WORDS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " ",
                   "colon": ":", "backslash": "\\"}

#: Loader keyword -> the flag that sets it, to re-spell the options loader errors advise.
LOADER_FLAGS = {"on_bad_rows": "--on-bad-rows", "feedback_values": "--feedback-map",
                "encoding": "--encoding"}


def parse_delimiter(text: str) -> str:
    """--delimiter as typed -> the delimiter: a word (tab, comma, semicolon, pipe, space, colon,
    backslash), or text whose backslash escapes are decoded (``\\t`` tab, ``\\x1f``,
    ``\\u0009``; ``\\\\t``, as some shells pass a doubled backslash, is a tab too), else the
    text itself."""
    from negrec.cli import CLIError

    word = DELIMITER_WORDS.get(text.strip().lower())
    if word is not None:
        return word
    value = text
    for _ in range(2):  # a second pass for a doubled backslash (\\t -> \t -> tab)
        if "\\" not in value:
            break
        try:
            value = codecs.decode(value.encode("ascii"), "unicode_escape")
        except (UnicodeError, ValueError):
            raise CLIError(f"--delimiter {text!r}: not a valid escape sequence (use e.g. '\\t' "
                           f"or a word: {', '.join(DELIMITER_WORDS)})") from None
    if not value or ("\\" in value and value != "\\") or any(c in value for c in '\r\n"'):
        raise CLIError(f"--delimiter {text!r}: expected a character, an escape such as '\\t' or "
                       f"a word ({', '.join(DELIMITER_WORDS)}); got {value!r}")
    return value


def parse_feedback_map(text: str) -> dict[str, str]:
    """``'like=positive, hate=dislike, *=neutral'`` -> ``{'like': 'positive', ...}``."""
    from negrec.cli import CLIError

    entries = [kv for kv in text.split(",") if kv.strip()]
    pairs = [kv.split("=", 1) for kv in entries]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise CLIError(f"--feedback-map must look like 'like=positive,hate=dislike' (and "
                       f"optionally '*=NAME' for every other label); got {text!r}")
    fmap: dict[str, str] = {}
    for label, name in pairs:
        if fmap.setdefault(label.strip(), name.strip()) != name.strip():
            raise CLIError(f"--feedback-map: label {label.strip()!r} is given twice; got {text!r}")
    return fmap


def cli_spelling(option) -> str:
    """A loader :class:`~negrec.data.loaders.Option` as its command-line flag."""
    flag = LOADER_FLAGS.get(option.name)
    if flag is None:
        return str(option)
    value = option.value
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    return f"{flag} {shlex.quote(str(value))}"


def cli_message(exc: BaseException) -> str:
    """The message of an error, with the options a data error advises spelled as flags."""
    from negrec.data.loaders import DataFormatError

    return exc.spelled(cli_spelling) if isinstance(exc, DataFormatError) else str(exc)


def add_source_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The data-source options shared by every command that reads a log."""
    g = p.add_argument_group("data source")
    g.add_argument("--source", "--data", dest="source", required=required,
                   choices=["movielens", "kuairand", "csv", "parquet", "npz", "simulated"],
                   help="kind of log")
    g.add_argument("--path", help="folder (movielens, kuairand) or file (csv, parquet, npz)")
    g.add_argument("--user-col", default="user", help="csv/parquet: user column")
    g.add_argument("--item-col", default="item", help="csv/parquet: item column")
    g.add_argument("--time-col", default="timestamp",
                   help="csv/parquet: timestamp column: integers (kept exactly, any unit), "
                   "decimals (floored to whole units, counted in the load report) or ISO-8601 "
                   "date-times such as 2024-05-01T12:30:00+02:00 (-> seconds since 1970-01-01 "
                   "UTC; without a time zone: UTC); one kind per column")
    g.add_argument("--feedback-col", default=None, help="csv/parquet: feedback label column")
    g.add_argument("--rating-col", default=None, help="csv/parquet: numeric rating column "
                   "(mapped with --positive-min / --dislike-max)")
    g.add_argument("--dwell-col", default=None, help="csv/parquet: dwell/strength column")
    g.add_argument("--feedback-map", default=None,
                   help="csv/parquet: raw label -> feedback name (positive, neutral, skip, "
                   "dislike), e.g. 'like=positive,hate=dislike'; '*=NAME' maps every other "
                   "label. Without it labels must be feedback names: numbers such as 1/0 are "
                   "never read as feedback codes")
    g.add_argument("--items-path", default=None, help="csv/parquet: item metadata file")
    g.add_argument("--item-id-col", default="item",
                   help="csv/parquet: the --items-path file's item id column (default item)")
    g.add_argument("--item-category-col", default="category",
                   help="csv/parquet: the --items-path file's category column")
    g.add_argument("--item-creator-col", default=None,
                   help="csv/parquet: the --items-path file's creator column")
    g.add_argument("--delimiter", default=",",
                   help="csv: field delimiter (default ','): a character, a word (tab, comma, "
                   "semicolon, pipe, space, colon, backslash) or a backslash escape such as "
                   "'\\t'")
    g.add_argument("--encoding", default="utf-8", help="csv: text encoding (default utf-8)")
    g.add_argument("--positive-min", type=float, default=4.0,
                   help="ratings >= this are positive (default 4)")
    g.add_argument("--dislike-max", type=float, default=2.0,
                   help="ratings <= this are dislikes (default 2)")
    g.add_argument("--all-positive", action="store_true",
                   help="treat every event as a positive interaction (RecBole's convention)")
    g.add_argument("--on-bad-rows", choices=["error", "skip"], default="error",
                   help="error (default): stop at the first bad row, naming file and line; "
                   "skip: drop bad rows and count them by reason")
    g.add_argument("--sim-users", type=int, default=None, help="simulated: number of users")
    g.add_argument("--sim-events", type=int, default=None, help="simulated: events per user")
    g.add_argument("--sim-seed", type=int, default=0, help="simulated: world seed")


def spec_from_args(args: argparse.Namespace, base=None):
    """The DataSpec described by the data-source options (over ``base``, if given)."""
    from dataclasses import replace

    from negrec.cli import CLIError
    from negrec.data.spec import DataSpec

    fmap = parse_feedback_map(args.feedback_map) if args.feedback_map else None
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
        item_id_col=args.item_id_col, item_category_col=args.item_category_col,
        item_creator_col=args.item_creator_col, delimiter=parse_delimiter(args.delimiter),
        encoding=args.encoding, positive_min=args.positive_min, dislike_max=args.dislike_max,
        all_positive=args.all_positive, on_bad_rows=args.on_bad_rows, sim_users=args.sim_users,
        sim_events=args.sim_events, sim_seed=args.sim_seed)
    if base is None:
        return DataSpec(**values)
    given = {k: v for k, v in values.items() if v is not None and v != DataSpec.__dataclass_fields__[k].default}
    return replace(base, **given) if given else base


def load_and_report(spec, command: str):
    """The EventLog of ``spec``, its loader's one-line summary (drops, repairs, duplicates and
    other notes) printed to stderr as ``negrec COMMAND: data: ...``."""
    from negrec.data.spec import load_data

    log = load_data(spec)
    if log.report is not None:
        print(f"negrec {command}: data: {log.report.summary()}", file=sys.stderr)
    return log


def load_from_args(args: argparse.Namespace):
    """The EventLog described by the data-source options (summary line on stderr)."""
    return load_and_report(spec_from_args(args), args.command)


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
