"""Delimited text files read in blocks with Arrow, rows exactly as the csv module reads them.

The rules (module docstring of :mod:`negrec.data.loaders`): one record per physical line, the
file's line numbers in every message, unclosed quotes as bad rows that hide nothing, byte-order
marks, encodings. A :class:`TextFile` reads its header with the csv module, then the rest in
blocks of whole lines (:class:`~negrec.data.loaders.text_records.Block`). A block whose lines
are all plain (no lone carriage return, no NUL, fields within the csv module's size limit,
the same number of fields on every non-blank line, and every record on one line: quoted
fields are fine when none runs over a line end) is parsed by
``pyarrow.csv``, which then splits fields exactly as ``csv.reader`` does (:mod:`.text_arrow`);
any other block is read record by record with ``csv.reader`` over its numbered physical lines
(:mod:`.text_records`), which reads on past the block as far as an open quote runs. Line
numbers are computed only where a row is reported.

Decoding: the file is read as Python's text reader reads it (``open(..., newline="")``). A file
in an encoding where ASCII bytes always mean ASCII characters (UTF-8, Latin-1, ...) is split
into lines in its bytes; any other (UTF-16, ...) is read through Python's text reader itself.
Bytes that do not decode are an error once the lines Python's text reader returned before
failing (it decodes 8 KiB at a time) are read: :meth:`TextFile._decode_stop` finds that line by
reading the file the same way, only when some bytes do not decode.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError, Option
from negrec.data.loaders.memory import release_free_memory
from negrec.data.loaders.rows import RowChecks
from negrec.data.loaders.text_arrow import arrow_block
from negrec.data.loaders.text_records import (Block, BlockRows, NumberedLines, lines_in,
                                              read_records)
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
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")


class _DecodeStop(Exception):
    """Raised by a line source at the first line Python's text reader could not return."""


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
            for line_no, fields, run_on in read_records(lines, self.path, self.delimiter,
                                                        last_start=1):
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
                first = next(lines_in(f), b"")
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
            block = arrow_block(raw, first_line, columns, delimiter=self.delimiter,
                                min_fields=self.min_fields, codec=self._base_codec)
            if block is not None:
                return block
        rows = BlockRows(self.min_fields, self.delimiter)
        lines = NumberedLines(self._byte_lines(start, first_line), first_line)
        try:
            rows.collect(read_records(lines, self.path, self.delimiter, last_start=last_line),
                         max_rows=float("inf"), to_first_row=to_first_row)
        except _DecodeStop:
            rows.error = self._stop[1]
        except DataFormatError as exc:  # a row csv cannot read: once the rows before it count
            rows.error = exc
        return rows.block(columns)

    def _text_blocks(self, columns: dict[int, str], to_first_row: bool) -> Iterator[Block]:
        """The rows read through Python's text reader (encodings such as UTF-16)."""
        if self._text_lines is None:
            self._text_lines = NumberedLines(self._python_lines())
        records = read_records(self._text_lines, self.path, self.delimiter)
        done = False
        while not done:
            rows = BlockRows(self.min_fields, self.delimiter)
            try:
                done = rows.collect(records, max_rows=TEXT_BLOCK_ROWS, to_first_row=to_first_row)
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
            for line in lines_in(f):
                offset += len(line)
                self._check_decodes(offset)
                if self._stop is not None and number > self._stop[0]:
                    raise _DecodeStop
                yield line.decode(self._base_codec)
                number += 1
