"""The events a load keeps, and the load report's rules shared by every loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from negrec.data.loaders.errors import DataFormatError
from negrec.data.loaders.parse import Time
from negrec.data.log import EventLog, ItemMeta, LoadReport

__all__ = ["EventRows", "merge_meta_report", "require_events"]


class EventRows:
    """The kept events of one load, in source order, as EventLog.from_events takes them."""

    def __init__(self) -> None:
        self.users: list = []
        self.items: list = []
        self.times: list[int] = []
        self.fractions: list[float] = []
        self.feedback: list[int] = []
        self.strength: list[float] = []
        self.rounded_times = 0
        self.rounded_example = ""

    def __len__(self) -> int:
        return len(self.users)

    def add(self, user, item, time: Time, feedback: int | None = None,
            strength: float | None = None) -> None:
        self.users.append(user)
        self.items.append(item)
        self.times.append(time.whole)
        self.fractions.append(time.fraction)
        if time.rounded:
            self.rounded_times += 1
            self.rounded_example = self.rounded_example or f"{time.text!r} -> {time.whole}"
        if feedback is not None:
            self.feedback.append(feedback)
        if strength is not None:
            self.strength.append(strength)

    def to_log(self, *, report: LoadReport, source: str, users=None, items=None, feedback=None,
               strength=None, item_meta: ItemMeta | None = None) -> EventLog:
        """The log of these events (``users`` / ``items`` / ``feedback`` / ``strength`` replace
        the collected lists, e.g. ids converted by :func:`raw_ids`)."""
        if self.rounded_times:
            report.note("timestamps with a fraction, floored to whole units (events within one "
                        "unit keep the order of their exact times)", self.rounded_example,
                        self.rounded_times)
        fractions = np.asarray(self.fractions) if self.rounded_times else None
        return EventLog.from_events(
            self.users if users is None else users, self.items if items is None else items,
            self.times, self.feedback if feedback is None else feedback,
            strength=(self.strength or None) if strength is None else strength,
            item_meta=item_meta, source=source, report=report, time_fractions=fractions)


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
