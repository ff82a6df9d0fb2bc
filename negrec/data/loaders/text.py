"""Delimited text files read in blocks with Arrow, rows exactly as the csv module reads them.

The rules (module docstring of :mod:`negrec.data.loaders`): one record per physical line, the
file's line numbers in every message, unclosed quotes as bad rows that hide nothing, byte-order
marks, encodings. A :class:`TextFile` reads its header with the csv module, then the rest in
blocks of whole lines (:class:`Block`). A block whose lines are all plain (no quote character,
no lone carriage return, no NUL, fields within the csv module's size limit, the same number of
fields on every non-blank line) is parsed by ``pyarrow.csv``, which then splits fields exactly
as ``csv.reader`` does; any other block is read record by record with ``csv.reader`` over its
numbered physical lines (:class:`NumberedLines`), which reads on past the block as far as an
open quote runs. Line numbers are computed only where a row is reported.

Decoding: the file is read as Python's text reader reads it (``open(..., newline="")``). A file
in an encoding where ASCII bytes always mean ASCII characters (UTF-8, Latin-1, ...) is split
into lines in its bytes; any other (UTF-16, ...) is read through Python's text reader itself.
Bytes that do not decode are an error once the lines Python's text reader returned before
failing (it decodes 8 KiB at a time) are read: :meth:`TextFile._decode_stop` finds that line by
reading the file the same way, only when some bytes do not decode.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from negrec.data.loaders.columns import Column, TypedColumn
from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError, Option
from negrec.data.loaders.memory import release_free_memory
from negrec.data.loaders.rows import BadRow, RowChecks
from negrec.data.log import LoadReport
from negrec.errors import UserError

__all__ = ["Block", "NumberedLines", "TextFile"]

#: Bytes per block (whole lines); Arrow parses a block in 1 MiB pieces on its threads. A block
#: and what is read from it take about 3x its size while it is read (4 MiB: 12 MB beside the
#: events kept; 16 MiB blocks were no faster).
BLOCK_BYTES = 4 << 20
#: Rows per block when the file is read through Python's text reader.
TEXT_BLOCK_ROWS = 100_000
#: Bytes past a line that must decode before the line counts as read (Python's text reader
#: decodes 8 KiB chunks; a few more bytes for a multi-byte character across a chunk's end).
DECODE_LOOKAHEAD = 8192 + 8
#: Codecs in which every byte below 0x80 is that ASCII character.
_ASCII_COMPATIBLE = re.compile(r"utf-8|ascii|latin-1|iso8859-\d+|cp125\d|mac-roman|koi8-[ru]")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # UTF-32's marks start the same way
_LINE_BYTES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")


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


class _DecodeStop(Exception):
    """Raised by a line source at the first line Python's text reader could not return."""


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


class _Rows:
    """The rows a record-by-record read collects for one block."""

    def __init__(self) -> None:
        self.fields: list[list[str]] = []
        self.lines: list[int] = []
        self.bad: list[BadRow] = []
        self.read = 0
        self.error: Exception | None = None

    def block(self, columns: dict[int, str]) -> Block:
        cols = {j: Column.from_strings([f[j] if j < len(f) else "" for f in self.fields],
                                       distinct=kind == "dict")
                for j, kind in columns.items()}
        found = np.array(self.lines, np.int64)
        return Block(n=len(self.fields), columns=cols,
                     nfields=np.array([len(f) for f in self.fields], np.int32),
                     lines=lambda rows: found[rows], rows_read=self.read, reader_bad=self.bad,
                     error_after=self.error)


class TextFile:
    """A delimited text file, read as the module docstring says, with a bad-row policy
    (``bad``) over ``report``. ``min_fields``: rows with fewer fields are bad rows ("too few
    fields"); ``encoding_option``: the loader takes ``encoding=``, so errors advise it."""

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
        self.encoding_option = encoding_option
        self.header: list[str] | None = None
        self.header_line = 1
        self.read_as_utf8 = False  # a UTF-8 byte-order mark overrode the declared encoding
        self._started = False

    # ---- decoding ---------------------------------------------------------------------------
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

    def _error_for(self, exc: UnicodeDecodeError) -> DataFormatError:
        """The error for bytes that do not decode, with the line of the first such byte."""
        # exc.start is an offset into the chunk being decoded, not into the file: decode
        # the whole file to find the line of the offending byte for the message
        raw = self.path.read_bytes()
        try:
            raw.decode(self._codec)
            line: int | str = "?"
        except UnicodeDecodeError as whole:
            line = raw[: whole.start].count(b"\n") + 1
        return self._decode_error(line, exc.reason, "latin-1")

    def _decode_stop(self) -> tuple[int, DataFormatError]:
        """(lines Python's text reader returns before it fails to decode the file, the error).
        Called only once some bytes of the file did not decode."""
        with open(self.path, "r", encoding=self._codec, newline="") as f:
            count = 0
            try:
                for _ in f:
                    count += 1
            except UnicodeDecodeError as exc:
                return count, self._error_for(exc)
        raise AssertionError(f"{self.path}: decodes as a whole but not in part")

    def _check_decodes(self, end: int, held: tuple[int, bytes] | None = None) -> None:
        """Checks that the bytes up to ``end`` and :data:`DECODE_LOOKAHEAD` past it decode (one
        decoder over the whole file, in order); where they do not, finds where Python's text
        reader stopped (``self._stop``). ``held``: (offset, bytes) of the file in hand."""
        if self._stop is not None or self._never_fails:
            return
        upto = min(self._size, end + DECODE_LOOKAHEAD)
        if upto <= self._checked_to:
            return
        upto = min(self._size, max(upto, self._checked_to + BLOCK_BYTES))
        at, data = held if held is not None else (-1, b"")
        if at <= self._checked_to and upto <= at + len(data):
            raw = data[self._checked_to - at:upto - at]
        else:
            with open(self.path, "rb") as f:
                f.seek(self._checked_to)
                raw = f.read(upto - self._checked_to)
        self._checked_to = upto
        if raw.isascii() and not self._check_decoder.getstate()[0]:
            return
        try:
            self._check_decoder.decode(raw, final=upto >= self._size)
        except UnicodeDecodeError:
            self._stop = self._decode_stop()

    # ---- opening and the header -------------------------------------------------------------
    def start(self) -> None:
        """Opens the file: the codec (byte-order marks), then the header when there is one."""
        if self._started:
            return
        self._started = True
        self._codec = self._decoding()
        base = codecs.lookup(self._codec).name
        self._base_codec = "utf-8" if self._codec == "utf-8-sig" else self._codec
        self._size = self.path.stat().st_size
        bom = 3 if self._codec == "utf-8-sig" else 0
        self._bytewise = bool(_ASCII_COMPATIBLE.fullmatch(base))
        self._never_fails = base in ("latin-1", "iso8859-1")
        self._stop: tuple[int, DataFormatError] | None = None
        self._checked_to = bom
        self._check_decoder = codecs.getincrementaldecoder(self._base_codec)()
        self._offset, self._next_line = bom, 1
        self._text_lines: NumberedLines | None = None
        if self.header_wanted:
            self._read_header()

    def _read_header(self) -> None:
        """The first record (line 1; a blank line gives an empty header)."""
        if self._bytewise:
            lines = NumberedLines(self._byte_lines(self._offset, 1))
        else:
            lines = self._text_lines = NumberedLines(self._python_lines())
        try:
            for line_no, fields, run_on in self._records(lines, last_start=1):
                if fields is None:
                    raise DataFormatError(f"{self.path}:{line_no}: unclosed quote in the header: "
                                          f"{run_on}")
                self.header, self.header_line = [h.strip() for h in fields], line_no
        except _DecodeStop:
            raise self._stop[1] from None
        except UnicodeDecodeError as exc:
            raise self._error_for(exc) from None
        if self._bytewise and self.header is not None:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                first = next(_lines_in(f), b"")
            self._offset += len(first)
            self._next_line = 2

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

    def report_until_good_row(self) -> bool:
        """Reads on to the first row the reader accepts, reporting the rows it refuses on the
        way: True if there is one (where a loader that cannot read the file raises its error,
        as the row-by-row reader did at its first row), False at the end of the file."""
        for block in self._blocks({}, to_first_row=True):
            self.report.rows_read += block.rows_read
            RowChecks(0).apply(self.bad, block.lines, block.reader_bad)
            if block.n:
                return True
            if block.error_after is not None:
                raise block.error_after
        return False

    # ---- records (the csv module) -----------------------------------------------------------
    def _records(self, lines: NumberedLines, last_start: float = float("inf")
                 ) -> Iterator[tuple[int, list[str] | None, str]]:
        """(line number, fields, "") of each record starting at or before line ``last_start``;
        (first line, None, detail) for a line whose quoted field runs on over the next lines
        (those lines are read again, each as its own record). Raises DataFormatError for a
        row csv cannot read."""
        if len(self.delimiter) == 1:
            records: Iterator[list[str]] = csv.reader(lines, delimiter=self.delimiter)
        else:  # e.g. MovieLens-1M's "::" (no quoting)
            records = (line.rstrip("\r\n").split(self.delimiter) for line in lines)
        while lines.next_number() <= last_start:
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
                (first, text), last = lines.record[0], lines.record[-1][0]
                lines.replay(lines.record[1:])
                yield first, None, (f"a quoted field opened on this line runs on to line {last} "
                                    f"(fields spanning lines are not supported): "
                                    f"{text.rstrip()[:80]!r}")
                continue
            yield lines.record[0][0], fields, ""

    def _collect(self, records: Iterator, rows: _Rows, *, max_rows: float,
                 to_first_row: bool) -> bool:
        """Adds records to ``rows`` (blank lines skipped, refused rows noted); True when
        ``records`` ran out."""
        for line_no, fields, run_on in records:
            if fields is not None and (not fields or (len(fields) == 1 and not fields[0].strip())):
                continue  # blank line (e.g. a trailing newline)
            rows.read += 1
            if fields is None:
                rows.bad.append(BadRow(line_no, "unclosed quote", run_on))
            elif len(fields) < self.min_fields:
                rows.bad.append(BadRow(line_no, "too few fields",
                                       f"expected at least {self.min_fields} fields separated by "
                                       f"{self.delimiter!r}, got {len(fields)}: "
                                       f"{self.delimiter.join(fields)[:80]!r}"))
            else:
                rows.fields.append(fields)
                rows.lines.append(line_no)
                if to_first_row or len(rows.fields) >= max_rows:
                    return False
        return True

    # ---- blocks ---------------------------------------------------------------------------
    def blocks(self, columns: dict[int, str]) -> Iterator[Block]:
        """The data rows in blocks, with the fields ``columns`` asks for: {index: "dict" for
        texts that repeat (ids, labels), "str" for texts that do not, "int" for numbers that
        are mostly integers (read as int64 where every value of the block is one: a
        :class:`~negrec.data.loaders.columns.TypedColumn`)}."""
        self.start()
        return self._blocks(columns)

    def _blocks(self, columns: dict[int, str], to_first_row: bool = False) -> Iterator[Block]:
        if not self._bytewise:
            yield from self._text_blocks(columns, to_first_row)
            return
        with open(self.path, "rb") as f:
            while self._offset < self._size:
                f.seek(self._offset)
                raw = f.read(BLOCK_BYTES)
                while not raw.endswith(b"\n") and self._offset + len(raw) < self._size:
                    cut = raw.rfind(b"\n")
                    if cut >= 0:  # end the block after its last complete line
                        raw = raw[:cut + 1]
                        break
                    raw += f.read(BLOCK_BYTES)
                block = self._block(raw, columns, to_first_row)
                yield block
                if block.error_after is not None or (to_first_row and block.n):
                    return
                del block, raw
                release_free_memory()  # what reading the block left free (see .memory)

    def _block(self, raw: bytes, columns: dict[int, str], to_first_row: bool) -> Block:
        """The block of the whole lines ``raw`` (from ``self._offset``)."""
        start, first_line = self._offset, self._next_line
        end = start + len(raw)
        self._check_decodes(end, (start, raw))
        lone_cr = b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n")
        n_lines = (len(_LINE_BREAKS.findall(raw)) if lone_cr else raw.count(b"\n")) + \
            (0 if raw.endswith((b"\n", b"\r")) else 1)
        last_line = first_line + n_lines - 1
        self._offset, self._next_line = end, last_line + 1
        stops_inside = self._stop is not None and self._stop[0] < last_line
        if not (lone_cr or stops_inside or to_first_row):
            block = self._arrow_block(raw, first_line, columns)
            if block is not None:
                return block
        rows = _Rows()
        lines = NumberedLines(self._byte_lines(start, first_line), first_line)
        try:
            self._collect(self._records(lines, last_start=last_line), rows, max_rows=float("inf"),
                          to_first_row=to_first_row)
        except _DecodeStop:
            rows.error = self._stop[1]
        except DataFormatError as exc:  # a row csv cannot read: once the rows before it count
            rows.error = exc
        return rows.block(columns)

    def _arrow_block(self, raw: bytes, first_line: int, columns: dict[int, str]) -> Block | None:
        """The block parsed by pyarrow.csv, or None when its lines are not all plain."""
        quoting = len(self.delimiter) == 1
        if b"\x00" in raw or raw.startswith(codecs.BOM_UTF8):
            return None  # (Arrow drops a byte-order mark at the start of what it reads)
        quoted = quoting and b'"' in raw
        if not self.delimiter.isascii() or not self.delimiter.isprintable() and self.delimiter != "\t":
            return None
        limit = csv.field_size_limit()
        if quoting and len(raw) > limit and _may_have_longer_lines(raw, limit):
            return None
        if not raw.isascii() and self._base_codec != "utf-8":
            raw = raw.decode(self._base_codec).encode("utf-8")
        delim = self.delimiter.encode("ascii")
        if len(delim) > 1:  # a control byte the text lacks stands for the delimiter
            sep = next((b for b in (b"\x1f", b"\x1e", b"\x1d", b"\x1c") if b not in raw), None)
            if sep is None:
                return None
            raw = raw.replace(delim, sep)
            delim = sep
        body = raw.lstrip(b"\r\n")
        first = body[:body.find(b"\n")] if b"\n" in body else body
        nfields = first.rstrip(b"\r").count(delim) + 1
        if not body or nfields < max(self.min_fields, 2):
            return None  # with one field, a line of spaces would be a row (csv: a blank line)
        invalid: list = []

        def on_invalid(row) -> str:
            invalid.append(row)
            return "skip"

        names = [f"f{j}" for j in range(nfields)]
        read = {j: kind for j, kind in columns.items() if j < nfields}
        # Arrow reads integers as Python does, but for hexadecimal ("0x10"): none without an x
        ints = b"x" not in raw and b"X" not in raw

        def parse(ints: bool):
            types = {f"f{j}": pa.int64() if kind == "int" and ints else pa.string()
                     for j, kind in read.items()}
            return pacsv.read_csv(
                pa.py_buffer(raw),
                read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 20),
                parse_options=pacsv.ParseOptions(delimiter=chr(delim[0]),
                                                  quote_char='"' if quoted else False,
                                                  double_quote=True, escape_char=False,
                                                  newlines_in_values=quoted,
                                                  ignore_empty_lines=True,
                                                  invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(column_types=types,
                                                     include_columns=list(types) or names[:1],
                                                     null_values=[], strings_can_be_null=False,
                                                     quoted_strings_can_be_null=False,
                                                     check_utf8=False))
        try:
            try:
                table = parse(ints)
            except pa.ArrowInvalid as exc:  # a value that is no integer: read the text
                if not ints or "conversion error" not in str(exc):
                    raise
                invalid.clear()
                table = parse(False)
        except pa.ArrowInvalid:
            return None
        if invalid or (quoted and not _one_line_records(raw, table.num_rows, self.delimiter)):
            return None
        n = table.num_rows
        cols = {j: _column(table.column(f"f{j}"), kind) for j, kind in read.items()}
        for j in columns:
            if j not in cols:  # past the last field of every row
                cols[j] = Column(pa.array([""], pa.string()), np.zeros(n, np.int32))
        return Block(n=n, columns=cols, nfields=np.full(n, nfields, np.int32),
                     lines=_LinesOfRows(raw, first_line, n), rows_read=n)

    def _text_blocks(self, columns: dict[int, str], to_first_row: bool) -> Iterator[Block]:
        """The rows read through Python's text reader (encodings such as UTF-16)."""
        if self._text_lines is None:
            self._text_lines = NumberedLines(self._python_lines())
        records = self._records(self._text_lines)
        done = False
        while not done:
            rows = _Rows()
            try:
                done = self._collect(records, rows, max_rows=TEXT_BLOCK_ROWS,
                                     to_first_row=to_first_row)
            except UnicodeDecodeError as exc:
                rows.error = self._error_for(exc)
            except DataFormatError as exc:
                rows.error = exc
            block = rows.block(columns)
            yield block
            if block.error_after is not None or (to_first_row and block.n):
                return

    # ---- lines ------------------------------------------------------------------------------
    def _python_lines(self) -> Iterator[str]:
        with open(self.path, "r", encoding=self._codec, newline="") as f:
            yield from f

    def _byte_lines(self, offset: int, number: int) -> Iterator[str]:
        """The physical lines (with their line breaks) from byte ``offset`` (the start of line
        ``number``), each decoded once the bytes up to it are known to decode; raises
        :class:`_DecodeStop` at the first line Python's text reader did not return."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            for line in _lines_in(f):
                offset += len(line)
                self._check_decodes(offset)
                if self._stop is not None and number > self._stop[0]:
                    raise _DecodeStop
                yield line.decode(self._base_codec)
                number += 1


def _lines_in(f) -> Iterator[bytes]:
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


class _LinesOfRows:
    """Line numbers of the rows Arrow read from a block: its non-blank lines, in order."""

    def __init__(self, raw: bytes, first_line: int, n: int):
        self.raw, self.first_line, self.n = raw, first_line, n
        self._numbers: np.ndarray | None = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._numbers is None:
            buf = np.frombuffer(self.raw, np.uint8)
            ends = np.flatnonzero(buf == 10)
            starts = np.concatenate([[0], ends + 1])
            lengths = np.concatenate([ends, [len(buf)]]) - starts
            blank = lengths == 0
            one = np.flatnonzero(lengths == 1)
            blank[one] = buf[starts[one]] == 13  # "\r\n" alone
            self._numbers = (self.first_line + np.flatnonzero(~blank))[:self.n]
        return self._numbers[np.asarray(rows, np.int64)]


def _column(array: pa.ChunkedArray, kind: str) -> Column:
    """A column of what Arrow read: distinct texts ("dict"), texts, or int64 values."""
    if pa.types.is_integer(array.type):
        return TypedColumn(array.combine_chunks())
    return Column.of(pc.dictionary_encode(array) if kind == "dict" else array)


def _one_line_records(raw: bytes, records: int, delimiter: str) -> bool:
    """Whether the ``records`` Arrow read from ``raw`` with quoting (quoted fields may run over
    lines, as in csv.reader) are one per non-blank line, with no quote left open at the end:
    then each line is a record, read as csv.reader reads it.

    A record over several lines takes the place of at least two non-blank lines, unless it is
    the last one, open to the end of ``raw`` (over blank lines only): csv.reader, given the
    last non-blank line and another after it, finds out."""
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if records != lines and records != lines - _blank_lines(raw):
        return False
    body = raw.rstrip(b"\r\n")
    last = body[body.rfind(b"\n") + 1:].decode("utf-8")
    return len(list(csv.reader([last + "\n", "x\n"], delimiter=delimiter))) == 2


def _blank_lines(raw: bytes) -> int:
    """Lines of ``raw`` that are empty or a lone "\\r" (before "\\n")."""
    buf = np.frombuffer(raw, np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], ends + 1])
    lengths = np.concatenate([ends, [len(buf)]]) - starts
    blank = lengths == 0
    one = np.flatnonzero(lengths == 1)
    blank[one] = buf[starts[one]] == 13
    if raw.endswith(b"\n"):
        blank = blank[:-1]  # the empty "line" after the last break is no line
    return int(blank.sum())


def _may_have_longer_lines(raw: bytes, limit: int) -> bool:
    """False when every line of ``raw`` is shorter than ``limit`` bytes (so no field is over
    the csv module's size limit): a line that long would hold a whole window of
    ``limit // 2`` bytes without a line break; checked window by window."""
    half = max(limit // 2, 1)
    return any(raw.find(b"\n", k, k + half) < 0 for k in range(0, len(raw) - half + 1, half))
