"""A serialisable description of where a log comes from (saved with every run and checkpoint)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from negrec.data.log import EventLog
from negrec.errors import UserError

__all__ = ["DataSpec", "load_data"]

SOURCES = ("movielens", "kuairand", "csv", "parquet", "npz", "simulated")


@dataclass
class DataSpec:
    """Where the events come from and how raw values become feedback.

    ``source``: movielens | kuairand | csv | parquet | npz (a saved EventLog) | simulated.
    ``path`` and ``items_path`` are made absolute when the spec is created (relative to the
    working directory then), so a spec saved in a checkpoint loads from anywhere.
    csv/parquet use the column options (``item_id_col``: the items file's id column;
    ``feedback_map``: label -> feedback name, ``"*"`` for every other label; ``delimiter``: the
    character itself; ``encoding``: of csv files); ratings (MovieLens, or ``rating_col``) map to
    feedback with ``positive_min`` / ``dislike_max``; ``all_positive`` turns every event into a
    positive interaction (RecBole's convention for MovieLens). ``sim_*`` configure the simulator.
    """

    source: str = "simulated"
    path: str | None = None
    user_col: str = "user"
    item_col: str = "item"
    time_col: str = "timestamp"
    feedback_col: str | None = None
    rating_col: str | None = None
    dwell_col: str | None = None
    feedback_map: dict[str, str] | None = None
    items_path: str | None = None
    item_id_col: str = "item"
    item_category_col: str | None = "category"
    item_creator_col: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    positive_min: float = 4.0
    dislike_max: float = 2.0
    genre_rule: str = "rarest"
    all_positive: bool = False
    on_bad_rows: str = "error"
    sim_users: int | None = None
    sim_events: int | None = None
    sim_seed: int = 0
    sim_config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"data source must be one of {', '.join(SOURCES)}; got {self.source!r}")
        if self.source != "simulated" and not self.path:
            raise UserError(f"data source {self.source!r} needs a path")
        self.path = _absolute(self.path)
        self.items_path = _absolute(self.items_path)

    def to_dict(self) -> dict:
        return asdict(self)


def _absolute(path: str | None) -> str | None:
    """``path`` made absolute against the working directory (``~`` expanded, ``..`` folded;
    symbolic links kept as they are)."""
    return None if path is None else os.path.abspath(os.path.expanduser(str(path)))


def load_data(spec: DataSpec) -> EventLog:
    """The :class:`EventLog` a :class:`DataSpec` describes."""
    from negrec.data import loaders

    if spec.source == "simulated":
        from negrec.sim import SimConfig, Simulator

        log, _ = Simulator(SimConfig(**spec.sim_config), seed=spec.sim_seed).generate(
            num_users=spec.sim_users, events_per_user=spec.sim_events)
    else:
        path = Path(spec.path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        mapping = loaders.RatingMapping(positive_min=spec.positive_min, dislike_max=spec.dislike_max)
        if spec.source == "movielens":
            log = loaders.load_movielens(path, mapping=mapping, genre_rule=spec.genre_rule,
                                         on_bad_rows=spec.on_bad_rows)
        elif spec.source == "kuairand":
            log = loaders.load_kuairand(path, on_bad_rows=spec.on_bad_rows)
        elif spec.source == "npz":
            log = EventLog.load(path)
        else:
            log = loaders.load_table(
                path,
                columns=loaders.ColumnMap(user=spec.user_col, item=spec.item_col,
                                          timestamp=spec.time_col, feedback=spec.feedback_col,
                                          rating=spec.rating_col, dwell=spec.dwell_col),
                feedback_values=spec.feedback_map, rating_mapping=mapping,
                items_path=spec.items_path,
                item_columns=loaders.ItemColumns(item=spec.item_id_col,
                                                 category=spec.item_category_col,
                                                 creator=spec.item_creator_col),
                delimiter=spec.delimiter, encoding=spec.encoding, on_bad_rows=spec.on_bad_rows)
    if spec.all_positive:
        import numpy as np

        from negrec.data.feedback import Feedback

        log.feedback = np.full_like(log.feedback, int(Feedback.POSITIVE))
        log.source += " [all positive]"
    return log
