"""Generic CSV or Parquet event tables with a column mapping (:func:`load_table`), and their
item-metadata tables.

A table is one file, or a folder or glob pattern of files read with ``pyarrow.dataset`` (Hive
partition folders such as ``day=2024-05-01/`` give columns of that name); every file is read in
blocks (:mod:`.text`; Parquet in record batches), and its rows checked in the order below, each
bad row reported against its own file and line (or row).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pyarrow as pa

from negrec.data.feedback import FEEDBACK_TYPES, OTHER_LABELS, FeedbackLabels
from negrec.data.loaders.columns import Column, Failures, read_floats, read_labels, read_table_ids
from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError, Option
from negrec.data.loaders.events import EventColumns, merge_meta_report, require_events
from negrec.data.loaders.parse import RatingMapping
from negrec.data.loaders.rows import RowChecks, TimeKinds
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.table_files import TableBlock, _read_table
from negrec.data.loaders.times import read_custom_times, read_times
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


# ---- feedback labels ------------------------------------------------------------------------------

MAX_LABELS_LISTED = 10


def _label_census(path: Path, delimiter: str, encoding: str, column: str,
                  labels: FeedbackLabels) -> Counter:
    """Rows per label (as matched: stripped, lower case) that ``labels`` gives no meaning, over
    the whole column, in the order labels first appear: read again only to explain an error."""
    counts: dict[str, int] = {}
    for block in _read_table(path, delimiter, encoding, "skip", LoadReport(), [column],
                             {column: "dict"}):
        col = block.ids(column)
        rows = np.arange(block.n) if block.too_few is None else \
            np.flatnonzero(block.too_few.code == 0)
        at = col.text_index(rows)
        hits = at[(read_labels(col, labels) == 0)[at]]
        if len(hits):
            distinct, first, per = np.unique(hits, return_index=True, return_counts=True)
            texts = col.texts_at(distinct)
            for k in np.argsort(first, kind="stable"):
                key = FeedbackLabels.key(texts[k])
                counts[key] = counts.get(key, 0) + int(per[k])
        if block.error_after is not None:
            raise block.error_after
    return Counter(counts)


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


# ---- the loader -----------------------------------------------------------------------------------

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
    """A generic CSV (with a header) or Parquet event table: a file, or a folder or glob
    pattern of files (Hive partition folders ``key=value`` give columns).

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
    BadRowPolicy(path, on_bad_rows, report)  # checks on_bad_rows before anything is read
    kinds = {columns.user: "dict", columns.item: "dict",
             columns.timestamp: "str" if timestamp_parser else "int"}
    kinds[columns.feedback or columns.rating] = "dict"
    if columns.dwell:
        kinds[columns.dwell] = "int"
    reader = _EventRows(path, columns, labels, feedback_values, timestamp_parser, delimiter,
                        encoding)
    for block in _read_table(path, delimiter, encoding, on_bad_rows, report, needed, kinds):
        report.rows_read += block.rows_read
        reader.add(block)
        if block.error_after is not None:
            raise block.error_after
    events = reader.events
    report.rows_kept = len(events)
    require_events(path, report)
    feedback_codes = strength = None
    if columns.rating is not None:
        ratings = np.concatenate(reader.ratings)
        feedback_codes = rating_mapping.map(ratings)
        strength = events.strength() if columns.dwell else ratings
    meta = None
    if items_path is not None:
        meta = _table_item_meta(Path(items_path), item_columns, events.item_ids(), delimiter,
                                encoding, on_bad_rows, report)
    return events.to_log(report=report, source=f"table:{path.name}",
                         feedback=feedback_codes, strength=strength, item_meta=meta)


class _EventRows:
    """The checks of an event table's rows, in the order of its rules, and their kept events."""

    def __init__(self, path: Path, columns: ColumnMap, labels: FeedbackLabels | None,
                 feedback_values, timestamp_parser, delimiter: str, encoding: str):
        self.path, self.columns, self.labels = path, columns, labels
        self.feedback_values, self.parser = feedback_values, timestamp_parser
        self.delimiter, self.encoding = delimiter, encoding
        self.kinds = TimeKinds("timestamp")
        self.events = EventColumns(text_ids=True)
        self.ratings: list[np.ndarray] = [np.zeros(0)]

    def add(self, block: TableBlock) -> None:
        cols = self.columns
        checks = RowChecks(block.n)
        if block.too_few is not None:
            checks.check(block.too_few)
        users, items = block.ids(cols.user), block.ids(cols.item)
        empty = users.per_row(_empty(users)) | items.per_row(_empty(items))
        checks.fail_rows(empty, "empty user or item id",
                         lambda r: f"user={users.row_text(r)!r}, item={items.row_text(r)!r}")
        time_col = block.columns[cols.timestamp]
        if self.parser is not None:
            times, failures = read_custom_times(time_col, self.parser, strip=block.strip,
                                                only=time_col.text_index(checks.kept()))
            checks.check(failures, time_col)
        else:
            times, failures = read_times(time_col, "timestamp", datetimes=True, strip=block.strip)
            checks.check(failures, time_col)
            self.kinds.check(checks, time_col, times, block.lines, strip=block.strip)
        feedback = None
        if self.labels is not None:
            label_col = block.ids(cols.feedback)
            feedback = read_labels(label_col, self.labels)
            unknown = Failures.where(feedback == 0, "unknown feedback label",
                                     lambda i: f"{label_col.text(i)!r}")
            unknown.raise_first = lambda line, i: _unknown_label_error(
                block.policy.path, line, label_col.text(i), cols.feedback,
                _label_census(self.path, self.delimiter, self.encoding, cols.feedback,
                              self.labels), self.feedback_values)
            checks.check(unknown, label_col)
        else:
            rating_col = block.columns[cols.rating]
            ratings, failures = read_floats(rating_col, "rating", strip=block.strip)
            checks.check(failures, rating_col)
        if cols.dwell:
            dwell_col = block.columns[cols.dwell]
            dwell, failures = read_floats(dwell_col, "dwell", strip=block.strip)
            checks.check(failures, dwell_col)
        checks.apply(block.policy, block.lines, block.reader_bad)
        kept = checks.kept()
        self.events.users.add_column(users, kept)
        self.events.items.add_column(items, kept)
        self.events.add_times(time_col, times, kept)
        if feedback is not None:
            self.events.add_feedback(label_col.per_row(feedback)[kept])
        else:
            self.ratings.append(rating_col.per_row(ratings)[kept])
        if cols.dwell:
            self.events.add_strength(dwell_col.per_row(dwell)[kept])


def _empty(col: Column) -> np.ndarray:
    """[K] bool: the text is empty."""
    import pyarrow.compute as pc

    return (pc.utf8_length(col.texts).to_numpy(zero_copy_only=False) == 0) if col.size else \
        np.zeros(0, bool)


# ---- item metadata ----------------------------------------------------------------------------------

def _table_item_meta(path: Path, cols: ItemColumns, event_items: np.ndarray, delimiter: str,
                     encoding: str, on_bad_rows: BadRows, report: LoadReport) -> ItemMeta:
    """The metadata table's items, then the event items it lacks (cluster -1); ids by the
    module's rule over all of them, so metadata ids join event ids exactly as spelled.
    ``event_items`` [K]: the distinct item ids of the events (sorted)."""
    needed = [cols.item] + [c for c in (cols.category, cols.creator) if c]
    meta_report = LoadReport(source=str(path))
    kinds = {c: "dict" for c in needed}
    row_ids: list[str] = []  # the kept rows' ids, in file order
    texts: dict[str, list[str]] = {c: [] for c in needed[1:]}
    for block in _read_table(path, delimiter, encoding, on_bad_rows, meta_report, needed, kinds):
        meta_report.rows_read += block.rows_read
        checks = RowChecks(block.n)
        if block.too_few is not None:
            checks.check(block.too_few)
        item = block.ids(cols.item)
        checks.fail_rows(item.per_row(_empty(item)), "empty item id",
                         lambda r: f"column {cols.item!r} is empty")
        checks.apply(block.policy, block.lines, block.reader_bad)
        kept = checks.kept()
        row_ids += item.texts_at(item.text_index(kept))
        for c in needed[1:]:
            col = block.ids(c)
            texts[c] += col.texts_at(col.text_index(kept))
        if block.error_after is not None:
            raise block.error_after
    first: dict[str, int] = {}
    for k, i in enumerate(row_ids):
        first.setdefault(i, k)
    keep = sorted(first.values())
    if len(keep) < len(row_ids):  # (reported while reading, before the metadata file's report)
        dup = next(k for k, i in enumerate(row_ids) if first[i] != k)
        report.repair("duplicate item rows in the metadata (first kept)", f"item {row_ids[dup]!r}",
                      len(row_ids) - len(keep))
    merge_meta_report(report, meta_report, path)
    id_texts = [row_ids[k] for k in keep]
    meta_ids = _raw_ids(id_texts)
    # items with events but no metadata row join the catalogue without cluster / creator; an
    # int64 side compares as its canonical text, which is exactly how it was spelled
    ev = event_items
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
    all_ids = id_texts + [str(m) for m in missing]
    column = {c: [texts[c][k] for k in keep] + [""] * len(missing) for c in needed[1:]}
    cats = column[cols.category] if cols.category else [""] * len(all_ids)
    creators = column[cols.creator] if cols.creator else [""] * len(all_ids)
    cat_names = sorted({c for c in cats if c})
    cre_names = sorted({c for c in creators if c})
    ci = {c: k for k, c in enumerate(cat_names)}
    ri = {c: k for k, c in enumerate(cre_names)}
    return ItemMeta(raw_ids=_raw_ids(all_ids),
                    cluster=np.array([ci.get(c, -1) for c in cats], np.int32),
                    cluster_names=cat_names,
                    creator=np.array([ri.get(c, -1) for c in creators], np.int32) if cols.creator else None,
                    creator_names=cre_names if cols.creator else None)


def _raw_ids(texts: list[str]) -> np.ndarray:
    """[N] int64 ids when every text is a canonical integer, else the texts (numpy strings)."""
    ints = read_table_ids(pa.array(texts, pa.string()))
    return ints if ints is not None else np.asarray(texts, dtype=str)


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
