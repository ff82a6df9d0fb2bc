"""The data section of a run's configuration: where the events come from and how raw values
become feedback. Saved with every run and checkpoint; the application turns it into an event
log (:func:`negrec.experiments.data.load_data`), and the command line's data-source flags are
generated from its fields (:mod:`negrec.cli.flags`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from negrec.data.loaders import ColumnMap, ItemColumns, RatingMapping, source_names
from negrec.errors import UserError
from negrec.sim import SimConfig

__all__ = ["SIMULATED", "DataSpec", "sources"]

SIMULATED = "simulated"  # the embedded simulator (negrec.sim); every other source reads a path


def sources() -> tuple[str, ...]:
    """Every data source: the loaders' (``negrec.data.loaders.source_names``) and the
    simulator."""
    return (*source_names(), SIMULATED)

# The loaders' own defaults, declared once by the loaders.
_COLUMNS, _ITEMS, _RATINGS = ColumnMap(feedback="feedback"), ItemColumns(), RatingMapping()

_TIME_HELP = ("csv/parquet: timestamp column: integers (kept exactly, any unit), decimals "
              "(floored to whole units, counted in the load report) or ISO-8601 date-times such "
              "as 2024-05-01T12:30:00+02:00 (-> seconds since 1970-01-01 UTC; without a time "
              "zone: UTC); one kind per column")
_MAP_HELP = ("csv/parquet: raw label -> feedback name (positive, neutral, skip, dislike), e.g. "
             "'like=positive,hate=dislike'; '*=NAME' maps every other label. Without it labels "
             "must be feedback names: numbers such as 1/0 are never read as feedback codes")
_DELIMITER_HELP = ("csv: field delimiter (default ','): a character, a word (tab, comma, "
                   "semicolon, pipe, space, colon, backslash) or a backslash escape such as '\\t'")


def _doc(text: str, **more) -> dict:
    return {"help": text, **more}


@dataclass
class DataSpec:
    """Where the events come from and how raw values become feedback.

    ``path`` and ``items_path`` are made absolute when the spec is created (relative to the
    working directory then), so a spec saved in a checkpoint loads from anywhere. ``sim`` is the
    simulated world and log (``num_users`` x ``events_per_user``), ``sim_seed`` its seed.
    """

    source: str = field(default=SIMULATED, metadata=_doc("kind of log", choices=sources))
    path: str | None = field(default=None, metadata=_doc(
        "folder (movielens, kuairand) or file (csv, parquet, npz)"))
    user_col: str = field(default=_COLUMNS.user, metadata=_doc("csv/parquet: user column"))
    item_col: str = field(default=_COLUMNS.item, metadata=_doc("csv/parquet: item column"))
    time_col: str = field(default=_COLUMNS.timestamp, metadata=_doc(_TIME_HELP))
    feedback_col: str | None = field(default=None, metadata=_doc(
        "csv/parquet: feedback label column"))
    rating_col: str | None = field(default=None, metadata=_doc(
        "csv/parquet: numeric rating column (mapped with --positive-min / --dislike-max)"))
    dwell_col: str | None = field(default=None, metadata=_doc(
        "csv/parquet: dwell/strength column"))
    feedback_map: dict[str, str] | None = field(default=None, metadata=_doc(_MAP_HELP))
    items_path: str | None = field(default=None, metadata=_doc(
        "csv/parquet: item metadata file"))
    item_id_col: str = field(default=_ITEMS.item, metadata=_doc(
        "csv/parquet: the --items-path file's item id column (default item)"))
    item_category_col: str | None = field(default=_ITEMS.category, metadata=_doc(
        "csv/parquet: the --items-path file's category column"))
    item_creator_col: str | None = field(default=_ITEMS.creator, metadata=_doc(
        "csv/parquet: the --items-path file's creator column"))
    delimiter: str = field(default=",", metadata=_doc(_DELIMITER_HELP))
    encoding: str = field(default="utf-8", metadata=_doc("csv: text encoding (default utf-8)"))
    positive_min: float = field(default=_RATINGS.positive_min, metadata=_doc(
        "ratings >= this are positive (default 4)"))
    dislike_max: float = field(default=_RATINGS.dislike_max, metadata=_doc(
        "ratings <= this are dislikes (default 2)"))
    genre_rule: str = field(default="rarest", metadata=_doc(
        "movielens: the genre that is a movie's cluster: its rarest (default) or its first",
        choices=("rarest", "first")))
    all_positive: bool = field(default=False, metadata=_doc(
        "treat every event as a positive interaction (RecBole's convention)"))
    on_bad_rows: str = field(default="error", metadata=_doc(
        "error (default): stop at the first bad row, naming file and line; skip: drop bad rows "
        "and count them by reason", choices=("error", "skip")))
    sim: SimConfig = field(default_factory=SimConfig)
    sim_seed: int = field(default=0, metadata=_doc("simulated: world seed"))

    def __post_init__(self) -> None:
        if self.source not in sources():
            raise UserError(f"data source must be one of {', '.join(sources())}; got "
                            f"{self.source!r}")
        if self.source != SIMULATED and not self.path:
            raise UserError(f"data source {self.source!r} needs a path")
        self.path = _absolute(self.path)
        self.items_path = _absolute(self.items_path)

    def to_dict(self) -> dict:
        return asdict(self)


def _absolute(path: str | None) -> str | None:
    """``path`` made absolute against the working directory (``~`` expanded, ``..`` folded;
    symbolic links kept as they are)."""
    return None if path is None else os.path.abspath(os.path.expanduser(str(path)))
