"""A text file's records as the csv module reads them, and the :class:`Block` of rows a
:class:`~negrec.data.loaders.text.TextFile` hands a loader.

This is the reading every block can fall back to (:mod:`.text` says when; the fast path is
:mod:`.text_arrow`): the file's physical lines, numbered as the file's (:func:`lines_in`,
:class:`NumberedLines`); the records ``csv.reader`` reads from them (:func:`read_records`),
where a quoted field that does not close on its line is a bad row and the lines after it are
read again as records of their own; and the rows of a block collected from those records
(:class:`BlockRows`), with the bad rows the reader finds itself: unclosed quotes and too few
fields.
"""

from __future__ import annotations

import csv
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from negrec.data.loaders.columns import Column
from negrec.data.loaders.errors import DataFormatError
from negrec.data.loaders.rows import BadRow

__all__ = ["Block", "BlockRows", "NumberedLines", "lines_in", "read_records"]

_LINE_BYTES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


@dataclass
class Block:
    """The rows of a run of whole lines of a text file.

    ``n`` rows (not blank, not refused by the reader); ``columns``: the requested fields (a
    field a row lacks is ``""``); ``nfields`` [n] int32 each row's field count;
    ``lines(rows)`` their line numbers; ``reader_bad``: the rows the reader refused (in line
    order); ``rows_read``: every non-blank row; ``error_after``: an error to raise once these
    rows are reported (the file cannot be read further).
    """

    n: int
    columns: dict[int, Column]
    nfields: np.ndarray
    lines: Callable[[np.ndarray], np.ndarray]
    rows_read: int
    reader_bad: list[BadRow] = field(default_factory=list)
    error_after: Exception | None = None


# ---- lines ----------------------------------------------------------------------------------

def lines_in(f) -> Iterator[bytes]:
    """The physical lines of a binary file from its position ("\\r\\n", "\\r" or "\\n" end a
    line, as in Python's text reader with ``newline=""``)."""
    tail = b""
    while True:
        chunk = f.read(1 << 16)
        data = tail + chunk
        if not chunk:
            if data:
                yield data
            return
        pos = 0
        for m in _LINE_BYTES.finditer(data):
            line = m.group()
            # a line at the end of the data may go on (or "\r" may be the start of "\r\n")
            if m.end() == len(data) and not line.endswith(b"\n"):
                break
            yield line
            pos = m.end()
        tail = data[pos:]


class NumberedLines:
    """Physical lines numbered from ``first``, for csv.reader.

    csv.reader joins into one record the lines of a quoted field that does not close on its
    line; ``record`` holds the (line number, text) pairs pulled since it was last cleared, so the
    caller sees that happen, and :meth:`replay` puts lines back to be read again.
    """

    def __init__(self, lines: Iterable[str], first: int = 1):
        self._lines = iter(lines)
        self._replayed: deque[tuple[int, str]] = deque()
        self._count = first - 1
        self.record: list[tuple[int, str]] = []

    def __iter__(self) -> "NumberedLines":
        return self

    def __next__(self) -> str:
        if self._replayed:
            numbered = self._replayed.popleft()
        else:
            text = next(self._lines)
            self._count += 1
            numbered = (self._count, text)
        self.record.append(numbered)
        return numbered[1]

    def next_number(self) -> int:
        """The number of the line the next record starts with."""
        return self._replayed[0][0] if self._replayed else self._count + 1

    def replay(self, lines: list[tuple[int, str]]) -> None:
        self._replayed.extendleft(reversed(lines))


# ---- records ----------------------------------------------------------------------------------

def read_records(lines: NumberedLines, path: Path, delimiter: str,
                 last_start: float = float("inf")) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line number, fields, "") of each record of ``lines`` (of the file at ``path``) starting
    at or before line ``last_start``; (first line, None, detail) for a line whose quoted field
    runs on over the next lines (those lines are read again, each as its own record). Raises
    DataFormatError for a row csv cannot read."""
    if len(delimiter) == 1:
        reader: Iterator[list[str]] = csv.reader(lines, delimiter=delimiter)
    else:  # e.g. MovieLens-1M's "::" (no quoting)
        reader = (line.rstrip("\r\n").split(delimiter) for line in lines)
    while lines.next_number() <= last_start:
        lines.record.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv's size limit
            if len(lines.record) < 2:
                line = lines.record[-1][0] if lines.record else "?"
                raise DataFormatError(f"{path}:{line}: unreadable row ({exc}); "
                                      "the file is corrupt or truncated") from None
            fields = []  # an open quote ran on into the limit: handled below
        if len(lines.record) > 1:
            (first, text), last = lines.record[0], lines.record[-1][0]
            lines.replay(lines.record[1:])
            yield first, None, (f"a quoted field opened on this line runs on to line {last} "
                                f"(fields spanning lines are not supported): "
                                f"{text.rstrip()[:80]!r}")
            continue
        yield lines.record[0][0], fields, ""


class BlockRows:
    """The rows a record-by-record read collects for one block: rows with fewer than
    ``min_fields`` fields are bad rows ("too few fields")."""

    def __init__(self, min_fields: int, delimiter: str) -> None:
        self.min_fields, self.delimiter = min_fields, delimiter
        self.fields: list[list[str]] = []
        self.lines: list[int] = []
        self.bad: list[BadRow] = []
        self.read = 0
        self.error: Exception | None = None

    def collect(self, records: Iterator, *, max_rows: float, to_first_row: bool) -> bool:
        """Adds ``records`` (of :func:`read_records`) to the rows (blank lines skipped, refused
        rows noted), up to ``max_rows`` rows (one with ``to_first_row``); True when ``records``
        ran out."""
        for line_no, fields, run_on in records:
            if fields is not None and (not fields or (len(fields) == 1 and not fields[0].strip())):
                continue  # blank line (e.g. a trailing newline)
            self.read += 1
            if fields is None:
                self.bad.append(BadRow(line_no, "unclosed quote", run_on))
            elif len(fields) < self.min_fields:
                self.bad.append(BadRow(line_no, "too few fields",
                                       f"expected at least {self.min_fields} fields separated by "
                                       f"{self.delimiter!r}, got {len(fields)}: "
                                       f"{self.delimiter.join(fields)[:80]!r}"))
            else:
                self.fields.append(fields)
                self.lines.append(line_no)
                if to_first_row or len(self.fields) >= max_rows:
                    return False
        return True

    def block(self, columns: dict[int, str]) -> Block:
        cols = {j: Column.from_strings([f[j] if j < len(f) else "" for f in self.fields],
                                       distinct=kind == "dict")
                for j, kind in columns.items()}
        found = np.array(self.lines, np.int64)
        return Block(n=len(self.fields), columns=cols,
                     nfields=np.array([len(f) for f in self.fields], np.int32),
                     lines=lambda rows: found[rows], rows_read=self.read, reader_bad=self.bad,
                     error_after=self.error)
