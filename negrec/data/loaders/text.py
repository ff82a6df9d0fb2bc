"""Delimited text files read record by record: one record per physical line, the file's line
numbers in every message, unclosed quotes as bad rows that hide nothing, byte-order marks."""

from __future__ import annotations

import codecs
import csv
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError, Option
from negrec.data.log import LoadReport
from negrec.errors import UserError

__all__ = ["NumberedLines", "Rows"]


class NumberedLines:
    """The physical lines of a text file, numbered from 1, for csv.reader.

    csv.reader joins into one record the lines of a quoted field that does not close on its
    line; ``record`` holds the (line number, text) pairs pulled since it was last cleared, so the
    caller sees that happen, and :meth:`replay` puts lines back to be read again.
    """

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self._replayed: deque[tuple[int, str]] = deque()
        self._count = 0
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

    def replay(self, lines: list[tuple[int, str]]) -> None:
        self._replayed.extendleft(reversed(lines))


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # UTF-32's marks start the same way


class Rows:
    """Reads a delimited text file record by record, one record per physical line, with the
    line numbers of the file and a bad-row policy (see the module docstring)."""

    def __init__(self, path: Path, *, delimiter: str, encoding: str, header: bool,
                 on_bad_rows: BadRows, report: LoadReport, min_fields: int,
                 encoding_option: bool = False):
        self.bad = BadRowPolicy(path, on_bad_rows, report)
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        if not delimiter or any(c in delimiter for c in '\r\n"'):
            raise UserError(f"delimiter must be non-empty, without quotes or line breaks; got "
                             f"{delimiter!r}")
        self.path, self.delimiter, self.encoding = path, delimiter, encoding
        self.header_wanted, self.report, self.min_fields = header, report, min_fields
        self.encoding_option = encoding_option  # the loader takes encoding=: advise it
        self.header: list[str] | None = None
        self.header_line = 1
        self.read_as_utf8 = False  # a UTF-8 byte-order mark overrode the declared encoding

    def _decoding(self) -> str:
        """The codec to read with: the declared encoding, except that a UTF-8 byte-order mark
        means UTF-8 (the mark is dropped); a UTF-16 mark is an error unless UTF-16 is declared."""
        try:
            declared = codecs.lookup(self.encoding).name
        except LookupError:
            raise UserError(f"{self.path}: unknown encoding {self.encoding!r}") from None
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            if declared != "utf-8":
                self.read_as_utf8 = True
                self.report.note(f"file starts with a UTF-8 byte-order mark: read as UTF-8, not "
                                 f"{self.encoding}", self.path.name)
            return "utf-8-sig"
        if head.startswith(_UTF16_BOMS) and not declared.startswith(("utf-16", "utf-32")):
            raise self._decode_error(1, "the file starts with a UTF-16 byte-order mark",
                                     "utf-16")
        return self.encoding

    def _decode_error(self, line: int | str, reason: str, suggested: str) -> DataFormatError:
        if self.read_as_utf8:
            reason += "; the file starts with a UTF-8 byte-order mark, so it was read as UTF-8"
        if self.encoding_option:
            advice: tuple = ("; pass the file's encoding (e.g. ", Option("encoding", suggested),
                             ") or re-save it as UTF-8")
        else:
            advice = (f"; this format is {self.encoding}: re-save the file as {self.encoding}",)
        return DataFormatError(f"{self.path}:{line}: cannot decode as {self.encoding} ({reason})",
                               *advice)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        """(physical line number, fields) of each data row; the header is kept in ``header``,
        blank lines are skipped, every other line counts in ``report.rows_read``."""
        for line_no, fields in self._records():
            if self.header_wanted and self.header is None:
                self.header, self.header_line = [h.strip() for h in fields], line_no
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line (e.g. a trailing newline)
            self.report.rows_read += 1
            if len(fields) < self.min_fields:
                self.bad(line_no, "too few fields",
                         f"expected at least {self.min_fields} fields separated by "
                         f"{self.delimiter!r}, got {len(fields)}: "
                         f"{self.delimiter.join(fields)[:80]!r}")
                continue
            yield line_no, fields

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of each physical line; a line whose quoted field runs on over
        the next lines goes to :meth:`_quote_spans_lines` and those lines are read again."""
        decoding = self._decoding()
        try:
            with open(self.path, "r", encoding=decoding, newline="") as f:
                lines = NumberedLines(f)
                if len(self.delimiter) == 1:
                    records: Iterator[list[str]] = csv.reader(lines, delimiter=self.delimiter)
                else:  # e.g. MovieLens-1M's "::" (no quoting)
                    records = (line.rstrip("\r\n").split(self.delimiter) for line in lines)
                while True:
                    lines.record.clear()
                    try:
                        fields = next(records)
                    except StopIteration:
                        return
                    except csv.Error as exc:  # e.g. a field over csv's size limit
                        if len(lines.record) < 2:
                            line = lines.record[-1][0] if lines.record else "?"
                            raise DataFormatError(f"{self.path}:{line}: unreadable row ({exc}); "
                                                  "the file is corrupt or truncated") from None
                        fields = []  # an open quote ran on into the limit: handled below
                    if len(lines.record) > 1:
                        self._quote_spans_lines(lines)
                        continue
                    yield lines.record[0][0], fields
        except UnicodeDecodeError as exc:
            # exc.start is an offset into the chunk being decoded, not into the file: decode
            # the whole file to find the line of the offending byte for the message
            raw = self.path.read_bytes()
            try:
                raw.decode(decoding)
                line: int | str = "?"
            except UnicodeDecodeError as whole:
                line = raw[: whole.start].count(b"\n") + 1
            raise self._decode_error(line, exc.reason, "latin-1") from None

    def _quote_spans_lines(self, lines: NumberedLines) -> None:
        """A quoted field opened on the record's first line ran on over the next lines: that
        line is a bad row, and the lines it swallowed are read again, each as its own record."""
        (first, text), last = lines.record[0], lines.record[-1][0]
        detail = (f"a quoted field opened on this line runs on to line {last} (fields spanning "
                  f"lines are not supported): {text.rstrip()[:80]!r}")
        if self.header_wanted and self.header is None:
            raise DataFormatError(f"{self.path}:{first}: unclosed quote in the header: {detail}")
        lines.replay(lines.record[1:])
        self.report.rows_read += 1
        self.bad(first, "unclosed quote", detail)

    def column(self, name: str) -> int:
        if self.header is None:
            raise DataFormatError(f"{self.path}: the file has no header line (empty file?)")
        if name not in self.header:
            hint = ""
            if len(self.header) == 1:
                seps = [d for d in (",", ";", "\t", "|") if d != self.delimiter and d in self.header[0]]
                if seps:
                    hint = (f" (wrong delimiter? the header looks {seps[0]!r}-separated, not "
                            f"{self.delimiter!r}-separated)")
            raise DataFormatError(f"{self.path}:{self.header_line}: missing column {name!r}; the header has "
                                  f"{self.header}{hint}")
        return self.header.index(name)
