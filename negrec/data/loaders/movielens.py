"""MovieLens: ml-100k (``u.data`` + ``u.item``), ml-1m (``ratings.dat`` + ``movies.dat``),
ml-latest / ml-latest-small / ml-20m / ml-25m (``ratings.csv`` + ``movies.csv``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from negrec.data.loaders.columns import Failures, read_floats, read_ids
from negrec.data.loaders.times import read_times
from negrec.data.loaders.errors import BadRows, DataFormatError
from negrec.data.loaders.events import EventColumns, merge_meta_report, require_events
from negrec.data.loaders.parse import RatingMapping
from negrec.data.loaders.rows import RowChecks, TimeKinds
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.text import TextFile
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

#: The fields of a ratings file: user, movie, rating, timestamp.
RATING_FIELDS = ("userId", "movieId", "rating", "timestamp")


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
    """A MovieLens folder (ml-100k, ml-1m or ml-latest[-small] / ml-20m / ml-25m, detected
    from its files).

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
        ratings = TextFile(path / "u.data", delimiter="\t", encoding="latin-1", header=False,
                           on_bad_rows=on_bad_rows, report=report, min_fields=4)
    elif layout == "ml-1m":
        item_ids, titles, genres = _ml_items(path / "movies.dat", "::", "latin-1", False,
                                             on_bad_rows, report)
        ratings = TextFile(path / "ratings.dat", delimiter="::", encoding="latin-1", header=False,
                           on_bad_rows=on_bad_rows, report=report, min_fields=4)
    else:
        item_ids, titles, genres = _ml_items(path / "movies.csv", ",", "utf-8", True,
                                             on_bad_rows, report)
        ratings = TextFile(path / "ratings.csv", delimiter=",", encoding="utf-8", header=True,
                           on_bad_rows=on_bad_rows, report=report, min_fields=4)
    events = EventColumns(text_ids=False)
    strength: list[np.ndarray] = []
    catalogue = np.sort(np.asarray(item_ids, dtype=np.int64))
    kinds = TimeKinds("timestamp")
    for block in _blocks(ratings, RATING_FIELDS if ratings.header_wanted else None,
                         ("dict", "dict", "dict", "int")):
        report.rows_read += block.rows_read
        cols = block.columns
        checks = RowChecks(block.n)
        checks.check(block.too_few)
        users, user_fail = read_ids(cols[0], "user id")
        checks.check(user_fail, cols[0])
        items, item_fail = read_ids(cols[1], "item id")
        checks.check(item_fail, cols[1])
        rating, rating_fail = read_floats(cols[2], "rating")
        checks.check(rating_fail, cols[2])
        times, time_fail = read_times(cols[3], "timestamp", datetimes=False)
        checks.check(time_fail, cols[3])
        kinds.check(checks, cols[3], times, block.lines, strip=False)
        pos = np.minimum(np.searchsorted(catalogue, items), max(len(catalogue) - 1, 0))
        known = (catalogue[pos] == items) if len(catalogue) else np.zeros(len(items), bool)
        checks.check(Failures.where(~known, "item missing from the movie metadata",
                                    lambda i, items=items: f"item {items[i]}"), cols[1])
        checks.apply(block.policy, block.lines, block.reader_bad)
        kept = checks.kept()
        events.users.add(users, cols[0].text_index(kept))
        events.items.add(items, cols[1].text_index(kept))
        events.add_times(cols[3], times, kept)
        strength.append(cols[2].per_row(rating)[kept])
        if block.error_after is not None:
            raise block.error_after
    report.rows_kept = len(events)
    require_events(ratings.path, report)
    cluster, names = _genre_clusters(genres, genre_rule)
    meta = ItemMeta(raw_ids=np.asarray(item_ids, dtype=np.int64), cluster=cluster,
                    cluster_names=names, titles=titles)
    values = np.concatenate(strength).astype(np.float32)
    return events.to_log(report=report, source=f"movielens:{layout}",
                         feedback=mapping.map(values), strength=values, item_meta=meta)


class _Block:
    """A block of a MovieLens file: ``columns`` the fields asked for, in order (``all_columns``
    by position); ``too_few``: the rows lacking one of them."""

    def __init__(self, text: TextFile, block, cols: tuple[int, ...]):
        self.policy, self.n, self.lines = text.bad, block.n, block.lines
        self.rows_read, self.reader_bad = block.rows_read, block.reader_bad
        self.error_after = block.error_after
        self.columns = [block.columns[j] for j in cols]
        self.all_columns = block.columns
        width = max(cols) + 1
        self.too_few = Failures.where(block.nfields < width, "too few fields",
                                      lambda r, nf=block.nfields: f"expected {width}, got {nf[r]}")


def _blocks(text: TextFile, names: tuple[str, ...] | None, kinds: tuple[str, ...],
            extra: dict[int, str] | None = None):
    """The blocks of a MovieLens file, fields ``names`` (by the header) or positions 0, 1, ..."""
    text.start()
    if names is None:
        cols = tuple(range(len(kinds)))
    else:
        try:
            cols = tuple(text.column(c) for c in names)
        except DataFormatError:
            if text.report_until_good_row():
                raise
            return
    wanted = {j: kind for j, kind in zip(cols, kinds)}
    for j, kind in (extra or {}).items():
        wanted.setdefault(j, kind)
    for block in text.blocks(wanted):
        yield _Block(text, block, cols)


def _first_of_each(ids: list[np.ndarray], lines: list[np.ndarray]):
    """(keep [N] bool: the first row of each id, the line and id of the first other row, the
    number of other rows) over the kept rows of every block, in file order."""
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    _, first = np.unique(all_ids, return_index=True)
    keep = np.zeros(len(all_ids), bool)
    keep[first] = True
    dup = np.flatnonzero(~keep)
    if not len(dup):
        return keep, None, 0
    all_lines = np.concatenate(lines)
    return keep, (int(all_lines[dup[0]]), int(all_ids[dup[0]])), len(dup)


def _ml100k_items(path: Path, on_bad_rows: BadRows, report: LoadReport):
    meta_report = LoadReport(source=str(path))
    text = TextFile(path, delimiter="|", encoding="latin-1", header=False,
                    on_bad_rows=on_bad_rows, report=meta_report, min_fields=5 + len(ML100K_GENRES))
    flag_cols = range(5, 5 + len(ML100K_GENRES))
    ids, lines, titles, genres = [], [], [], []
    for block in _blocks(text, None, ("dict", "str"), {j: "dict" for j in flag_cols}):
        meta_report.rows_read += block.rows_read
        checks = RowChecks(block.n)
        checks.check(block.too_few)
        col_id, col_title = block.columns
        values, failures = read_ids(col_id, "item id")
        checks.check(failures, col_id)
        flags = [block_col for j, block_col in sorted(block.all_columns.items()) if j in flag_cols]
        bad_flag = np.zeros(block.n, bool)
        for col in flags:
            bad_flag |= ~col.per_row(np.array([t in ("0", "1") for t in col.texts.to_pylist()]))
        checks.fail_rows(bad_flag, "genre flags must be 0 or 1",
                         lambda r: f"{[col.row_text(r) for col in flags]}")
        checks.apply(block.policy, block.lines, block.reader_bad)
        kept = checks.kept()
        ids.append(col_id.per_row(values)[kept])
        lines.append(block.lines(kept))
        titles += col_title.texts_at(col_title.text_index(kept))
        on = [col.per_row(np.array([t == "1" for t in col.texts.to_pylist()], bool))[kept]
              for col in flags]
        genres += [[g for g, x in zip(ML100K_GENRES, row) if x and g != "unknown"]
                   for row in zip(*on)] if on else []
        if block.error_after is not None:
            raise block.error_after
    return _items(path, meta_report, report, ids, lines, titles, genres)


def _items(path: Path, meta_report: LoadReport, report: LoadReport, ids, lines, titles, genres):
    """The first row of each item (duplicates repaired, as the metadata file's report notes)."""
    keep, dup, n_dup = _first_of_each(ids, lines)
    if dup is not None:
        meta_report.repair("duplicate item rows in the metadata (first kept)",
                           f"line {dup[0]}: item {dup[1]}", n_dup)
    merge_meta_report(report, meta_report, path)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    at = np.flatnonzero(keep)
    return ([int(i) for i in all_ids[at]], [titles[k] for k in at], [genres[k] for k in at])


def _ml_items(path: Path, delimiter: str, encoding: str, header: bool, on_bad_rows: BadRows,
              report: LoadReport):
    meta_report = LoadReport(source=str(path))
    text = TextFile(path, delimiter=delimiter, encoding=encoding, header=header,
                    on_bad_rows=on_bad_rows, report=meta_report, min_fields=3)
    ids, lines, titles, genres = [], [], [], []
    names = ("movieId", "title", "genres") if header else None
    for block in _blocks(text, names, ("dict", "str", "dict")):
        meta_report.rows_read += block.rows_read
        checks = RowChecks(block.n)
        checks.check(block.too_few)
        col_id, col_title, col_genres = block.columns
        values, failures = read_ids(col_id, "item id")
        checks.check(failures, col_id)
        checks.apply(block.policy, block.lines, block.reader_bad)
        kept = checks.kept()
        ids.append(col_id.per_row(values)[kept])
        lines.append(block.lines(kept))
        titles += col_title.texts_at(col_title.text_index(kept))
        listed = [[g for g in t.split("|") if g and g != "(no genres listed)"]
                  for t in col_genres.texts.to_pylist()]
        genres += [listed[i] for i in col_genres.text_index(kept)]
        if block.error_after is not None:
            raise block.error_after
    return _items(path, meta_report, report, ids, lines, titles, genres)


@data_source("movielens")
def _from_spec(path: Path, spec) -> EventLog:
    return load_movielens(path, mapping=RatingMapping(spec.positive_min, spec.dislike_max),
                          genre_rule=spec.genre_rule, on_bad_rows=spec.on_bad_rows)
