"""MovieLens: ml-100k (``u.data`` + ``u.item``), ml-1m (``ratings.dat`` + ``movies.dat``),
ml-latest / ml-latest-small (``ratings.csv`` + ``movies.csv``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from negrec.data.loaders.errors import BadRows
from negrec.data.loaders.events import EventRows, merge_meta_report, require_events
from negrec.data.loaders.parse import RatingMapping, TimeColumn, parse_float, parse_id
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.text import Rows
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.errors import UserError

__all__ = ["ML100K_GENRES", "GenreRule", "load_movielens"]


GenreRule = Literal["rarest", "first"]


def _genre_clusters(item_genres: list[list[str]], rule: GenreRule) -> tuple[np.ndarray, list[str]]:
    """One cluster per item from its genres. ``rarest``: the least frequent of its genres
    (the most specific; ties broken by genre name); ``first``: the first one listed.
    Items without a genre get -1."""
    if rule not in ("rarest", "first"):
        raise UserError(f"genre_rule must be 'rarest' or 'first'; got {rule!r}")
    freq: dict[str, int] = {}
    for gs in item_genres:
        for g in gs:
            freq[g] = freq.get(g, 0) + 1
    names = sorted(freq)
    index = {g: i for i, g in enumerate(names)}
    cluster = np.full(len(item_genres), -1, dtype=np.int32)
    for i, gs in enumerate(item_genres):
        if not gs:
            continue
        g = gs[0] if rule == "first" else min(gs, key=lambda x: (freq[x], x))
        cluster[i] = index[g]
    return cluster, names


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _movielens_layout(path: Path) -> str:
    if (path / "u.data").exists():
        return "ml-100k"
    if (path / "ratings.dat").exists():
        return "ml-1m"
    if (path / "ratings.csv").exists():
        return "ml-latest"
    raise FileNotFoundError(
        f"{path}: not a MovieLens folder (expected u.data [ml-100k], ratings.dat [ml-1m] or "
        "ratings.csv [ml-latest])"
    )


def load_movielens(
    path: str | Path,
    *,
    mapping: RatingMapping = RatingMapping(),
    genre_rule: GenreRule = "rarest",
    on_bad_rows: BadRows = "error",
) -> EventLog:
    """A MovieLens folder (ml-100k, ml-1m or ml-latest[-small], detected from its files).

    Ratings become feedback through ``mapping``; the rating is kept as ``strength``. Genres
    give the content cluster (see ``genre_rule``); MovieLens has no creators. All movies of
    the metadata file are items, rated or not. User and movie ids are canonical integers;
    timestamps follow the module's rule (numbers only).
    """
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: MovieLens path must be a folder")
    layout = _movielens_layout(path)
    report = LoadReport(source=f"movielens:{layout}")
    if layout == "ml-100k":
        item_ids, titles, genres = _ml100k_items(path / "u.item", on_bad_rows, report)
        rows = Rows(path / "u.data", delimiter="\t", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    elif layout == "ml-1m":
        item_ids, titles, genres = _ml_items(path / "movies.dat", "::", "latin-1", False,
                                             on_bad_rows, report)
        rows = Rows(path / "ratings.dat", delimiter="::", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    else:
        item_ids, titles, genres = _ml_items(path / "movies.csv", ",", "utf-8", True,
                                             on_bad_rows, report)
        rows = Rows(path / "ratings.csv", delimiter=",", encoding="utf-8", header=True,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = None
    events = EventRows()
    times = TimeColumn(datetimes=False)
    known_items = set(item_ids)
    for line_no, f in rows:
        if cols is None:
            cols = tuple(rows.column(c) for c in ("userId", "movieId", "rating", "timestamp"))
        if len(f) <= max(cols):
            rows.bad(line_no, "too few fields", f"expected {max(cols) + 1}, got {len(f)}")
            continue
        # one bad field drops (and counts) the row once: stop at the first
        user_col, item_col, rating_col, time_col = cols
        user = parse_id(rows.bad, line_no, f[user_col], "user id")
        if user is None:
            continue
        item = parse_id(rows.bad, line_no, f[item_col], "item id")
        if item is None:
            continue
        rating = parse_float(rows.bad, line_no, f[rating_col], "rating")
        if rating is None:
            continue
        time = times.parse(rows.bad, line_no, f[time_col])
        if time is None:
            continue
        if item not in known_items:
            rows.bad(line_no, "item missing from the movie metadata", f"item {item}")
            continue
        events.add(user, item, time, strength=rating)
    report.rows_kept = len(events)
    require_events(rows.path, report)
    cluster, names = _genre_clusters(genres, genre_rule)
    meta = ItemMeta(raw_ids=np.asarray(item_ids, dtype=np.int64), cluster=cluster,
                    cluster_names=names, titles=titles)
    ratings = np.asarray(events.strength, dtype=np.float32)
    return events.to_log(report=report, source=f"movielens:{layout}",
                         feedback=mapping.map(ratings), strength=ratings, item_meta=meta)


def _ml100k_items(path: Path, on_bad_rows: BadRows, report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = Rows(path, delimiter="|", encoding="latin-1", header=False, on_bad_rows=on_bad_rows,
                 report=meta_report, min_fields=5 + len(ML100K_GENRES))
    ids, titles, genres = [], [], []
    seen: set[int] = set()
    for line_no, f in rows:
        i = parse_id(rows.bad, line_no, f[0], "item id")
        if i is None:
            continue
        flags = f[5:5 + len(ML100K_GENRES)]
        if any(x not in ("0", "1") for x in flags):
            rows.bad(line_no, "genre flags must be 0 or 1", f"{flags}")
            continue
        if i in seen:
            meta_report.repair("duplicate item rows in the metadata (first kept)", f"line {line_no}: item {i}")
            continue
        seen.add(i)
        ids.append(i)
        titles.append(f[1])
        genres.append([g for g, x in zip(ML100K_GENRES, flags) if x == "1" and g != "unknown"])
    merge_meta_report(report, meta_report, path)
    return ids, titles, genres


def _ml_items(path: Path, delimiter: str, encoding: str, header: bool, on_bad_rows: BadRows,
              report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = Rows(path, delimiter=delimiter, encoding=encoding, header=header,
                 on_bad_rows=on_bad_rows, report=meta_report, min_fields=3)
    ids, titles, genres = [], [], []
    seen: set[int] = set()
    cols = None if header else (0, 1, 2)
    for line_no, f in rows:
        if cols is None:
            cols = tuple(rows.column(c) for c in ("movieId", "title", "genres"))
        if len(f) <= max(cols):
            rows.bad(line_no, "too few fields", f"expected {max(cols) + 1}, got {len(f)}")
            continue
        i = parse_id(rows.bad, line_no, f[cols[0]], "item id")
        if i is None:
            continue
        if i in seen:
            meta_report.repair("duplicate item rows in the metadata (first kept)", f"line {line_no}: item {i}")
            continue
        seen.add(i)
        ids.append(i)
        titles.append(f[cols[1]])
        gs = [g for g in f[cols[2]].split("|") if g and g != "(no genres listed)"]
        genres.append(gs)
    merge_meta_report(report, meta_report, path)
    return ids, titles, genres


@data_source("movielens")
def _from_spec(path: Path, spec) -> EventLog:
    return load_movielens(path, mapping=RatingMapping(spec.positive_min, spec.dislike_max),
                          genre_rule=spec.genre_rule, on_bad_rows=spec.on_bad_rows)
