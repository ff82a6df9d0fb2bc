"""Loaders of public feedback logs into :class:`~negrec.data.log.EventLog`.

- MovieLens: ml-100k (``u.data`` + ``u.item``), ml-1m (``ratings.dat`` + ``movies.dat``),
  ml-latest / ml-latest-small (``ratings.csv`` + ``movies.csv``).
- KuaiRand "standard" logs (``log_standard_*.csv`` + optional ``video_features_basic*.csv``).
- Generic CSV or Parquet with a column mapping (:func:`load_table`).

Every loader reports what it read, kept, dropped and repaired (:class:`LoadReport`). Bad rows
raise a :class:`DataFormatError` naming the file and line, or with ``on_bad_rows="skip"`` are
dropped and counted by reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping, Sequence

import numpy as np

from negrec.data.feedback import Feedback, parse_feedback
from negrec.data.log import EventLog, ItemMeta, LoadReport

__all__ = [
    "DataFormatError", "RatingMapping", "ColumnMap", "load_movielens", "load_kuairand",
    "load_table", "load_source",
]

BadRows = Literal["error", "skip"]


class DataFormatError(ValueError):
    """A malformed input file: the message names the file, the line and what is wrong."""


@dataclass(frozen=True)
class RatingMapping:
    """Explicit ratings -> feedback: ``>= positive_min`` positive, ``<= dislike_max`` dislike,
    anything between neutral (MovieLens defaults: 4-5 positive, 1-2 dislike, 3 neutral)."""

    positive_min: float = 4.0
    dislike_max: float = 2.0

    def __post_init__(self) -> None:
        if not self.dislike_max < self.positive_min:
            raise ValueError(f"RatingMapping: dislike_max ({self.dislike_max}) must be below "
                             f"positive_min ({self.positive_min})")

    def map(self, ratings: np.ndarray) -> np.ndarray:
        ratings = np.asarray(ratings, dtype=np.float64)
        out = np.full(len(ratings), int(Feedback.NEUTRAL), dtype=np.int8)
        out[ratings >= self.positive_min] = Feedback.POSITIVE
        out[ratings <= self.dislike_max] = Feedback.DISLIKE
        return out


class _Rows:
    """Reads a delimited text file row by row with 1-based line numbers and error policy."""

    def __init__(self, path: Path, *, delimiter: str, encoding: str, header: bool,
                 on_bad_rows: BadRows, report: LoadReport, min_fields: int):
        if on_bad_rows not in ("error", "skip"):
            raise ValueError(f"on_bad_rows must be 'error' or 'skip'; got {on_bad_rows!r}")
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        self.path, self.delimiter, self.encoding = path, delimiter, encoding
        self.header_wanted, self.on_bad_rows, self.report = header, on_bad_rows, report
        self.min_fields = min_fields
        self.header: list[str] | None = None

    def bad(self, line_no: int, reason: str, detail: str) -> None:
        msg = f"{self.path}:{line_no}: {reason}: {detail}"
        if self.on_bad_rows == "error":
            raise DataFormatError(msg + " (pass on_bad_rows='skip' to drop such rows and count them)")
        self.report.drop(reason, f"line {line_no}: {detail}")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        # a UTF-8 byte-order mark is not part of the first column's name
        encoding = "utf-8-sig" if self.encoding.lower().replace("_", "-") in ("utf-8", "utf8") \
            else self.encoding
        line_no = 0
        try:
            with open(self.path, "r", encoding=encoding, newline="") as f:
                if len(self.delimiter) == 1:
                    reader: Iterator[list[str]] = csv.reader(f, delimiter=self.delimiter)
                else:  # e.g. MovieLens-1M's "::"
                    reader = (line.rstrip("\r\n").split(self.delimiter) for line in f)
                line_no = 0
                for fields in reader:
                    line_no += 1
                    if self.header_wanted and self.header is None:
                        self.header = [h.strip() for h in fields]
                        continue
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue  # blank line (e.g. a trailing newline)
                    self.report.rows_read += 1
                    if len(fields) < self.min_fields:
                        self.bad(line_no, "too few fields",
                                 f"expected at least {self.min_fields} fields separated by "
                                 f"{self.delimiter!r}, got {len(fields)}: {self.delimiter.join(fields)[:80]!r}")
                        continue
                    yield line_no, fields
        except UnicodeDecodeError as exc:
            # exc.start is an offset into the chunk being decoded, not into the file: decode
            # the whole file to find the line of the offending byte for the message
            raw = self.path.read_bytes()
            try:
                raw.decode(encoding)
                line: int | str = "?"
            except UnicodeDecodeError as whole:
                line = raw[: whole.start].count(b"\n") + 1
            raise DataFormatError(
                f"{self.path}:{line}: cannot decode as {self.encoding} ({exc.reason}); pass the "
                "file's encoding"
            ) from None
        except csv.Error as exc:  # e.g. NUL bytes of a file cut short by a crash
            raise DataFormatError(f"{self.path}:{line_no + 1}: unreadable row ({exc}); the file "
                                  "is corrupt or truncated") from None

    def column(self, name: str) -> int:
        if self.header is None:
            raise DataFormatError(f"{self.path}: the file has no header line (empty file?)")
        if name not in self.header:
            hint = ""
            if len(self.header) == 1:
                seps = [d for d in (",", ";", "\t", "|") if d != self.delimiter and d in self.header[0]]
                if seps:
                    hint = (f" (wrong delimiter? the header looks {seps[0]!r}-separated, not "
                            f"{self.delimiter!r}-separated)")
            raise DataFormatError(f"{self.path}:1: missing column {name!r}; the header has "
                                  f"{self.header}{hint}")
        return self.header.index(name)


def _parse_number(rows: _Rows, line_no: int, value: str, what: str, kind=float):
    try:
        x = kind(value)
    except ValueError:
        # float strings such as "3.0" are acceptable integers
        if kind is int:
            try:
                f = float(value)
                if f.is_integer() and -2**63 <= f < 2**63:
                    return int(f)
            except ValueError:
                pass
        rows.bad(line_no, f"unparsable {what}", f"{value!r} is not a number")
        return None
    if kind is float and not np.isfinite(x):
        rows.bad(line_no, f"non-finite {what}", f"{value!r}")
        return None
    if kind is int and not -2**63 <= x < 2**63:
        rows.bad(line_no, f"{what} out of the int64 range", f"{value!r}")
        return None
    return x


# ---- MovieLens ------------------------------------------------------------------------------

GenreRule = Literal["rarest", "first"]


def _genre_clusters(item_genres: list[list[str]], rule: GenreRule) -> tuple[np.ndarray, list[str]]:
    """One cluster per item from its genres. ``rarest``: the least frequent of its genres
    (the most specific; ties broken by genre name); ``first``: the first one listed.
    Items without a genre get -1."""
    if rule not in ("rarest", "first"):
        raise ValueError(f"genre_rule must be 'rarest' or 'first'; got {rule!r}")
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
    the metadata file are items, rated or not.
    """
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: MovieLens path must be a folder")
    layout = _movielens_layout(path)
    report = LoadReport(source=f"movielens:{layout}")
    if layout == "ml-100k":
        item_ids, titles, genres = _ml100k_items(path / "u.item", on_bad_rows, report)
        rows = _Rows(path / "u.data", delimiter="\t", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    elif layout == "ml-1m":
        item_ids, titles, genres = _ml_items(path / "movies.dat", "::", "latin-1", False,
                                             on_bad_rows, report)
        rows = _Rows(path / "ratings.dat", delimiter="::", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    else:
        item_ids, titles, genres = _ml_items(path / "movies.csv", ",", "utf-8", True,
                                             on_bad_rows, report)
        rows = _Rows(path / "ratings.csv", delimiter=",", encoding="utf-8", header=True,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = None
    users, items, ratings, times = [], [], [], []
    known_items = set(item_ids)
    for line_no, f in rows:
        if cols is None:
            cols = tuple(rows.column(c) for c in ("userId", "movieId", "rating", "timestamp"))
        if len(f) <= max(cols):
            rows.bad(line_no, "too few fields", f"expected {max(cols) + 1}, got {len(f)}")
            continue
        # one bad field drops (and counts) the row once: stop at the first
        parsed = []
        for col, what, kind in zip(cols, ("user id", "item id", "rating", "timestamp"),
                                   (int, int, float, int)):
            parsed.append(_parse_number(rows, line_no, f[col], what, kind))
            if parsed[-1] is None:
                break
        if parsed[-1] is None:
            continue
        u, i, r, t = parsed
        if i not in known_items:
            rows.bad(line_no, "item missing from the movie metadata", f"item {i}")
            continue
        users.append(u)
        items.append(i)
        ratings.append(r)
        times.append(t)
    report.rows_kept = len(users)
    _require_events(rows.path, report)
    cluster, names = _genre_clusters(genres, genre_rule)
    meta = ItemMeta(raw_ids=np.asarray(item_ids, dtype=np.int64), cluster=cluster,
                    cluster_names=names, titles=titles)
    ratings_arr = np.asarray(ratings, dtype=np.float32)
    return EventLog.from_events(users, items, times, mapping.map(ratings_arr),
                                strength=ratings_arr, item_meta=meta,
                                source=f"movielens:{layout}", report=report)


def _ml100k_items(path: Path, on_bad_rows: BadRows, report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = _Rows(path, delimiter="|", encoding="latin-1", header=False, on_bad_rows=on_bad_rows,
                 report=meta_report, min_fields=5 + len(ML100K_GENRES))
    ids, titles, genres = [], [], []
    seen: set[int] = set()
    for line_no, f in rows:
        i = _parse_number(rows, line_no, f[0], "item id", int)
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
    _merge_meta_report(report, meta_report, path)
    return ids, titles, genres


def _ml_items(path: Path, delimiter: str, encoding: str, header: bool, on_bad_rows: BadRows,
              report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = _Rows(path, delimiter=delimiter, encoding=encoding, header=header,
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
        i = _parse_number(rows, line_no, f[cols[0]], "item id", int)
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
    _merge_meta_report(report, meta_report, path)
    return ids, titles, genres


def _merge_meta_report(report: LoadReport, meta_report: LoadReport, path: Path) -> None:
    for reason, n in meta_report.dropped.items():
        report.drop(f"{path.name}: {reason}", meta_report.examples.get(reason, ""), n)
    for reason, n in meta_report.repaired.items():
        report.repair(f"{path.name}: {reason}", meta_report.examples.get(reason, ""), n)


def _require_events(path: Path, report: LoadReport) -> None:
    """An event file that yields no event at all is empty, truncated or unreadable: an error
    (an empty log would only fail later, far from the cause)."""
    if report.rows_kept == 0:
        why = f"; dropped: {report.dropped}" if report.dropped else ""
        raise DataFormatError(f"{path}: no events read ({report.rows_read} rows read{why}); the "
                              "file is empty, truncated or not in the expected format")


# ---- KuaiRand ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class KuaiRandMapping:
    """KuaiRand exposure -> feedback, in priority order: ``is_hate`` -> dislike; ``is_like`` or
    ``long_view`` -> positive; a play shorter than ``skip_fraction`` of the video's duration
    (or than ``skip_max_ms``, whichever is longer) -> skip; anything else neutral."""

    skip_fraction: float = 0.1
    skip_max_ms: int = 3000


def load_kuairand(
    path: str | Path,
    *,
    mapping: KuaiRandMapping = KuaiRandMapping(),
    on_bad_rows: BadRows = "error",
) -> EventLog:
    """A KuaiRand folder: every ``log_standard_*.csv`` in it, plus categories (the video's
    first tag) and creators (``author_id``) from ``video_features_basic*.csv`` when present.
    The play time in seconds is kept as ``strength``."""
    path = Path(path)
    files = sorted(path.glob("log_standard_*.csv")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"{path}: no KuaiRand log_standard_*.csv files found")
    report = LoadReport(source="kuairand")
    users, items, times, fbs, plays = [], [], [], [], []
    for file in files:
        rows = _Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("user_id", "video_id", "time_ms", "is_like",
                                                     "is_hate", "long_view", "play_time_ms",
                                                     "duration_ms")}
                width = max(cols.values()) + 1
            if len(f) < width:
                rows.bad(line_no, "too few fields", f"expected {width}, got {len(f)}")
                continue
            vals = {}
            for c, j in cols.items():  # stop at the first bad field: the row counts once
                vals[c] = _parse_number(rows, line_no, f[j], c, int)
                if vals[c] is None:
                    break
            if any(v is None for v in vals.values()):
                continue
            if vals["is_hate"]:
                fb = Feedback.DISLIKE
            elif vals["is_like"] or vals["long_view"]:
                fb = Feedback.POSITIVE
            elif vals["play_time_ms"] < max(mapping.skip_fraction * vals["duration_ms"],
                                            mapping.skip_max_ms):
                fb = Feedback.SKIP
            else:
                fb = Feedback.NEUTRAL
            users.append(vals["user_id"])
            items.append(vals["video_id"])
            times.append(vals["time_ms"])
            fbs.append(int(fb))
            plays.append(vals["play_time_ms"] / 1000.0)
    report.rows_kept = len(users)
    _require_events(path, report)
    feature_files = sorted(path.glob("video_features_basic*.csv")) if path.is_dir() else []
    meta = _kuairand_meta(feature_files, np.unique(np.asarray(items, dtype=np.int64)),
                          on_bad_rows, report)
    return EventLog.from_events(users, items, times, fbs, strength=plays, item_meta=meta,
                                source="kuairand", report=report)


def _kuairand_meta(files: list[Path], item_ids: np.ndarray, on_bad_rows: BadRows,
                   report: LoadReport) -> ItemMeta:
    if not files:
        return ItemMeta.anonymous(item_ids)
    tag_of: dict[int, str] = {}
    author_of: dict[int, str] = {}
    for file in files:
        meta_report = LoadReport(source=str(file))
        rows = _Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=meta_report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("video_id", "author_id", "tag")}
            if len(f) <= max(cols["video_id"], cols["author_id"]):
                rows.bad(line_no, "too few fields",
                         f"expected {max(cols['video_id'], cols['author_id']) + 1}, got {len(f)}")
                continue
            vid = _parse_number(rows, line_no, f[cols["video_id"]], "video_id", int)
            if vid is None:
                continue
            tags = [t for t in f[cols["tag"]].split(",") if t.strip()] if cols["tag"] < len(f) else []
            if vid in tag_of:
                meta_report.repair("duplicate video rows in the features (last kept)", f"video {vid}")
            tag_of[vid] = tags[0].strip() if tags else ""
            author_of[vid] = f[cols["author_id"]].strip()
        _merge_meta_report(report, meta_report, file)
    tag_names = sorted({t for t in tag_of.values() if t})
    authors = sorted({a for a in author_of.values() if a})
    t_index = {t: i for i, t in enumerate(tag_names)}
    a_index = {a: i for i, a in enumerate(authors)}
    cluster = np.array([t_index.get(tag_of.get(int(v), ""), -1) for v in item_ids], np.int32)
    creator = np.array([a_index.get(author_of.get(int(v), ""), -1) for v in item_ids], np.int32)
    missing = int(sum(int(v) not in tag_of for v in item_ids))
    if missing:
        report.repair("items missing from the video features (no category / creator)",
                      f"{missing} items", missing)
    return ItemMeta(raw_ids=item_ids, cluster=cluster, cluster_names=tag_names, creator=creator,
                    creator_names=authors)


# ---- generic tables -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a generic table hold what. Exactly one of ``feedback`` (labels, mapped
    through ``feedback_values`` or the names positive/neutral/skip/dislike) and ``rating``
    (numbers, mapped through a :class:`RatingMapping`) must be given."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    feedback: str | None = None
    rating: str | None = None
    dwell: str | None = None

    def __post_init__(self) -> None:
        if (self.feedback is None) == (self.rating is None):
            raise ValueError("ColumnMap: give exactly one of feedback= (a label column) and "
                             f"rating= (a numeric column); got feedback={self.feedback!r}, "
                             f"rating={self.rating!r}")


@dataclass(frozen=True)
class ItemColumns:
    """Columns of an item-metadata table: item id, category (cluster), optional creator."""

    item: str = "item"
    category: str | None = "category"
    creator: str | None = None


def _read_table(path: Path, delimiter: str, encoding: str, on_bad_rows: BadRows,
                report: LoadReport, needed: Sequence[str]):
    """Yields (line_no, {column: str value}) for CSV, or the same from a Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFormatError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # truncated or not Parquet at all
            raise DataFormatError(f"{path}: not a readable Parquet file ({type(exc).__name__}: "
                                  f"{exc})") from None
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise DataFormatError(f"{path}: missing column {missing[0]!r}; the file has "
                                  f"{table.column_names}")
        cols = {c: table.column(c).to_pylist() for c in needed}
        for r in range(table.num_rows):
            report.rows_read += 1
            yield r + 1, {c: ("" if cols[c][r] is None else str(cols[c][r])) for c in needed}
        return
    rows = _Rows(path, delimiter=delimiter, encoding=encoding, header=True,
                 on_bad_rows=on_bad_rows, report=report, min_fields=1)
    idx = None
    for line_no, f in rows:
        if idx is None:
            idx = {c: rows.column(c) for c in needed}
            width = max(idx.values()) + 1
        if len(f) < width:
            rows.bad(line_no, "too few fields",
                     f"expected at least {width} fields separated by {delimiter!r}, got {len(f)}")
            continue
        yield line_no, {c: f[j].strip() for c, j in idx.items()}
    if idx is None and rows.header is not None:
        for c in needed:
            rows.column(c)  # header present but no rows: still report missing columns


def load_table(
    path: str | Path,
    *,
    columns: ColumnMap = ColumnMap(feedback="feedback"),
    feedback_values: Mapping[str, str] | None = None,
    rating_mapping: RatingMapping = RatingMapping(),
    items_path: str | Path | None = None,
    item_columns: ItemColumns = ItemColumns(),
    delimiter: str = ",",
    encoding: str = "utf-8",
    on_bad_rows: BadRows = "error",
    timestamp_parser: Callable[[str], int] | None = None,
) -> EventLog:
    """A generic CSV (with a header) or Parquet event table.

    ``feedback_values`` maps raw labels to feedback names (e.g. ``{"like": "positive",
    "hate": "dislike", "skip": "skip"}``); without it the labels must be the feedback names
    or codes. Timestamps are integers, or parsed by ``timestamp_parser``. With ``items_path``,
    a metadata table (``item_columns``) gives categories and creators; events of items missing
    from it keep cluster -1 (counted in the report), metadata rows of items never seen are
    kept as items without events.
    """
    path = Path(path)
    report = LoadReport(source=f"table:{path.name}")
    needed = [columns.user, columns.item, columns.timestamp]
    needed.append(columns.feedback if columns.feedback is not None else columns.rating)
    if columns.dwell:
        needed.append(columns.dwell)
    value_map = None
    if feedback_values is not None:
        value_map = {str(k).strip().lower(): parse_feedback(v) for k, v in feedback_values.items()}
    users, items, times, fbs, strengths, ratings = [], [], [], [], [], []
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, report, needed):
        def bad(reason, detail):
            msg = f"{path}:{line_no}: {reason}: {detail}"
            if on_bad_rows == "error":
                raise DataFormatError(msg + " (pass on_bad_rows='skip' to drop such rows and count them)")
            report.drop(reason, f"line {line_no}: {detail}")

        u, i = row[columns.user], row[columns.item]
        if not u or not i:
            bad("empty user or item id", f"user={u!r}, item={i!r}")
            continue
        ts_raw = row[columns.timestamp]
        try:
            t = timestamp_parser(ts_raw) if timestamp_parser else int(float(ts_raw))
            if not -2**63 <= t < 2**63:
                raise ValueError("out of the int64 range")
        except (ValueError, TypeError, OverflowError):
            bad("unparsable timestamp", f"{ts_raw!r}")
            continue
        if columns.feedback is not None:
            label = row[columns.feedback].strip().lower()
            try:
                fb = value_map[label] if value_map is not None else parse_feedback(
                    int(label) if label.lstrip("-").isdigit() else label)
                if fb is Feedback.PAD:
                    raise ValueError("padding is not an event")
            except (KeyError, ValueError):
                known = sorted(value_map) if value_map is not None else \
                    ["positive", "neutral", "skip", "dislike"]
                bad("unknown feedback label", f"{row[columns.feedback]!r} (known: {known})")
                continue
            fbs.append(int(fb))
        else:
            try:
                r = float(row[columns.rating])
                if not np.isfinite(r):
                    raise ValueError("not finite")
                ratings.append(r)
            except ValueError:
                bad("unparsable rating", f"{row[columns.rating]!r}")
                continue
        if columns.dwell:
            try:
                strengths.append(float(row[columns.dwell]))
            except ValueError:
                bad("unparsable dwell", f"{row[columns.dwell]!r}")
                if columns.feedback is not None:
                    fbs.pop()
                else:
                    ratings.pop()
                continue
        users.append(u)
        items.append(i)
        times.append(t)
    report.rows_kept = len(users)
    _require_events(path, report)
    if columns.rating is not None:
        fbs = rating_mapping.map(np.asarray(ratings)).tolist()
        strengths = strengths or ratings
    users_arr = _maybe_int(users)
    items_arr = _maybe_int(items)
    meta = None
    if items_path is not None:
        meta = _table_item_meta(Path(items_path), item_columns, items_arr, delimiter, encoding,
                                on_bad_rows, report)
    return EventLog.from_events(users_arr, items_arr, times, fbs,
                                strength=strengths if strengths else None, item_meta=meta,
                                source=f"table:{path.name}", report=report)


def _maybe_int(values: list[str]) -> np.ndarray:
    """Raw ids stay strings unless every one is an integer."""
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.asarray(values, dtype=str)


def _table_item_meta(path: Path, cols: ItemColumns, event_items: np.ndarray, delimiter: str,
                     encoding: str, on_bad_rows: BadRows, report: LoadReport) -> ItemMeta:
    needed = [cols.item] + [c for c in (cols.category, cols.creator) if c]
    meta_report = LoadReport(source=str(path))
    ids, cats, creators = [], [], []
    seen: set[str] = set()
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, meta_report, needed):
        i = row[cols.item]
        if not i:
            bad_row = f"{path}:{line_no}: empty item id"
            if on_bad_rows == "error":
                raise DataFormatError(bad_row + " (pass on_bad_rows='skip' to drop such rows and count them)")
            meta_report.drop("empty item id", f"line {line_no}")
            continue
        if i in seen:
            report.repair("duplicate item rows in the metadata (first kept)", f"item {i!r}")
            continue
        seen.add(i)
        ids.append(i)
        cats.append(row[cols.category] if cols.category else "")
        creators.append(row[cols.creator] if cols.creator else "")
    _merge_meta_report(report, meta_report, path)
    meta_ids = _maybe_int(ids)
    # items with events but no metadata row join the catalogue without cluster / creator
    ev = np.unique(event_items)
    meta_cmp = meta_ids.astype(str) if meta_ids.dtype.kind != ev.dtype.kind else meta_ids
    ev_cmp = ev.astype(str) if meta_ids.dtype.kind != ev.dtype.kind else ev
    missing = ev[~np.isin(ev_cmp, meta_cmp)]
    if len(missing):
        report.repair("items with events but no metadata row (cluster -1)",
                      f"item {missing[0]!r}", len(missing))
    unseen = int((~np.isin(meta_cmp, ev_cmp)).sum())
    if unseen:
        report.repair("metadata items without any event (kept as items)", "", unseen)
    all_ids = list(ids) + [str(m) for m in missing]
    cats += [""] * len(missing)
    creators += [""] * len(missing)
    cat_names = sorted({c for c in cats if c})
    cre_names = sorted({c for c in creators if c})
    ci = {c: k for k, c in enumerate(cat_names)}
    ri = {c: k for k, c in enumerate(cre_names)}
    raw = _maybe_int(all_ids)
    return ItemMeta(raw_ids=raw, cluster=np.array([ci.get(c, -1) for c in cats], np.int32),
                    cluster_names=cat_names,
                    creator=np.array([ri.get(c, -1) for c in creators], np.int32) if cols.creator else None,
                    creator_names=cre_names if cols.creator else None)


# ---- one entry point for the CLI --------------------------------------------------------------

def load_source(source: str, path: str | Path, **kwargs) -> EventLog:
    """``source`` in movielens | kuairand | csv | parquet | npz (a saved EventLog)."""
    if source == "movielens":
        return load_movielens(path, **kwargs)
    if source == "kuairand":
        return load_kuairand(path, **kwargs)
    if source in ("csv", "parquet", "table"):
        return load_table(path, **kwargs)
    if source == "npz":
        return EventLog.load(path)
    raise ValueError(f"unknown data source {source!r}; expected movielens, kuairand, csv, "
                     "parquet or npz")
