"""KuaiRand "standard" logs (``log_standard_*.csv`` + optional ``video_features_basic*.csv``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.loaders.errors import BadRows
from negrec.data.loaders.events import EventRows, merge_meta_report, require_events
from negrec.data.loaders.parse import TimeColumn, parse_float, parse_id
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.text import Rows
from negrec.data.log import EventLog, ItemMeta, LoadReport

__all__ = ["KuaiRandMapping", "load_kuairand"]


@dataclass(frozen=True)
class KuaiRandMapping:
    """KuaiRand exposure -> feedback, in priority order: ``is_hate`` -> dislike; ``is_like`` or
    ``long_view`` -> positive; a play shorter than ``skip_fraction`` of the video's duration
    (or than ``skip_max_ms``, whichever is longer) -> skip; anything else neutral."""

    skip_fraction: float = 0.1
    skip_max_ms: int = 3000

    def feedback(self, is_like: float, is_hate: float, long_view: float, play_time_ms: float,
                 duration_ms: float) -> Feedback:
        if is_hate:
            return Feedback.DISLIKE
        if is_like or long_view:
            return Feedback.POSITIVE
        if play_time_ms < max(self.skip_fraction * duration_ms, self.skip_max_ms):
            return Feedback.SKIP
        return Feedback.NEUTRAL


_KUAIRAND_NUMBERS = ("is_like", "is_hate", "long_view", "play_time_ms", "duration_ms")


def load_kuairand(
    path: str | Path,
    *,
    mapping: KuaiRandMapping = KuaiRandMapping(),
    on_bad_rows: BadRows = "error",
) -> EventLog:
    """A KuaiRand folder: every ``log_standard_*.csv`` in it, plus categories (the video's
    first tag) and creators (``author_id``) from ``video_features_basic*.csv`` when present.
    The play time in seconds is kept as ``strength``. User and video ids are canonical
    integers; ``time_ms`` follows the module's timestamp rule (numbers only, milliseconds)."""
    path = Path(path)
    files = sorted(path.glob("log_standard_*.csv")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"{path}: no KuaiRand log_standard_*.csv files found")
    report = LoadReport(source="kuairand")
    events = EventRows()
    times = TimeColumn(datetimes=False)
    for file in files:
        rows = Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("user_id", "video_id", "time_ms") + _KUAIRAND_NUMBERS}
                width = max(cols.values()) + 1
            if len(f) < width:
                rows.bad(line_no, "too few fields", f"expected {width}, got {len(f)}")
                continue
            # one bad field drops (and counts) the row once: stop at the first
            user = parse_id(rows.bad, line_no, f[cols["user_id"]], "user_id")
            if user is None:
                continue
            video = parse_id(rows.bad, line_no, f[cols["video_id"]], "video_id")
            if video is None:
                continue
            time = times.parse(rows.bad, line_no, f[cols["time_ms"]], "time_ms")
            if time is None:
                continue
            numbers = {}
            for c in _KUAIRAND_NUMBERS:
                numbers[c] = parse_float(rows.bad, line_no, f[cols[c]], c)
                if numbers[c] is None:
                    break
            if any(v is None for v in numbers.values()):
                continue
            events.add(user, video, time, int(mapping.feedback(**numbers)),
                       numbers["play_time_ms"] / 1000.0)
    report.rows_kept = len(events)
    require_events(path, report)
    feature_files = sorted(path.glob("video_features_basic*.csv")) if path.is_dir() else []
    meta = _kuairand_meta(feature_files, np.unique(np.asarray(events.items, dtype=np.int64)),
                          on_bad_rows, report)
    return events.to_log(report=report, source="kuairand", item_meta=meta)


def _kuairand_meta(files: list[Path], item_ids: np.ndarray, on_bad_rows: BadRows,
                   report: LoadReport) -> ItemMeta:
    if not files:
        return ItemMeta.anonymous(item_ids)
    tag_of: dict[int, str] = {}
    author_of: dict[int, str] = {}
    for file in files:
        meta_report = LoadReport(source=str(file))
        rows = Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=meta_report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("video_id", "author_id", "tag")}
            if len(f) <= max(cols["video_id"], cols["author_id"]):
                rows.bad(line_no, "too few fields",
                         f"expected {max(cols['video_id'], cols['author_id']) + 1}, got {len(f)}")
                continue
            vid = parse_id(rows.bad, line_no, f[cols["video_id"]], "video_id")
            if vid is None:
                continue
            tags = [t for t in f[cols["tag"]].split(",") if t.strip()] if cols["tag"] < len(f) else []
            if vid in tag_of:
                meta_report.repair("duplicate video rows in the features (last kept)", f"video {vid}")
            tag_of[vid] = tags[0].strip() if tags else ""
            author_of[vid] = f[cols["author_id"]].strip()  # a raw string: "07" and "7" stay two
        merge_meta_report(report, meta_report, file)
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


@data_source("kuairand")
def _from_spec(path: Path, spec) -> EventLog:
    return load_kuairand(path, on_bad_rows=spec.on_bad_rows)
