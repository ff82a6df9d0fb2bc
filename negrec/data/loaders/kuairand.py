"""KuaiRand "standard" logs (``log_standard_*.csv`` + optional ``video_features_basic*.csv``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.loaders.columns import Failures, read_floats, read_ids, strip_texts
from negrec.data.loaders.times import read_times
from negrec.data.loaders.errors import BadRows, DataFormatError
from negrec.data.loaders.events import EventColumns, merge_meta_report, require_events
from negrec.data.loaders.rows import RowChecks, TimeKinds
from negrec.data.loaders.sources import data_source
from negrec.data.loaders.text import TextFile
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

    def feedback_codes(self, is_like: np.ndarray, is_hate: np.ndarray, long_view: np.ndarray,
                       play_time_ms: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
        """[N] int8 codes of N exposures (float64 arrays), as :meth:`feedback` gives them."""
        skip = play_time_ms < np.maximum(self.skip_fraction * duration_ms, self.skip_max_ms)
        out = np.where(skip, int(Feedback.SKIP), int(Feedback.NEUTRAL)).astype(np.int8)
        out[(is_like != 0) | (long_view != 0)] = Feedback.POSITIVE
        out[is_hate != 0] = Feedback.DISLIKE
        return out


_KUAIRAND_NUMBERS = ("is_like", "is_hate", "long_view", "play_time_ms", "duration_ms")
_EVENT_FIELDS = ("user_id", "video_id", "time_ms") + _KUAIRAND_NUMBERS


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
    events = EventColumns(text_ids=False)
    kinds = TimeKinds("time_ms")
    for file in files:
        text = TextFile(file, delimiter=",", encoding="utf-8", header=True,
                        on_bad_rows=on_bad_rows, report=report, min_fields=1)
        for block, cols, too_few in _blocks(text, _EVENT_FIELDS, {"time_ms": "int",
                                                                  "play_time_ms": "int",
                                                                  "duration_ms": "int"}):
            report.rows_read += block.rows_read
            checks = RowChecks(block.n)
            checks.check(too_few)
            users, fail = read_ids(cols["user_id"], "user_id")
            checks.check(fail, cols["user_id"])
            videos, fail = read_ids(cols["video_id"], "video_id")
            checks.check(fail, cols["video_id"])
            times, fail = read_times(cols["time_ms"], "time_ms", datetimes=False)
            checks.check(fail, cols["time_ms"])
            kinds.check(checks, cols["time_ms"], times, block.lines, strip=False)
            numbers = {}
            for c in _KUAIRAND_NUMBERS:  # one bad field drops (and counts) the row once
                values, fail = read_floats(cols[c], c)
                checks.check(fail, cols[c])
                numbers[c] = values
            checks.apply(text.bad, block.lines, block.reader_bad)
            kept = checks.kept()
            per_row = {c: cols[c].per_row(v)[kept] for c, v in numbers.items()}
            events.users.add(users, cols["user_id"].text_index(kept))
            events.items.add(videos, cols["video_id"].text_index(kept))
            events.add_times(cols["time_ms"], times, kept)
            events.add_feedback(mapping.feedback_codes(**per_row))
            events.add_strength(per_row["play_time_ms"] / 1000.0)
            if block.error_after is not None:
                raise block.error_after
    report.rows_kept = len(events)
    require_events(path, report)
    feature_files = sorted(path.glob("video_features_basic*.csv")) if path.is_dir() else []
    meta = _kuairand_meta(feature_files, events.item_ids(), on_bad_rows, report)
    return events.to_log(report=report, source="kuairand", item_meta=meta)


def _blocks(text: TextFile, names: tuple[str, ...], kinds: dict[str, str]):
    """(block, {name: column}, too few fields) of a KuaiRand file, fields by the header."""
    text.start()
    try:
        idx = {c: text.column(c) for c in names}
    except DataFormatError:
        if text.report_until_good_row():
            raise
        return
    width = max(idx.values()) + 1
    for block in text.blocks({j: kinds.get(c, "dict") for c, j in idx.items()}):
        too_few = Failures.where(block.nfields < width, "too few fields",
                                 lambda r, nf=block.nfields: f"expected {width}, got {nf[r]}")
        yield block, {c: block.columns[j] for c, j in idx.items()}, too_few


def _kuairand_meta(files: list[Path], item_ids: np.ndarray, on_bad_rows: BadRows,
                   report: LoadReport) -> ItemMeta:
    """Category (first tag) and creator of each item from the video features; a video listed
    twice keeps its last row. ``item_ids`` [V] sorted int64."""
    if not files:
        return ItemMeta.anonymous(item_ids)
    seen = np.zeros(0, np.int64)  # videos of the files read so far
    vids, tags, authors = [], [], []
    for file in files:
        meta_report = LoadReport(source=str(file))
        text = TextFile(file, delimiter=",", encoding="utf-8", header=True,
                        on_bad_rows=on_bad_rows, report=meta_report, min_fields=1)
        file_vids = []
        text.start()
        try:
            idx = {c: text.column(c) for c in ("video_id", "author_id", "tag")}
        except DataFormatError:
            if text.report_until_good_row():
                raise
            idx = None
        blocks = text.blocks({j: "dict" for j in idx.values()}) if idx else ()
        for block in blocks:
            meta_report.rows_read += block.rows_read
            need = max(idx["video_id"], idx["author_id"])
            checks = RowChecks(block.n)
            checks.fail_rows(block.nfields <= need, "too few fields",
                             lambda r, nf=block.nfields: f"expected {need + 1}, got {nf[r]}")
            vid_col = block.columns[idx["video_id"]]
            values, fail = read_ids(vid_col, "video_id")
            checks.check(fail, vid_col)
            checks.apply(text.bad, block.lines, block.reader_bad)
            kept = checks.kept()
            file_vids.append(vid_col.per_row(values)[kept])
            tag_col = block.columns[idx["tag"]]
            first_tag = []
            for t in tag_col.texts.to_pylist():
                listed = [x for x in t.split(",") if x.strip()]
                first_tag.append(listed[0].strip() if listed else "")
            has_tag = block.nfields[kept] > idx["tag"]
            tags += [first_tag[k] if h else "" for k, h in zip(tag_col.text_index(kept), has_tag)]
            author_col = strip_texts(block.columns[idx["author_id"]])
            authors += author_col.texts_at(author_col.text_index(kept))
            if block.error_after is not None:
                raise block.error_after
        file_vids = np.concatenate(file_vids) if file_vids else np.zeros(0, np.int64)
        earlier = np.isin(file_vids, seen)
        _, first = np.unique(file_vids, return_index=True)
        again = np.ones(len(file_vids), bool)
        again[first] = False
        dup = np.flatnonzero(earlier | again)
        if len(dup):  # a raw string: "07" and "7" stay two authors
            meta_report.repair("duplicate video rows in the features (last kept)",
                               f"video {file_vids[dup[0]]}", len(dup))
        seen = np.union1d(seen, file_vids)
        vids.append(file_vids)
        merge_meta_report(report, meta_report, file)
    all_vids = np.concatenate(vids)
    # the last row of each video: the first in reverse order
    uniq, last_rev = np.unique(all_vids[::-1], return_index=True)
    last = len(all_vids) - 1 - last_rev
    tag_of = [tags[k] for k in last]
    author_of = [authors[k] for k in last]
    tag_names = sorted({t for t in tag_of if t})
    author_names = sorted({a for a in author_of if a})
    t_index = {t: i for i, t in enumerate(tag_names)}
    a_index = {a: i for i, a in enumerate(author_names)}
    pos = np.minimum(np.searchsorted(uniq, item_ids), max(len(uniq) - 1, 0))
    listed = (uniq[pos] == item_ids) if len(uniq) else np.zeros(len(item_ids), bool)
    cluster = np.array([t_index.get(tag_of[p], -1) if ok else -1 for p, ok in zip(pos, listed)],
                       np.int32)
    creator = np.array([a_index.get(author_of[p], -1) if ok else -1 for p, ok in zip(pos, listed)],
                       np.int32)
    missing = int((~listed).sum())
    if missing:
        report.repair("items missing from the video features (no category / creator)",
                      f"{missing} items", missing)
    return ItemMeta(raw_ids=item_ids, cluster=cluster, cluster_names=tag_names, creator=creator,
                    creator_names=author_names)


@data_source("kuairand")
def _from_spec(path: Path, spec) -> EventLog:
    return load_kuairand(path, on_bad_rows=spec.on_bad_rows)
