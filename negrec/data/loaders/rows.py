"""Bad rows of a block, found by vectorised checks and reported as the row-by-row reader did.

A loader runs its checks over a block in the order its rules give them; a row fails at most
once, at its first failing check (:class:`RowChecks`). :meth:`RowChecks.apply` then hands the
block's bad rows, with the reader's own (unclosed quotes, too few fields), to the bad-row
policy in line order: in error mode the first one raises; in skip mode each reason is counted,
its first example being its first line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from negrec.data.loaders.columns import Column, Failures
from negrec.data.loaders.times import KIND_NAMES, Times
from negrec.data.loaders.errors import BadRowPolicy

__all__ = ["BadRow", "RowChecks", "TimeKinds"]


@dataclass(frozen=True)
class BadRow:
    """A bad row the reader found itself (before any check of the loader)."""

    line: int
    reason: str
    detail: str


class _Detail:
    """The detail of a failing value, made when a report needs it."""

    def __init__(self, failures: Failures, i: int):
        self.failures, self.i = failures, i

    def __call__(self) -> str:
        return self.failures.detail(self.i)

    def in_error_mode(self) -> str:
        return self.failures.error_details.get(self.i) or self.failures.detail(self.i)


class RowChecks:
    """The first failing check of each of the ``n`` rows of a block.

    ``alive`` [n] bool: the rows that passed every check so far.
    """

    def __init__(self, n: int):
        self.n = n
        self.alive = np.ones(n, bool)
        self._failed_at = np.zeros(n, np.int16)  # 0: none, else 1 + index into _checks
        self._checks: list[tuple[Failures, Column | None]] = []

    def check(self, failures: Failures, col: Column | None = None) -> None:
        """Fails the alive rows whose value (``col``'s text; without ``col``, the row itself)
        ``failures`` refuses."""
        if not failures.code.any():
            self._checks.append((failures, col))
            return
        code = failures.code if col is None else col.per_row(failures.code)
        newly = self.alive & (code != 0)
        if newly.any():
            self._failed_at[newly] = len(self._checks) + 1
            self.alive &= ~newly
        self._checks.append((failures, col))

    def fail_rows(self, mask: np.ndarray, reason: str, detail_of: Callable[[int], str]) -> None:
        """Fails the alive rows where ``mask`` [n] is true, with one reason; ``detail_of(row)``."""
        self.check(Failures.where(mask, reason, detail_of))

    def kept(self) -> np.ndarray:
        """Indices of the rows that passed every check."""
        return np.flatnonzero(self.alive)

    def _failures(self):
        """(first row, count, reason, check, index into the check's values) per (check,
        reason), and the first row of each check that raises an exception."""
        failed = np.flatnonzero(self._failed_at)
        groups, raising = [], []
        if not len(failed):
            return groups, raising
        at = self._failed_at[failed]
        for c in np.unique(at):
            rows = failed[at == c]
            failures, col = self._checks[int(c) - 1]
            index = rows if col is None else col.text_index(rows)
            codes = failures.code[index]
            uniq, first, counts = np.unique(codes, return_index=True, return_counts=True)
            for code, f, n in zip(uniq, first, counts):
                reason = failures.reasons[int(code) - 1]
                if reason == "(error)":
                    hit = rows[codes == code]
                    errs = index[codes == code]
                    j = next(k for k, e in enumerate(errs) if int(e) in failures.errors)
                    raising.append((int(hit[j]), failures.errors[int(errs[j])]))
                    continue
                groups.append((int(rows[f]), int(n), reason, failures, int(index[f])))
        return groups, raising

    def apply(self, policy: BadRowPolicy, lines: Callable[[np.ndarray], np.ndarray],
              reader_bad: list[BadRow] = ()) -> None:
        """Reports the bad rows of the block (``lines(rows)`` [k] their line numbers; the
        reader's bad rows ``reader_bad`` in line order) through ``policy``."""
        groups, raising = self._failures()
        if not groups and not raising and not reader_bad:
            return
        first_rows = np.array([g[0] for g in groups] + [r for r, _ in raising], np.int64)
        first_lines = lines(first_rows) if len(first_rows) else np.zeros(0, np.int64)
        # (line, reason, count, detail thunk, error-mode raiser or None, exception or None)
        events = []
        for (row, n, reason, failures, i), line in zip(groups, first_lines[:len(groups)]):
            events.append((int(line), reason, n, _Detail(failures, i),
                           failures.raise_first and (lambda f=failures, i=i, l=int(line):
                                                     f.raise_first(l, i)), None))
        for (_, exc), line in zip(raising, first_lines[len(groups):]):
            events.append((int(line), None, 0, None, None, exc))
        merged: dict[str, list] = {}
        for bad in reader_bad:
            if bad.reason in merged:
                merged[bad.reason][2] += 1
            else:
                merged[bad.reason] = [bad.line, bad.reason, 1, (lambda d=bad.detail: d), None, None]
        for line, reason, n, detail, raiser, exc in sorted(events, key=lambda e: e[0]):
            if exc is not None:
                continue
            if reason in merged:
                entry = merged[reason]
                entry[2] += n
                if line < entry[0]:
                    entry[0], entry[3], entry[4] = line, detail, raiser
            else:
                merged[reason] = [line, reason, n, detail, raiser, None]
        ordered = sorted(merged.values(), key=lambda e: e[0])
        first_exc = min(((line, exc) for line, _, _, _, _, exc in events if exc is not None),
                        default=None, key=lambda e: e[0])
        if policy.policy == "error":
            first = ordered[0] if ordered else None
            if first_exc is not None and (first is None or first_exc[0] < first[0]):
                raise first_exc[1]
            line, reason, _, detail, raiser, _ = first
            if raiser is not None:
                raise raiser()
            policy(line, reason, getattr(detail, "in_error_mode", detail)())
            raise AssertionError("the error policy returned")  # pragma: no cover
        if first_exc is not None:
            raise first_exc[1]
        for line, reason, n, detail, _, _ in ordered:
            policy.report.drop(reason, f"line {line}: {detail()}", n)


class TimeKinds:
    """The one-kind rule of a time column (:class:`.parse.TimeColumn`): the first row (in file
    order) whose time reads sets the column's kind, a number or a date-time; a later time of
    the other kind is a bad row ("mixed {what} kinds")."""

    def __init__(self, what: str):
        self.what = what
        self.first: tuple[int, int] | None = None  # (kind, line)

    def check(self, checks: RowChecks, col: Column, times: Times,
              lines: Callable[[np.ndarray], np.ndarray], *, strip: bool) -> None:
        """After the check of ``times`` (read from ``col``): fails the rows of the other kind."""
        kind = col.per_row(times.kind)
        read = checks.alive & (kind > 0)
        if not read.any():
            return
        if self.first is None:
            row = int(np.argmax(read))
            self.first = (int(kind[row]), int(lines(np.array([row]))[0]))
        first_kind, first_line = self.first

        def detail(r: int) -> str:
            value = col.row_text(r)
            value = value.strip() if strip else value
            return (f"{value!r} is {KIND_NAMES[int(kind[r])]} but line {first_line} holds "
                    f"{KIND_NAMES[first_kind]}; one column holds numbers or date-times, not both")

        checks.fail_rows(read & (kind != first_kind), f"mixed {self.what} kinds", detail)
