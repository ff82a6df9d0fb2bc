"""The in-memory event log: per user, time-ordered events stored as flat arrays (CSR).

Every data source (MovieLens, KuaiRand, generic CSV/Parquet, the simulator) becomes an
:class:`EventLog`; everything downstream (splits, the collator, training, evaluation) reads
only this.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from negrec.data.feedback import FEEDBACK_TYPES, Feedback
from negrec.errors import UserError

__all__ = ["EventLog", "ItemMeta", "LoadReport"]

#: The LoadReport note counting exact duplicate events (kept, not merged).
DUPLICATE_EVENTS = "duplicate events (same user, item, time and feedback; all kept)"


@dataclass
class LoadReport:
    """What a loader or filter did to the raw rows: nothing is dropped silently."""

    source: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    repaired: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first example
    # kept as they are but worth knowing (e.g. duplicate events): reason -> count
    notes: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, example: str = "", count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def repair(self, reason: str, example: str = "", count: int = 1) -> None:
        self.repaired[reason] = self.repaired.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def note(self, reason: str, example: str = "", count: int = 1) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def summary(self) -> str:
        parts = [f"{self.source}: read {self.rows_read} rows, kept {self.rows_kept}"]
        for reason, n in self.dropped.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"dropped {n}: {reason}{ex}")
        for reason, n in self.repaired.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"repaired {n}: {reason}{ex}")
        for reason, n in self.notes.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"noted {n}: {reason}{ex}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ItemMeta:
    """Item metadata, indexed by dense item id 0..V-1.

    ``cluster`` is the content cluster/category of each item (-1 when unknown), with names in
    ``cluster_names``; ``creator`` likewise (``None`` when the source has no creators).
    """

    raw_ids: np.ndarray  # [V] raw item ids (int64 or str)
    cluster: np.ndarray  # [V] int32
    cluster_names: list[str]
    creator: np.ndarray | None = None  # [V] int32
    creator_names: list[str] | None = None
    titles: list[str] | None = None

    def __post_init__(self) -> None:
        v = len(self.raw_ids)
        self.cluster = np.asarray(self.cluster, dtype=np.int32)
        if self.cluster.shape != (v,):
            raise ValueError(f"ItemMeta.cluster must have shape [{v}] (one per item); got "
                             f"{list(self.cluster.shape)}")
        if v and (self.cluster.min() < -1 or self.cluster.max() >= len(self.cluster_names)):
            raise ValueError(f"ItemMeta.cluster values must be -1 or < len(cluster_names) = "
                             f"{len(self.cluster_names)}; got range [{self.cluster.min()}, "
                             f"{self.cluster.max()}]")
        if self.creator is not None:
            self.creator = np.asarray(self.creator, dtype=np.int32)
            if self.creator.shape != (v,):
                raise ValueError(f"ItemMeta.creator must have shape [{v}]; got "
                                 f"{list(self.creator.shape)}")

    @property
    def num_items(self) -> int:
        return len(self.raw_ids)

    @property
    def has_creators(self) -> bool:
        return self.creator is not None

    @classmethod
    def anonymous(cls, raw_ids: np.ndarray) -> "ItemMeta":
        """Metadata for items with no known cluster or creator."""
        return cls(raw_ids=np.asarray(raw_ids), cluster=np.full(len(raw_ids), -1, np.int32),
                   cluster_names=[])


def _note_order_and_duplicates(report: LoadReport, users: np.ndarray, items: np.ndarray,
                               ts: np.ndarray, fractions: np.ndarray | None, fb: np.ndarray,
                               perm: np.ndarray, raw_users: np.ndarray) -> None:
    """Records in ``report`` the events that came out of time order (they are sorted) and the
    exact duplicates (same user, item, time and feedback; all kept). Times compare as
    (``ts``, ``fractions``) when the fractions below the integer timestamps are given."""
    # out of order: an event earlier in time than the user's previous event in the source
    src = np.lexsort((np.arange(len(users)), users))  # by user, in source order
    su, st = users[src], ts[src]
    earlier = st[1:] < st[:-1]
    if fractions is not None:
        sf = fractions[src]
        earlier |= (st[1:] == st[:-1]) & (sf[1:] < sf[:-1])
    back = (su[1:] == su[:-1]) & earlier
    if back.any():
        j = int(np.argmax(back)) + 1
        report.note("events out of time order in the source (sorted by time, ties in source order)",
                    f"user {raw_users[su[j]].item()!r} at time {int(st[j])} after {int(st[j - 1])}",
                    int(back.sum()))
    # in (user, time) order, duplicates of one event are adjacent unless other events share
    # their time: sort by every field that defines an event and compare neighbours
    fields = [fb[perm], items[perm]] + ([] if fractions is None else [fractions[perm]]) + \
        [ts[perm], users[perm]]
    key = np.lexsort(fields)
    ordered = [f[key] for f in fields]
    dup = np.logical_and.reduce([f[1:] == f[:-1] for f in ordered])
    if dup.any():
        j = int(np.argmax(dup)) + 1
        report.note(DUPLICATE_EVENTS, f"user {raw_users[ordered[-1][j]].item()!r}, time "
                    f"{int(ordered[-2][j])}", int(dup.sum()))


def _raw_array(values: Iterable) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr.astype(str)


@dataclass
class EventLog:
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

    def __post_init__(self) -> None:
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        self.items = np.ascontiguousarray(self.items, dtype=np.int64)
        self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.int64)
        self.feedback = np.ascontiguousarray(self.feedback, dtype=np.int8)
        if self.strength is not None:
            self.strength = np.ascontiguousarray(self.strength, dtype=np.float32)
        self.validate()

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
        # primary key user, then time (then its fraction), then input position (stable ties)
        keys = (np.arange(n), ts, dense_users) if frac is None else \
            (np.arange(n), frac, ts, dense_users)
        perm = np.lexsort(keys)
        if report is not None and n > 1:
            _note_order_and_duplicates(report, dense_users, np.asarray(dense_items), ts, frac, fb,
                                       perm, uniq_users)
        counts = np.bincount(dense_users, minlength=len(uniq_users))
        offsets = np.zeros(len(uniq_users) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets=offsets, items=np.asarray(dense_items)[perm], timestamps=ts[perm],
                   feedback=fb[perm], strength=None if st is None else st[perm],
                   user_ids=uniq_users, item_meta=item_meta, source=source, report=report)

    # ---- invariants ---------------------------------------------------------------------
    def validate(self) -> None:
        """Checks the CSR invariants; raises ValueError naming what is wrong."""
        u = len(self.offsets) - 1
        e = len(self.items)
        if u < 0 or self.offsets[0] != 0 or self.offsets[-1] != e:
            raise ValueError(f"EventLog: offsets must start at 0 and end at the event count {e}; "
                             f"got {self.offsets[:1].tolist()}..{self.offsets[-1:].tolist()}")
        if np.any(np.diff(self.offsets) < 0):
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
        if e and (self.items.min() < 0 or self.items.max() >= v):
            raise ValueError(f"EventLog: item ids must be in [0, {v}); got range "
                             f"[{self.items.min()}, {self.items.max()}]")
        if e and (self.feedback.min() < Feedback.POSITIVE or self.feedback.max() > Feedback.DISLIKE):
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

    def lengths(self) -> np.ndarray:
        """[U] number of events per user."""
        return np.diff(self.offsets)

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
        """Users, items, events, events per feedback type and sequence-length percentiles."""
        lengths = self.lengths()
        pct = {}
        if len(lengths):
            for p in (0, 5, 25, 50, 75, 95, 100):
                pct[f"p{p}"] = float(np.percentile(lengths, p))
        meta = self.item_meta
        out: dict[str, Any] = {
            "source": self.source,
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
        if self.report is not None:
            out["load_report"] = {"rows_read": self.report.rows_read,
                                  "rows_kept": self.report.rows_kept,
                                  "dropped": self.report.dropped,
                                  "repaired": self.report.repaired,
                                  "notes": self.report.notes}
        return out

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

    # ---- persistence --------------------------------------------------------------------
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
