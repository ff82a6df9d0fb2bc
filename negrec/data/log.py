"""The in-memory event log: per user, time-ordered events stored as flat arrays (CSR).

Every data source (MovieLens, KuaiRand, generic CSV/Parquet, the simulator) becomes an
:class:`EventLog`; everything downstream (splits, the collator, training, evaluation) reads
only this. Its item metadata and load report: :mod:`negrec.data.log_meta`; writing and opening
it as an event store, and pickling an opened one by reference: :mod:`negrec.data.log_store`.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from negrec.data.csr import DUPLICATE_EVENTS, build_csr
from negrec.data.feedback import FEEDBACK_TYPES, Feedback
from negrec.data.log_meta import ItemMeta, LoadReport
from negrec.data.log_meta import raw_array as _raw_array
from negrec.data.log_store import StoredLog, _StoredChecks
from negrec.data.rows import EventRows, count_per_row
from negrec.errors import UserError

__all__ = ["DUPLICATE_EVENTS", "EventLog", "ItemMeta", "LoadReport"]


@dataclass
class EventLog(StoredLog):
    """Events of U users over V items, grouped by user and sorted by time (CSR layout).

    Arrays (E events):
      - ``offsets`` [U + 1] int64: user u's events are ``offsets[u]:offsets[u + 1]``;
      - ``items`` [E] int64 dense item ids in ``0..V-1``;
      - ``timestamps`` [E] int64 (seconds or any monotone clock);
      - ``feedback`` [E] int8 :class:`Feedback` codes (never ``PAD``);
      - ``strength`` [E] float32 or ``None``: dwell time, rating, ... as the source gives it.
    ``user_ids`` [U] holds the raw user ids; ``item_meta`` the items' raw ids and metadata.
    Within a user, events are in time order with ties kept in source order (stable).
    """

    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    feedback: np.ndarray
    user_ids: np.ndarray
    item_meta: ItemMeta
    strength: np.ndarray | None = None
    source: str = ""
    report: LoadReport | None = None
    #: what an event store recorded about these very arrays when it was written (set by
    #: :meth:`open`; a log made from other arrays, e.g. by ``dataclasses.replace``, has none)
    _stored: "_StoredChecks | None" = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._normalise_arrays()
        self.validate()

    def _normalise_arrays(self) -> None:
        """The arrays as C-contiguous int64 / int8 / float32 (no copy when they are)."""
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        self.items = np.ascontiguousarray(self.items, dtype=np.int64)
        self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.int64)
        self.feedback = np.ascontiguousarray(self.feedback, dtype=np.int8)
        if self.strength is not None:
            self.strength = np.ascontiguousarray(self.strength, dtype=np.float32)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_events(
        cls,
        users: Iterable,
        items: Iterable,
        timestamps: Iterable,
        feedback: Iterable,
        *,
        strength: Iterable | None = None,
        item_meta: ItemMeta | None = None,
        source: str = "",
        report: LoadReport | None = None,
        time_fractions: Iterable[float] | None = None,
    ) -> "EventLog":
        """Build a log from per-event arrays of raw user ids, raw item ids, times, codes.

        Users get dense ids in sorted order of their raw ids. Items get the dense ids of
        ``item_meta`` (whose ``raw_ids`` define the catalogue) when given; an event whose item
        is not in it is an error. Without metadata, items are numbered in sorted raw-id order.
        Each user's events are sorted by time, stably (ties keep their input order).
        ``time_fractions`` [E] float (optional): the part of each event's time below its
        integer timestamp (a loader that floored fractional times passes it); it orders events
        that share a timestamp and is not stored.
        """
        users = _raw_array(users)
        raw_items = _raw_array(items)
        ts = np.asarray(timestamps, dtype=np.int64)
        fb = np.asarray(feedback, dtype=np.int8)
        n = len(users)
        for name, arr in (("items", raw_items), ("timestamps", ts), ("feedback", fb)):
            if len(arr) != n:
                raise ValueError(f"EventLog.from_events: {name} has {len(arr)} entries, users has {n}")
        if n and (fb.min() < Feedback.POSITIVE or fb.max() > Feedback.DISLIKE):
            bad = fb[(fb < Feedback.POSITIVE) | (fb > Feedback.DISLIKE)][0]
            raise ValueError(f"EventLog.from_events: feedback codes must be 1..4 "
                             f"(positive..dislike); got {bad}")
        st = None if strength is None else np.asarray(strength, dtype=np.float32)
        if st is not None and len(st) != n:
            raise ValueError(f"EventLog.from_events: strength has {len(st)} entries, users has {n}")
        frac = None if time_fractions is None else np.asarray(time_fractions, dtype=np.float64)
        if frac is not None and len(frac) != n:
            raise ValueError(f"EventLog.from_events: time_fractions has {len(frac)} entries, "
                             f"users has {n}")

        if item_meta is None:
            uniq, dense_items = np.unique(raw_items, return_inverse=True)
            item_meta = ItemMeta.anonymous(uniq)
        else:
            catalogue = _raw_array(item_meta.raw_ids)
            if catalogue.dtype.kind != raw_items.dtype.kind:
                catalogue, raw_items = catalogue.astype(str), raw_items.astype(str)
            order = np.argsort(catalogue, kind="stable")
            pos = np.searchsorted(catalogue[order], raw_items)
            pos = np.minimum(pos, max(len(catalogue) - 1, 0))
            found = (len(catalogue) > 0) & (catalogue[order][pos] == raw_items) if n else np.zeros(0, bool)
            if n and not np.all(found):
                missing = raw_items[~found]
                raise ValueError(f"EventLog.from_events: {len(missing)} events refer to items "
                                 f"missing from the item metadata (e.g. item {missing[0]!r})")
            dense_items = order[pos] if n else np.zeros(0, np.int64)

        uniq_users, dense_users = np.unique(users, return_inverse=True)
        csr = build_csr(dense_users, len(uniq_users), np.asarray(dense_items), ts, fb,
                        strength=st, fractions=frac, report=report, user_ids=uniq_users)
        return cls(offsets=csr.offsets, items=csr.items, timestamps=csr.timestamps,
                   feedback=csr.feedback, strength=csr.strength, user_ids=uniq_users,
                   item_meta=item_meta, source=source, report=report)

    # ---- invariants ---------------------------------------------------------------------
    def validate(self) -> None:
        """Checks the CSR invariants; raises ValueError naming what is wrong. The arrays of an
        event store opened as they were written are not read again: their ranges were checked
        when the store was written (:meth:`open`)."""
        u = len(self.offsets) - 1
        e = len(self.items)
        if u < 0 or self.offsets[0] != 0 or self.offsets[-1] != e:
            raise ValueError(f"EventLog: offsets must start at 0 and end at the event count {e}; "
                             f"got {self.offsets[:1].tolist()}..{self.offsets[-1:].tolist()}")
        stored = self._stored if self._stored is not None and self._stored.covers(self) else None
        if stored is None and np.any(np.diff(self.offsets) < 0):
            i = int(np.argmax(np.diff(self.offsets) < 0))
            raise ValueError(f"EventLog: offsets must be non-decreasing; offsets[{i + 1}] = "
                             f"{self.offsets[i + 1]} < offsets[{i}] = {self.offsets[i]}")
        if len(self.user_ids) != u:
            raise ValueError(f"EventLog: user_ids has {len(self.user_ids)} entries for {u} users")
        for name, arr in (("timestamps", self.timestamps), ("feedback", self.feedback)):
            if len(arr) != e:
                raise ValueError(f"EventLog: {name} has {len(arr)} entries for {e} events")
        if self.strength is not None and len(self.strength) != e:
            raise ValueError(f"EventLog: strength has {len(self.strength)} entries for {e} events")
        v = self.item_meta.num_items
        lo, hi = stored.items if stored else (self.items.min(), self.items.max()) if e else (0, 0)
        if e and (lo < 0 or hi >= v):
            raise ValueError(f"EventLog: item ids must be in [0, {v}); got range [{lo}, {hi}]")
        lo, hi = stored.feedback if stored else (self.feedback.min(), self.feedback.max()) if e \
            else (1, 1)
        if e and (lo < Feedback.POSITIVE or hi > Feedback.DISLIKE):
            raise ValueError("EventLog: feedback codes must be 1..4 (positive..dislike)")

    # ---- access -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_items(self) -> int:
        return self.item_meta.num_items

    @property
    def num_events(self) -> int:
        return len(self.items)

    def lengths(self, feedback: Iterable[Feedback] | None = None) -> np.ndarray:
        """[U] number of events per user (only of the given feedback types, if any; counted
        in chunks of events, without a per-event temporary)."""
        if feedback is None:
            return np.diff(self.offsets)
        codes = np.zeros(len(Feedback), dtype=bool)
        codes[[int(f) for f in feedback]] = True
        rows = self.event_rows()
        return count_per_row(rows.feedback, rows.starts, rows.stops, lambda fb: codes[fb])

    def event_rows(self) -> EventRows:
        """Where each user's events lie, without a copy (:class:`~negrec.data.rows.EventRows`):
        this log's arrays, user u's events at ``offsets[u]:offsets[u + 1]``. A part of a split
        (:class:`~negrec.data.log_view.EventLogView`) gives the arrays it shares instead."""
        return EventRows(self.offsets[:-1], self.offsets[1:], self.items, self.timestamps,
                         self.feedback, self.strength, self.offsets)

    def user_slice(self, user: int) -> slice:
        return slice(int(self.offsets[user]), int(self.offsets[user + 1]))

    def user_events(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, feedback) of one user, in time order."""
        s = self.user_slice(user)
        return self.items[s], self.feedback[s]

    def feedback_counts(self) -> dict[str, int]:
        counts = np.bincount(self.feedback, minlength=len(Feedback))
        return {f.label: int(counts[f]) for f in FEEDBACK_TYPES}

    def item_counts(self, feedback: Iterable[Feedback] | None = None) -> np.ndarray:
        """[V] events per item (only of the given feedback types, if any)."""
        items = self.items
        if feedback is not None:
            items = items[np.isin(self.feedback, [int(f) for f in feedback])]
        return np.bincount(items, minlength=self.num_items)

    def stats(self) -> dict[str, Any]:
        """Users, items, events, events per feedback type and sequence-length percentiles (of
        an event store opened as written: as recorded when it was written)."""
        if self._stored is not None and self._stored.covers(self):
            out = {"source": self.source, **self._stored.stats}
        else:
            out = {"source": self.source, **self._array_stats()}
        if self.report is not None:
            out["load_report"] = {"rows_read": self.report.rows_read,
                                  "rows_kept": self.report.rows_kept,
                                  "dropped": self.report.dropped,
                                  "repaired": self.report.repaired,
                                  "notes": self.report.notes}
        return out

    def _array_stats(self) -> dict[str, Any]:
        """The statistics computed from the arrays (everything but source and report)."""
        lengths = self.lengths()
        pct = {}
        if len(lengths):
            for p in (0, 5, 25, 50, 75, 95, 100):
                pct[f"p{p}"] = float(np.percentile(lengths, p))
        meta = self.item_meta
        return {
            "users": self.num_users,
            "items": self.num_items,
            "events": self.num_events,
            **self.feedback_counts(),
            "items_with_events": int((self.item_counts() > 0).sum()),
            "sequence_length": pct,
            "clusters": len(meta.cluster_names),
            "items_without_cluster": int((meta.cluster < 0).sum()),
            "creators": len(meta.creator_names) if meta.creator_names is not None else 0,
        }

    # ---- selection ----------------------------------------------------------------------
    def select_events(self, keep: np.ndarray, source: str | None = None) -> "EventLog":
        """A log with only the events where ``keep`` [E] is true (users are kept, maybe empty)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.num_events,):
            raise ValueError(f"select_events: keep must have shape [{self.num_events}]; got "
                             f"{list(keep.shape)}")
        user_of_event = np.repeat(np.arange(self.num_users), self.lengths())
        counts = np.bincount(user_of_event[keep], minlength=self.num_users)
        offsets = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return EventLog(offsets=offsets, items=self.items[keep], timestamps=self.timestamps[keep],
                        feedback=self.feedback[keep],
                        strength=None if self.strength is None else self.strength[keep],
                        user_ids=self.user_ids, item_meta=self.item_meta,
                        source=source or self.source, report=self.report)

    def select_users(self, users: np.ndarray) -> "EventLog":
        """A log of the given users (dense indices), in that order."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.num_users):
            raise ValueError(f"select_users: user indices must be in [0, {self.num_users})")
        lengths = self.lengths()[users]
        offsets = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        idx = np.concatenate([np.arange(self.offsets[u], self.offsets[u + 1]) for u in users]) \
            if len(users) else np.zeros(0, np.int64)
        return EventLog(offsets=offsets, items=self.items[idx], timestamps=self.timestamps[idx],
                        feedback=self.feedback[idx],
                        strength=None if self.strength is None else self.strength[idx],
                        user_ids=self.user_ids[users], item_meta=self.item_meta,
                        source=self.source, report=self.report)

    # ---- the .npz file (the event store: negrec.data.log_store) -------------------------
    def save(self, path: str | Path) -> Path:
        """Saves to a compressed-free .npz (fast to write and to load)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta = self.item_meta
        extra = {
            "source": self.source,
            "cluster_names": meta.cluster_names,
            "creator_names": meta.creator_names,
            "titles": meta.titles,
            "report": None if self.report is None else self.report.to_dict(),
        }
        arrays = dict(offsets=self.offsets, items=self.items, timestamps=self.timestamps,
                      feedback=self.feedback, user_ids=self.user_ids, item_raw_ids=meta.raw_ids,
                      item_cluster=meta.cluster, meta_json=np.array(json.dumps(extra, allow_nan=False)))
        if self.strength is not None:
            arrays["strength"] = self.strength
        if meta.creator is not None:
            arrays["item_creator"] = meta.creator
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EventLog":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"event log file not found: {path}")
        try:
            return cls._load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise UserError(f"{path}: not a readable negrec event log ({type(exc).__name__}: "
                             f"{exc}); the file is truncated or corrupt") from None

    @classmethod
    def _load(cls, path: Path) -> "EventLog":
        with np.load(path, allow_pickle=False) as z:
            extra = json.loads(str(z["meta_json"]))
            meta = ItemMeta(raw_ids=z["item_raw_ids"], cluster=z["item_cluster"],
                            cluster_names=list(extra["cluster_names"]),
                            creator=z["item_creator"] if "item_creator" in z else None,
                            creator_names=extra.get("creator_names"), titles=extra.get("titles"))
            report = LoadReport(**extra["report"]) if extra.get("report") else None
            return cls(offsets=z["offsets"], items=z["items"], timestamps=z["timestamps"],
                       feedback=z["feedback"], user_ids=z["user_ids"], item_meta=meta,
                       strength=z["strength"] if "strength" in z else None,
                       source=extra["source"], report=report)
