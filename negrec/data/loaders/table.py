"""Generic CSV or Parquet event tables with a column mapping (:func:`load_table`), and their
item-metadata tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from negrec.data.feedback import FEEDBACK_TYPES, OTHER_LABELS, FeedbackLabels
from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError, Option
from negrec.data.loaders.events import EventRows, merge_meta_report, require_events
from negrec.data.loaders.parse import (RatingMapping, TimeColumn, custom_time, parse_float,
                                       raw_ids)
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.text import Rows
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.errors import UserError

__all__ = ["ColumnMap", "ItemColumns", "load_table"]


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a generic table hold what. Exactly one of ``feedback`` (labels, see
    :class:`~negrec.data.feedback.FeedbackLabels`) and ``rating`` (numbers, mapped through a
    :class:`RatingMapping`) must be given."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    feedback: str | None = None
    rating: str | None = None
    dwell: str | None = None

    def __post_init__(self) -> None:
        if (self.feedback is None) == (self.rating is None):
            raise UserError("ColumnMap: give exactly one of feedback= (a label column) and "
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
    """Yields (line_no, {column: str value}) for CSV, or (row number, ...) from a Parquet file
    (values as ``str()`` of what pyarrow gives: ints canonical, datetimes ISO, nulls empty)."""
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
    rows = Rows(path, delimiter=delimiter, encoding=encoding, header=True,
                 on_bad_rows=on_bad_rows, report=report, min_fields=1, encoding_option=True)
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


MAX_LABELS_LISTED = 10


def _label_census(path: Path, delimiter: str, encoding: str, column: str,
                  labels: FeedbackLabels) -> Counter:
    """Rows per label (as matched: stripped, lower case) that ``labels`` gives no meaning, over
    the whole column: read again only to explain an error."""
    census: Counter = Counter()
    for _, row in _read_table(path, delimiter, encoding, "skip", LoadReport(), [column]):
        if labels(row[column]) is None:
            census[FeedbackLabels.key(row[column])] += 1
    return census


def _unknown_label_error(path: Path, line_no: int, label: str, column: str, census: Counter,
                         feedback_values: Mapping[str, str] | None) -> DataFormatError:
    """One line: the label, why it has no meaning, the labels of the column without one (with
    their row counts) and the map that would give them one."""
    names = ", ".join(f.label for f in FEEDBACK_TYPES)
    if feedback_values:
        why = f"it is neither in the feedback map nor a feedback name ({names})"
    else:
        why = f"labels must be feedback names ({names}) unless mapped; numbers are never read as feedback codes"
    listed = census.most_common(MAX_LABELS_LISTED)
    seen = ", ".join(f"{k!r} ({n} row{'s' * (n != 1)})" for k, n in listed)
    if len(census) > len(listed):
        seen += f" and {len(census) - len(listed)} more labels"
    suggestion = {**(feedback_values or {}), **{k: "NAME" for k, _ in listed}}
    return DataFormatError(
        f"{path}:{line_no}: unknown feedback label: {label!r}; {why}; labels without a meaning in "
        f"column {column!r}: {seen}; map them with ", Option("feedback_values", suggestion),
        f" (NAME: one of {names}), or every label not listed with ",
        Option("feedback_values", {**(feedback_values or {}), OTHER_LABELS: "NAME"}))


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

    Feedback labels are feedback names (positive, neutral, skip, dislike) or mapped by
    ``feedback_values`` (e.g. ``{"like": "positive", "hate": "dislike", "*": "neutral"}``; the
    ``"*"`` entry maps every label not listed); numbers are never read as feedback codes, and a
    label without a meaning is an error listing the column's unmapped labels. Timestamps follow
    the module's rule (integers, decimals, ISO-8601 date-times), or ``timestamp_parser`` (str ->
    int). Ids follow the module's rule (int64 only if all canonical integers). With
    ``items_path``, a metadata table (``item_columns``) gives categories and creators; events of
    items missing from it keep cluster -1 (counted in the report), metadata rows of items never
    seen are kept as items without events.
    """
    path = Path(path)
    report = LoadReport(source=f"table:{path.name}")
    needed = [columns.user, columns.item, columns.timestamp]
    needed.append(columns.feedback if columns.feedback is not None else columns.rating)
    if columns.dwell:
        needed.append(columns.dwell)
    labels = FeedbackLabels(feedback_values) if columns.feedback is not None else None
    bad = BadRowPolicy(path, on_bad_rows, report)
    times = TimeColumn(datetimes=True)
    events = EventRows()
    ratings: list[float] = []
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, report, needed):
        user, item = row[columns.user], row[columns.item]
        if not user or not item:
            bad(line_no, "empty user or item id", f"user={user!r}, item={item!r}")
            continue
        ts_raw = row[columns.timestamp]
        time = custom_time(bad, line_no, ts_raw, timestamp_parser) if timestamp_parser \
            else times.parse(bad, line_no, ts_raw)
        if time is None:
            continue
        feedback = None
        if labels is not None:
            feedback = labels(row[columns.feedback])
            if feedback is None:
                if on_bad_rows == "error":
                    census = _label_census(path, delimiter, encoding, columns.feedback, labels)
                    raise _unknown_label_error(path, line_no, row[columns.feedback],
                                               columns.feedback, census, feedback_values)
                bad(line_no, "unknown feedback label", f"{row[columns.feedback]!r}")
                continue
        else:
            rating = parse_float(bad, line_no, row[columns.rating], "rating")
            if rating is None:
                continue
        dwell = None
        if columns.dwell:
            dwell = parse_float(bad, line_no, row[columns.dwell], "dwell")
            if dwell is None:
                continue
        if labels is None:
            ratings.append(rating)
        events.add(user, item, time, None if feedback is None else int(feedback), dwell)
    report.rows_kept = len(events)
    require_events(path, report)
    feedback_codes = strength = None
    if columns.rating is not None:
        feedback_codes = rating_mapping.map(np.asarray(ratings))
        strength = events.strength or ratings
    items_arr = raw_ids(events.items)
    meta = None
    if items_path is not None:
        meta = _table_item_meta(Path(items_path), item_columns, items_arr, delimiter, encoding,
                                on_bad_rows, report)
    return events.to_log(report=report, source=f"table:{path.name}", users=raw_ids(events.users),
                         items=items_arr, feedback=feedback_codes, strength=strength,
                         item_meta=meta)


def _table_item_meta(path: Path, cols: ItemColumns, event_items: np.ndarray, delimiter: str,
                     encoding: str, on_bad_rows: BadRows, report: LoadReport) -> ItemMeta:
    """The metadata table's items, then the event items it lacks (cluster -1); ids by the
    module's rule over all of them, so metadata ids join event ids exactly as spelled."""
    needed = [cols.item] + [c for c in (cols.category, cols.creator) if c]
    meta_report = LoadReport(source=str(path))
    bad = BadRowPolicy(path, on_bad_rows, meta_report)
    ids, cats, creators = [], [], []
    seen: set[str] = set()
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, meta_report, needed):
        i = row[cols.item]
        if not i:
            bad(line_no, "empty item id", f"column {cols.item!r} is empty")
            continue
        if i in seen:
            report.repair("duplicate item rows in the metadata (first kept)", f"item {i!r}")
            continue
        seen.add(i)
        ids.append(i)
        cats.append(row[cols.category] if cols.category else "")
        creators.append(row[cols.creator] if cols.creator else "")
    merge_meta_report(report, meta_report, path)
    meta_ids = raw_ids(ids)
    # items with events but no metadata row join the catalogue without cluster / creator; an
    # int64 side compares as its canonical text, which is exactly how it was spelled
    ev = np.unique(event_items)
    as_text = meta_ids.dtype.kind != ev.dtype.kind
    meta_cmp = meta_ids.astype(str) if as_text else meta_ids
    ev_cmp = ev.astype(str) if as_text else ev
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
    return ItemMeta(raw_ids=raw_ids(all_ids),
                    cluster=np.array([ci.get(c, -1) for c in cats], np.int32),
                    cluster_names=cat_names,
                    creator=np.array([ri.get(c, -1) for c in creators], np.int32) if cols.creator else None,
                    creator_names=cre_names if cols.creator else None)


@data_source("csv", "parquet")
def _from_spec(path: Path, spec) -> EventLog:
    return load_table(
        path,
        columns=ColumnMap(user=spec.user_col, item=spec.item_col, timestamp=spec.time_col,
                          feedback=spec.feedback_col, rating=spec.rating_col, dwell=spec.dwell_col),
        feedback_values=spec.feedback_map,
        rating_mapping=RatingMapping(spec.positive_min, spec.dislike_max),
        items_path=spec.items_path,
        item_columns=ItemColumns(item=spec.item_id_col, category=spec.item_category_col,
                                 creator=spec.item_creator_col),
        delimiter=spec.delimiter, encoding=spec.encoding, on_bad_rows=spec.on_bad_rows)
