"""An :class:`~negrec.data.log.EventLog` as an event store (:mod:`negrec.data.store`): writing
it (:meth:`StoredLog.save_store`), opening it memory-mapped (:meth:`StoredLog.open`), and
pickling an opened log by reference.

:class:`StoredLog` is the base of EventLog that holds these methods (``EventLog.save_store``,
``EventLog.open``); it knows the log's fields, not the class, so that this module and
:mod:`negrec.data.log` do not import each other.

Pickling: a log opened from a store (and a split's part of one, an
:class:`~negrec.data.log_view.EventLogView`, and the :class:`~negrec.data.collate.Collator`
over either) pickles the store's arrays by reference (the store's folder, the array's name and
its content hash; :func:`negrec.data.store.reference`) and the rest by value: its source and
report, item names, and what identifies a part (each user's first and last event, O(users)).
Unpickled, the arrays are mapped again, so that a DataLoader worker started with ``spawn`` or
``forkserver`` shares the store's pages. A log built in memory pickles its arrays by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from negrec.data import store
from negrec.data.log_meta import ItemMeta, LoadReport, raw_array
from negrec.files import json_safe

__all__ = ["StoredLog"]


@dataclass(frozen=True)
class _StoredChecks(store.HoldsMappedArrays):
    """What an event store recorded when it was written, valid for exactly the arrays it was
    opened with: the ranges of item ids and feedback codes (the store's arrays were validated
    then) and the statistics of :meth:`EventLog.stats`."""

    arrays: tuple  # (offsets, items, feedback) as opened
    num_items: int
    items: tuple[int, int]
    feedback: tuple[int, int]
    stats: dict

    @classmethod
    def of(cls, log, manifest: dict) -> "_StoredChecks":
        checked = manifest["checked"]
        return cls((log.offsets, log.items, log.feedback), log.item_meta.num_items,
                   tuple(checked["items"]), tuple(checked["feedback"]), manifest["stats"])

    def covers(self, log) -> bool:
        offsets, items, feedback = self.arrays
        return (log.offsets is offsets and log.items is items and log.feedback is feedback
                and log.item_meta.num_items == self.num_items)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "arrays": tuple(store.reference(a) for a in self.arrays)}


class StoredLog(store.HoldsMappedArrays):
    """The event store of an EventLog (the base class that gives EventLog these methods);
    pickled, an opened log's arrays go by reference (see the module)."""

    def save_store(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Writes the log as an event store in the folder ``out`` (:mod:`negrec.data.store`):
        its arrays as ``.npy`` files, a manifest with the source, report, item metadata, the
        checked ranges and statistics, and hashes. Open it with :meth:`open`."""
        self.validate()
        meta = self.item_meta
        arrays = {"offsets": self.offsets, "items": self.items, "timestamps": self.timestamps,
                  "feedback": self.feedback, "user_ids": self.user_ids,
                  "item_raw_ids": raw_array(meta.raw_ids), "item_cluster": meta.cluster}
        if self.strength is not None:
            arrays["strength"] = self.strength
        if meta.creator is not None:
            arrays["item_creator"] = meta.creator
        e = self.num_events
        info = {
            "source": self.source,
            "report": None if self.report is None else self.report.to_dict(),
            "item_meta": {"cluster_names": list(meta.cluster_names),
                          "creator_names": None if meta.creator_names is None
                          else list(meta.creator_names),
                          "titles": None if meta.titles is None else list(meta.titles)},
            "checked": {"items": [int(self.items.min()), int(self.items.max())] if e else [0, 0],
                        "feedback": [int(self.feedback.min()), int(self.feedback.max())] if e
                        else [1, 1]},
            "stats": json_safe(self._array_stats()),
        }
        return store.write_store(out, arrays, info, overwrite=overwrite)

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = False) -> "StoredLog":  # an EventLog
        """The log of the event store ``path`` (written by :meth:`save_store` /
        ``negrec data convert``), its arrays memory-mapped read-only: opening reads the
        manifest and the arrays' headers, not the events (time and memory do not grow with
        them; processes that open one store share its pages). The manifest and the files'
        sizes, dtypes and shapes are checked against each other; ``verify`` also hashes every
        byte (:func:`negrec.data.store.verify`) and checks every invariant on the events.

        The arrays are read-only: selections make new arrays; the parts of a split
        (:mod:`negrec.data.split`) are views that share them. Pickled, the log (or a part)
        refers to the store's arrays, mapped again where it is unpickled (see the module)."""
        path = Path(path)
        if verify:
            store.verify(path)
        arrays, manifest = store.read_store(path)
        names = manifest["item_meta"]
        meta = ItemMeta(raw_ids=arrays["item_raw_ids"], cluster=arrays["item_cluster"],
                        cluster_names=names["cluster_names"], creator=arrays.get("item_creator"),
                        creator_names=names["creator_names"], titles=names["titles"])
        report = LoadReport(**manifest["report"]) if manifest["report"] else None
        log = object.__new__(cls)  # the dataclass's __init__, with the store's checks first
        for name, value in (("offsets", arrays["offsets"]), ("items", arrays["items"]),
                            ("timestamps", arrays["timestamps"]), ("feedback", arrays["feedback"]),
                            ("user_ids", arrays["user_ids"]), ("item_meta", meta),
                            ("strength", arrays.get("strength")), ("source", manifest["source"]),
                            ("report", report)):
            setattr(log, name, value)
        log._stored = None
        log._normalise_arrays()
        if not verify:
            log._stored = _StoredChecks.of(log, manifest)
        try:
            log.validate()
        except ValueError as exc:
            raise store.StoreError(f"{path}: {exc}") from None
        if verify:
            log._stored = _StoredChecks.of(log, manifest)
        return log
