"""The fast path of a text file: a block of plain lines parsed by ``pyarrow.csv``, which then
splits fields exactly as ``csv.reader`` does.

:class:`~negrec.data.loaders.text.TextFile` offers each block to :func:`arrow_block` first.
It gives None for a block Arrow might read otherwise than the csv module: a NUL byte or a
byte-order mark, a delimiter that is not printable ASCII (tab aside), a line that may be over
the csv module's field size limit, a first line of fewer than two fields, a row Arrow finds
invalid (another number of fields), or quoted fields that make a record of several lines. Such
a block is read record by record (:mod:`.text_records`). Line numbers are computed only where a
row is reported (:class:`_LinesOfRows`).
"""

from __future__ import annotations

import codecs
import csv

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from negrec.data.loaders.columns import Column, TypedColumn
from negrec.data.loaders.text_records import Block

__all__ = ["arrow_block"]


def arrow_block(raw: bytes, first_line: int, columns: dict[int, str], *, delimiter: str,
                min_fields: int, codec: str) -> Block | None:
    """The block of the whole lines ``raw`` (in ``codec``; the first is line ``first_line``)
    parsed by pyarrow.csv, or None when its lines are not all plain. ``columns``: as
    :meth:`~negrec.data.loaders.text.TextFile.blocks` takes them; rows with fewer than
    ``min_fields`` fields make the block not plain."""
    quoting = len(delimiter) == 1
    if b"\x00" in raw or raw.startswith(codecs.BOM_UTF8):
        return None  # (Arrow drops a byte-order mark at the start of what it reads)
    quoted = quoting and b'"' in raw
    if not delimiter.isascii() or not delimiter.isprintable() and delimiter != "\t":
        return None
    limit = csv.field_size_limit()
    if quoting and len(raw) > limit and _may_have_longer_lines(raw, limit):
        return None
    if not raw.isascii() and codec != "utf-8":
        raw = raw.decode(codec).encode("utf-8")
    delim = delimiter.encode("ascii")
    if len(delim) > 1:  # a control byte the text lacks stands for the delimiter
        sep = next((b for b in (b"\x1f", b"\x1e", b"\x1d", b"\x1c") if b not in raw), None)
        if sep is None:
            return None
        raw = raw.replace(delim, sep)
        delim = sep
    body = raw.lstrip(b"\r\n")
    first = body[:body.find(b"\n")] if b"\n" in body else body
    nfields = first.rstrip(b"\r").count(delim) + 1
    if not body or nfields < max(min_fields, 2):
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
    if invalid or (quoted and not _one_line_records(raw, table.num_rows, delimiter)):
        return None
    n = table.num_rows
    cols = {j: _column(table.column(f"f{j}"), kind) for j, kind in read.items()}
    for j in columns:
        if j not in cols:  # past the last field of every row
            cols[j] = Column(pa.array([""], pa.string()), np.zeros(n, np.int32))
    return Block(n=n, columns=cols, nfields=np.full(n, nfields, np.int32),
                 lines=_LinesOfRows(raw, first_line, n), rows_read=n)


class _LinesOfRows:
    """Line numbers of the rows Arrow read from a block: its non-blank lines, in order."""

    def __init__(self, raw: bytes, first_line: int, n: int):
        self.raw, self.first_line, self.n = raw, first_line, n
        self._numbers: np.ndarray | None = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._numbers is None:
            blank = _blank_mask(self.raw)
            self._numbers = (self.first_line + np.flatnonzero(~blank))[:self.n]
        return self._numbers[np.asarray(rows, np.int64)]


def _blank_mask(raw: bytes) -> np.ndarray:
    """Which of the pieces of ``raw`` between line breaks ("\\n") are blank: empty, or a lone
    "\\r" (of "\\r\\n"); the piece after a final "\\n" (empty) included."""
    buf = np.frombuffer(raw, np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], ends + 1])
    lengths = np.concatenate([ends, [len(buf)]]) - starts
    blank = lengths == 0
    one = np.flatnonzero(lengths == 1)
    blank[one] = buf[starts[one]] == 13
    return blank


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
    blank = _blank_mask(raw)
    if raw.endswith(b"\n"):
        blank = blank[:-1]  # the empty "line" after the last break is no line
    return int(blank.sum())


def _may_have_longer_lines(raw: bytes, limit: int) -> bool:
    """False when every line of ``raw`` is shorter than ``limit`` bytes (so no field is over
    the csv module's size limit): a line that long would hold a whole window of
    ``limit // 2`` bytes without a line break; checked window by window."""
    half = max(limit // 2, 1)
    return any(raw.find(b"\n", k, k + half) < 0 for k in range(0, len(raw) - half + 1, half))
