"""``negrec data stats``: load a log and print its statistics as JSON; and the data-source
flags every command that reads a log shares (generated from
:class:`~negrec.train.data_spec.DataSpec`)."""

from __future__ import annotations

import argparse
import codecs
import shlex
import sys

from negrec.cli.flags import Flag, add_flags, flag_values, given_flags
from negrec.cli.options import CLIError
from negrec.files import strict_json

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

#: The data-source flags: one per DataSpec field (spelled --field-name), the simulated log's
#: size from its SimConfig, and --data as another name of --source.
SOURCE_FLAGS = (
    Flag("source", ("--source", "--data"), default=None),
    *(Flag(name) for name in (
        "path", "user_col", "item_col", "time_col", "feedback_col", "rating_col", "dwell_col",
        "feedback_map", "items_path", "item_id_col", "item_category_col", "item_creator_col",
        "delimiter", "encoding", "positive_min", "dislike_max", "genre_rule", "all_positive",
        "on_bad_rows")),
    Flag("sim.num_users", ("--sim-users",), dest="sim_users"),
    Flag("sim.events_per_user", ("--sim-events",), dest="sim_events"),
    Flag("sim_seed"),
)

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


#: Flags whose text the command line spells its own way, with the reader of that spelling
#: (applied after parsing, so that a bad value is a one-line error naming the flag).
SPELLINGS = {"delimiter": parse_delimiter, "feedback_map": parse_feedback_map}


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
    from negrec.train.data_spec import DataSpec

    from negrec.sim import PRESETS

    group = p.add_argument_group("data source")
    add_flags(group, DataSpec, SOURCE_FLAGS, defaults=True,
              required=("source",) if required else ())
    group.add_argument("--sim-preset", choices=tuple(PRESETS), default=None,
                       help="simulated: the world (negrec.sim.presets; default: 'default'); "
                            "--sim-users / --sim-events set its log's size")


def given_source_options(args: argparse.Namespace) -> list[str]:
    """The data-source flags given with a value other than their default, by name (``--data``
    for the source)."""
    from negrec.train.data_spec import DataSpec

    given = ["--data" if flag.key == "source" else flag.option_strings[0]
             for flag, _ in given_flags(args, DataSpec, SOURCE_FLAGS, defaults=True)]
    return given + (["--sim-preset"] if getattr(args, "sim_preset", None) else [])


def reject_source_options_without_source(args: argparse.Namespace, command: str) -> None:
    """Data-source options are read only with ``--data``/``--source``: without it they would be
    ignored, so they are refused."""
    given = given_source_options(args)
    if given and args.source is None:
        raise CLIError(f"{', '.join(given)} describe{'s' if len(given) == 1 else ''} a data source "
                       f"but --data is not given: {command} would ignore "
                       f"{'it' if len(given) == 1 else 'them'} (add --data SOURCE)")


def spec_from_args(args: argparse.Namespace):
    """The DataSpec the data-source options describe."""
    from pathlib import Path

    from negrec.sim import SimConfig, preset
    from negrec.train.data_spec import DataSpec

    if args.source in ("csv", "parquet") and (args.feedback_col is None) == (args.rating_col is None):
        raise CLIError("--source csv/parquet needs exactly one of --feedback-col and --rating-col")
    if args.source not in (None, "simulated") and not args.path:
        raise CLIError(f"--path is required for --source {args.source}")
    if args.path and not Path(args.path).exists():
        raise CLIError(f"--path {args.path}: no such file or folder")
    values = flag_values(args, SOURCE_FLAGS)
    for key, read in SPELLINGS.items():
        if values[key] is not None:
            values[key] = read(values[key])
    sim = {k.split(".", 1)[1]: values.pop(k) for k in list(values) if k.startswith("sim.")}
    if args.sim_preset is not None and args.source != "simulated":
        raise CLIError(f"--sim-preset describes a simulated world; got --source {args.source}")
    world = preset(args.sim_preset, **sim) if args.sim_preset else SimConfig(**sim)
    return DataSpec(**values, sim=world)


def load_and_report(spec, command: str):
    """The EventLog of ``spec``, its loader's one-line summary (drops, repairs, duplicates and
    other notes) printed to stderr as ``negrec COMMAND: data: ...``."""
    from negrec.experiments.data import load_data

    log = load_data(spec)
    if log.report is not None:
        print(f"negrec {command}: data: {log.report.summary()}", file=sys.stderr)
    return log


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="print a log's statistics as JSON",
                           description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(stats)
    stats.add_argument("--save", help="also save the loaded log as .npz here")


def run(args: argparse.Namespace) -> int:
    log = load_and_report(spec_from_args(args), args.command)
    if getattr(args, "save", None):
        log.save(args.save)
    print(strict_json(log.stats(), indent=2))
    return 0
