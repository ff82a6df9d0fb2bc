"""The events a load keeps, block by block, and the load report's rules shared by every loader.

:class:`EventColumns` collects the kept rows of each block as arrays (ids as codes into the
block's distinct ids) and builds the :class:`~negrec.data.log.EventLog` at the end, as
``EventLog.from_events`` would from the same events in source order (:func:`~negrec.data.csr.
build_csr`): users numbered in the sorted order of their raw ids, ids int64 when every kept id
is a canonical integer (else strings), events sorted by time within a user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negrec.data.csr import SourceEvents, build_csr_from
from negrec.data.loaders.columns import Column, _edge_bytes, read_table_ids
from negrec.data.loaders.times import Times
from negrec.data.loaders.errors import DataFormatError
from negrec.data.loaders.memory import release_free_memory
from negrec.data.log import EventLog, ItemMeta, LoadReport

__all__ = ["EventColumns", "IdColumn", "catalogue_positions", "merge_meta_report",
           "require_events"]

ROUNDED_TIMES = ("timestamps with a fraction, floored to whole units (events within one unit "
                 "keep the order of their exact times)")


#: Distinct ids that may wait to be merged into the ids found so far (or as many as those,
#: when more): each block's distinct ids (mostly the same ids again, block after block) are
#: merged in batches, so that they are not all kept (as many as the rows, with many users and
#: small blocks), and merging, whose cost is the ids found so far, costs in all O(rows read).
MERGE_IDS = 1 << 17


class IdColumn:
    """The ids of the kept events, block by block.

    Text ids (generic tables): each block's distinct texts and a code per kept event; the ids
    are int64 when every kept text is a canonical integer (a text with trailing NULs, which
    are dropped as numpy strings drop them, is none), else the texts. Integer ids
    (MovieLens, KuaiRand: already read as canonical integers): each block's distinct values.
    The blocks' distinct ids are merged (:data:`MERGE_IDS`) into the distinct ids found so far,
    in the order they are first seen, and the blocks' codes renumbered into them.
    """

    def __init__(self, *, text: bool):
        self.text = text
        self._known: pa.Array | None = None  # distinct ids merged so far, first seen first
        self._waiting: list[tuple[int, pa.Array]] = []  # (block, its distinct ids) to merge
        self._waiting_ids = 0
        # per block: int32 codes of its kept events, into its own distinct ids while they
        # wait, into _known once merged
        self._codes: list[np.ndarray] = []
        self._width = 1  # a numpy string array of the texts: its longest, trailing NULs included
        # a kept text ended in NUL characters: no canonical integer, so the ids are texts
        self._trailing_nul = False

    def add(self, distinct, codes: np.ndarray) -> None:
        """``codes`` [k] (into ``distinct``) of the kept events of a block; only the distinct
        ids the events use are kept."""
        present = np.bincount(codes, minlength=len(distinct)) > 0
        used = np.flatnonzero(present)
        renumber = np.cumsum(present, dtype=np.int64) - 1
        if self.text:
            ids = distinct.take(pa.array(used))
            if len(ids):
                self._width = max(self._width, pc.max(pc.utf8_length(ids)).as_py())
            stripped = _numpy_text(ids)
            self._trailing_nul |= stripped is not ids
            ids = stripped
        else:
            ids = pa.array(np.asarray(distinct[used], dtype=np.int64))
        self._waiting.append((len(self._codes), ids))
        self._waiting_ids += len(ids)
        self._codes.append(renumber[codes].astype(np.int32))
        if self._waiting_ids >= max(MERGE_IDS, 0 if self._known is None else len(self._known)):
            self._merge()

    def _merge(self) -> None:
        """The waiting blocks' distinct ids into ``_known`` (new ones after the known ones, in
        the order they come), their codes renumbered into it."""
        parts = ([] if self._known is None else [self._known]) + [ids for _, ids in self._waiting]
        if not parts:
            return
        encoded = pa.concat_arrays(parts).dictionary_encode()
        position = encoded.indices.to_numpy(zero_copy_only=False)
        at = 0 if self._known is None else len(self._known)
        for block, ids in self._waiting:
            self._codes[block] = position[at:at + len(ids)][self._codes[block]]
            at += len(ids)
        self._known, self._waiting, self._waiting_ids = encoded.dictionary, [], 0

    def add_column(self, col: Column, rows: np.ndarray) -> None:
        self.add(col.texts, col.codes[rows] if col.codes is not None else rows)

    def resolve(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids [K] sorted: int64 or str, codes [E] int64 into them) of every kept event."""
        self._merge()
        uniq = self._known if self._known is not None else \
            pa.array([], pa.string() if self.text else pa.int64())
        if self.text:
            ints = None if self._trailing_nul else read_table_ids(uniq)
            if ints is None:
                order = pc.sort_indices(uniq).to_numpy()
                ids = np.array(uniq.take(pa.array(order)).to_pylist(), dtype=f"<U{self._width}")
            else:
                order = np.argsort(ints, kind="stable")
                ids = ints[order]
        else:
            values = uniq.to_numpy(zero_copy_only=False)
            order = np.argsort(values, kind="stable")
            ids = values[order]
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        dtype = np.int32 if len(ids) < 2**31 else np.int64
        global_of = rank.astype(dtype)
        self._known = None
        return ids, _drain(self._codes, dtype, convert=lambda j, codes: global_of[codes])


def _numpy_text(texts: pa.Array) -> pa.Array:
    """Texts as a numpy string array holds them: trailing NUL characters dropped (so that ids
    compare as they did when they were numpy strings)."""
    _, last, _ = _edge_bytes(texts)
    if not (last == 0).any():
        return texts
    return pa.array([t.rstrip("\x00") for t in texts.to_pylist()], pa.string())


def catalogue_positions(catalogue: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The position of each of ``ids`` in ``catalogue`` (raw ids; compared as text when one
    side is int64 and the other text); every id must be there."""
    if catalogue.dtype.kind != ids.dtype.kind:
        catalogue, ids = catalogue.astype(str), ids.astype(str)
    order = np.argsort(catalogue, kind="stable")
    pos = np.minimum(np.searchsorted(catalogue[order], ids), max(len(catalogue) - 1, 0))
    if len(ids) and not np.all(catalogue[order][pos] == ids):
        missing = ids[catalogue[order][pos] != ids]
        raise ValueError(f"EventLog.from_events: {len(missing)} events refer to items missing "
                         f"from the item metadata (e.g. item {missing[0]!r})")
    return order[pos]


class EventColumns:
    """The kept events of one load, in source order: ids (:class:`IdColumn`), times, and
    feedback codes / strengths when the loader has them per event."""

    def __init__(self, *, text_ids: bool):
        self.users = IdColumn(text=text_ids)
        self.items = IdColumn(text=text_ids)
        self._whole: list[np.ndarray] = []
        # per block: the times' fractions, or None where they are all 0 (most tables: no
        # fraction is stored for them, 8 bytes per event less)
        self._fraction: list[np.ndarray | None] = []
        self._feedback: list[np.ndarray] = []
        self._strength: list[np.ndarray] = []
        self._items: tuple[np.ndarray, np.ndarray] | None = None  # resolved by item_ids()
        self.count = 0
        self.rounded_times = 0
        self.rounded_example = ""

    def __len__(self) -> int:
        return self.count

    def add_times(self, col: Column, times: Times, rows: np.ndarray) -> None:
        """The times of the kept ``rows`` (``times`` per text of ``col``)."""
        at = col.text_index(rows)
        self._whole.append(times.whole[at])
        fraction = times.fraction[at]
        self._fraction.append(fraction if fraction.any() else None)
        rounded = times.rounded[at]
        n = int(rounded.sum())
        if n:
            if not self.rounded_times:
                i = int(at[np.argmax(rounded)])
                self.rounded_example = f"{col.text(i).strip()!r} -> {int(times.whole[i])}"
            self.rounded_times += n
        self.count += len(rows)

    def add_feedback(self, codes: np.ndarray) -> None:
        self._feedback.append(np.asarray(codes, np.int8))

    def add_strength(self, values: np.ndarray) -> None:
        self._strength.append(np.asarray(values, np.float64))

    def strength(self) -> np.ndarray:
        """[E] float64 strengths of the kept events (as the source gave them)."""
        return _concat(self._strength, np.float64)

    def item_ids(self) -> np.ndarray:
        """[K] the distinct item ids of the kept events, sorted (int64 or str); resolved once,
        their codes kept for :meth:`to_log`."""
        if self._items is None:
            self._items = self.items.resolve()
        return self._items[0]

    def _take_items(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of the items, no longer held here (the log's build drops them)."""
        items = self._items if self._items is not None else self.items.resolve()
        self._items = None
        return items

    def to_log(self, *, report: LoadReport, source: str, feedback: np.ndarray | None = None,
               strength: np.ndarray | None = None, item_meta: ItemMeta | None = None,
               users=None, items=None) -> EventLog:
        """The log of these events. ``feedback`` / ``strength`` replace the collected ones;
        ``users`` / ``items``: (ids, codes) already resolved (the items otherwise as
        :meth:`item_ids` resolved them); ``item_meta``: the catalogue (without it, the items in
        sorted order of their ids). The collected arrays are dropped as the log is built."""
        if self.rounded_times:
            report.note(ROUNDED_TIMES, self.rounded_example, self.rounded_times)
        user_ids, user_codes = users if users is not None else self.users.resolve()
        item_ids, item_codes = items if items is not None else self._take_items()
        release_free_memory()  # what resolving the ids left free, before the arrays join
        if item_meta is None:
            item_meta = ItemMeta.anonymous(item_ids)
            dense_items = item_codes
        else:
            dense_items = catalogue_positions(_raw(item_meta.raw_ids), item_ids)[item_codes]
        if strength is None and self._strength:
            strength = self.strength()
        self._strength = []
        # handed over, so that build_csr_from drops each input once it is sorted
        events = SourceEvents(users=user_codes, items=dense_items, timestamps=None,
                              feedback=None, strength=strength)
        del user_codes, item_codes, dense_items, strength, users, items
        events.fractions = self._fractions() if self.rounded_times else None
        self._fraction = []
        events.timestamps = _drain(self._whole, np.int64)
        events.feedback = _drain(self._feedback, np.int8) if feedback is None else feedback
        self._feedback = []
        del feedback
        _check_feedback(events.feedback)
        release_free_memory()  # what reading the blocks left free, before the sort's peak
        csr = build_csr_from(events, len(user_ids), report=report, user_ids=user_ids)
        return EventLog(offsets=csr.offsets, items=csr.items, timestamps=csr.timestamps,
                        feedback=csr.feedback, strength=csr.strength, user_ids=user_ids,
                        item_meta=item_meta, source=source, report=report)

    def _fractions(self) -> np.ndarray:
        """[E] float64 fractions of the kept events' times (0 for blocks without any)."""
        return _concat([np.zeros(len(whole)) if frac is None else frac
                        for whole, frac in zip(self._whole, self._fraction)], np.float64)


def _raw(values: np.ndarray) -> np.ndarray:
    """Raw ids as ``EventLog.from_events`` compares them: int64, or str."""
    arr = np.asarray(values)
    return arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(str)


def _check_feedback(feedback: np.ndarray) -> None:
    if len(feedback) and (feedback.min() < 1 or feedback.max() > 4):
        bad = feedback[(feedback < 1) | (feedback > 4)][0]
        raise ValueError(f"EventLog.from_events: feedback codes must be 1..4 "
                         f"(positive..dislike); got {bad}")


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _drain(parts: list[np.ndarray], dtype, convert=None) -> np.ndarray:
    """The parts (``convert(j, part)`` of part j, if given) joined into one array of ``dtype``,
    as ``_concat`` joins them, emptying the list ``parts`` as it goes: each part is dropped
    once copied, and the result's pages are touched only as they are written, so that the
    memory used stays near one copy of the data (np.concatenate writes the whole result while
    every part is alive: two copies)."""
    out = np.empty(sum(len(p) for p in parts), dtype)
    parts.reverse()  # popped from the end: in order, each gone from the list once copied
    pos = j = 0
    while parts:
        part = parts.pop()
        if convert is not None:
            part = convert(j, part)
        out[pos:pos + len(part)] = part.astype(dtype, copy=False)
        pos, j = pos + len(part), j + 1
        del part
    return out


def merge_meta_report(report: LoadReport, meta_report: LoadReport, path: Path) -> None:
    """Adds a metadata file's drops, repairs and notes to the load's report, by file."""
    for counts, add in ((meta_report.dropped, report.drop), (meta_report.repaired, report.repair),
                        (meta_report.notes, report.note)):
        for reason, n in counts.items():
            add(f"{path.name}: {reason}", meta_report.examples.get(reason, ""), n)


def require_events(path: Path, report: LoadReport) -> None:
    """An event file that yields no event at all is empty, truncated or unreadable: an error
    (an empty log would only fail later, far from the cause)."""
    if report.rows_kept == 0:
        why = f"; dropped: {report.dropped}" if report.dropped else ""
        raise DataFormatError(f"{path}: no events read ({report.rows_read} rows read{why}); the "
                              "file is empty, truncated or not in the expected format")
