"""Columns of a block of rows, and their values read by the rules of :mod:`.parse`, vectorised.

A :class:`Column` holds the text of one field of every row of a block as Arrow strings: either
one string per row, or (for ids and labels, which repeat) the distinct strings and a code per
row. Each reader below (:func:`read_ids`, :func:`read_floats`, ...; timestamps: :mod:`.times`) reads
the distinct strings: the common spellings (plain digits, plain decimals, ISO date-times) with
Arrow kernels and numpy, every other string with the per-value function of :mod:`.parse`, so a
value means exactly what it meant to the row-by-row reader, and a bad value gets the same
reason and detail. What a reader finds wrong is a :class:`Failures` (per distinct string),
which :class:`~negrec.data.loaders.rows.RowChecks` turns into bad rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negrec.data.feedback import FeedbackLabels
from negrec.data.loaders.parse import canonical_int, parse_float, parse_id

__all__ = ["Column", "Failures", "TypedColumn", "read_floats", "read_ids", "read_labels",
           "read_table_ids", "strip_texts"]


# ---- columns ---------------------------------------------------------------------------------

@dataclass
class Column:
    """The text of one field for the ``n`` rows of a block.

    ``texts``: a pyarrow string array of the distinct texts, with ``codes`` [n] int32 the text
    of each row; or ``codes`` None and ``texts`` [n] the text of each row.
    """

    texts: pa.Array
    codes: np.ndarray | None = None

    @classmethod
    def of(cls, array: pa.Array | pa.ChunkedArray) -> "Column":
        """A column from what Arrow read: strings, or dictionary<int32, string> (distinct
        texts and codes; the chunks of a chunked array are brought to one dictionary)."""
        if isinstance(array, pa.ChunkedArray):
            if pa.types.is_dictionary(array.type):
                if array.num_chunks == 0:
                    return cls(pa.array([], pa.string()), np.zeros(0, np.int32))
                if not _one_dictionary(array.chunks):
                    array = array.unify_dictionaries()
                codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False)
                                        for c in array.chunks]).astype(np.int32, copy=False)
                return cls(_plain(array.chunk(0).dictionary), codes)
            array = array.combine_chunks()
        if pa.types.is_dictionary(array.type):
            return cls(_plain(array.dictionary),
                       array.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False))
        return cls(_plain(array))

    @classmethod
    def from_strings(cls, values: list[str], *, distinct: bool) -> "Column":
        """A column from Python strings (``distinct``: encode repeated texts once)."""
        array = pa.array(values, pa.string())
        return cls.of(array.dictionary_encode()) if distinct else cls(array)

    def __len__(self) -> int:
        return len(self.texts) if self.codes is None else len(self.codes)

    @property
    def size(self) -> int:
        """Number of texts the readers look at (distinct texts, or rows)."""
        return len(self.texts)

    def per_row(self, per_text: np.ndarray) -> np.ndarray:
        """[n] the value of each row, from [size] values per text."""
        return per_text if self.codes is None else per_text[self.codes]

    def text_index(self, rows: np.ndarray | int):
        """The index into ``texts`` of each of ``rows``."""
        return rows if self.codes is None else self.codes[rows]

    def text(self, i: int) -> str:
        return self.texts[int(i)].as_py()

    def row_text(self, row: int) -> str:
        return self.text(self.text_index(row))

    def texts_at(self, indices: np.ndarray) -> list[str]:
        """The texts at ``indices`` (into ``texts``), as Python strings."""
        if not len(indices):
            return []
        return self.texts.take(pa.array(indices, pa.int64())).to_pylist()


class TypedColumn(Column):
    """A column of a typed (Parquet) array, one value per row; its texts are what
    ``str(value)`` gives for each Python value (``""`` for a null), as the row-by-row reader
    read them, made only where a reader needs them."""

    def __init__(self, array: pa.Array):
        self.array = array
        self.codes = None

    def __len__(self) -> int:
        return len(self.array)

    @property
    def size(self) -> int:
        return len(self.array)

    @property
    def texts(self) -> pa.Array:
        return pa.array(self.texts_at(np.arange(len(self.array))), pa.string())

    def text(self, i: int) -> str:
        return self.texts_at(np.array([i]))[0]

    def texts_at(self, indices: np.ndarray) -> list[str]:
        if not len(indices):
            return []
        values = self.array.take(pa.array(indices, pa.int64())).to_pylist()
        return ["" if v is None else str(v) for v in values]

    def as_text(self) -> Column:
        """The column as distinct texts (ids, labels)."""
        if pa.types.is_integer(self.array.type):  # str(int) is Arrow's decimal text
            encoded = self.array.dictionary_encode(null_encoding="encode")
            texts = pc.cast(encoded.dictionary, pa.string()).fill_null("")
            return Column(texts, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32))
        return Column.from_strings(self.texts_at(np.arange(len(self.array))), distinct=True)

    def numbers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(values [n] float64 or int64, valid [n] bool) of an integer or floating-point column
        (valid: not null), else None."""
        typ = self.array.type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
            return None
        valid = self.array.is_valid().to_numpy(zero_copy_only=False)
        values = self.array.fill_null(0).to_numpy(zero_copy_only=False)
        return values, valid


def _one_dictionary(chunks: list[pa.DictionaryArray]) -> bool:
    """Whether the chunks share one dictionary (as ``dictionary_encode`` of a chunked array
    gives them): the same buffers."""
    first = [b.address if b is not None else 0 for b in chunks[0].dictionary.buffers()]
    return all([b.address if b is not None else 0 for b in c.dictionary.buffers()] == first
               for c in chunks[1:])


def _plain(array: pa.Array) -> pa.Array:
    """A string array (large_string and string_view become string)."""
    if array.type != pa.string():
        array = array.cast(pa.string())
    return array


def _edge_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first byte, last byte, byte length) of each string of a string array (0 for empty)."""
    texts = _plain(texts)
    if texts.null_count:
        texts = texts.fill_null("")
    _, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[texts.offset:texts.offset + len(texts) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    first = np.zeros(len(texts), np.uint8)
    last = np.zeros(len(texts), np.uint8)
    first[nonempty] = data[offsets[:-1][nonempty]]
    last[nonempty] = data[offsets[1:][nonempty] - 1]
    return first, last, lengths


def _safe_edges(texts: pa.Array) -> np.ndarray:
    """[K] bool: the string is empty or starts and ends with printable non-space ASCII, so that
    ``str.strip()`` leaves it as it is (Python strips Unicode whitespace, which Arrow's kernels
    do not all agree with)."""
    first, last, lengths = _edge_bytes(texts)
    printable = (first >= 0x21) & (first <= 0x7E) & (last >= 0x21) & (last <= 0x7E)
    return printable | (lengths == 0)


def strip_texts(col: Column) -> Column:
    """The column with every text stripped of surrounding whitespace (``str.strip``); texts
    that differ only by it become one."""
    safe = _safe_edges(col.texts)
    if safe.all():
        return col
    values = col.texts.to_pylist()
    for i in np.flatnonzero(~safe):
        values[i] = values[i].strip()
    stripped = pa.array(values, pa.string()).dictionary_encode()
    remap = stripped.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    return Column(stripped.dictionary, remap if col.codes is None else remap[col.codes])


# ---- failures ---------------------------------------------------------------------------------

@dataclass
class Failures:
    """What a check found wrong with the values it read (per distinct text, or per row).

    ``code`` [K] int16: 0 passed, else ``1 +`` an index into ``reasons``; the detail of a
    failing index comes from ``details`` or ``detail_of``; an index in ``errors`` raises that
    exception where its first row stands (as the row-by-row reader raised it there).
    ``error_details``: a failing index's detail in error mode where it differs;
    ``raise_first``: in error mode, builds the error of the first failing row from (line,
    index) instead of the bad-row policy's.
    """

    code: np.ndarray
    reasons: list[str] = field(default_factory=list)
    details: dict[int, str] = field(default_factory=dict)
    detail_of: Callable[[int], str] | None = None
    errors: dict[int, BaseException] = field(default_factory=dict)
    error_details: dict[int, str] = field(default_factory=dict)
    raise_first: Callable[[int, int], BaseException] | None = None

    @classmethod
    def none(cls, k: int) -> "Failures":
        return cls(np.zeros(k, np.int16))

    @classmethod
    def where(cls, mask: np.ndarray, reason: str, detail_of: Callable[[int], str]) -> "Failures":
        """One reason for every index where ``mask`` is true."""
        return cls(mask.astype(np.int16), [reason], detail_of=detail_of)

    def reason_code(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason) + 1

    def fail(self, i: int, reason: str, detail: str) -> None:
        self.code[i] = self.reason_code(reason)
        self.details[int(i)] = detail

    def raise_at(self, i: int, exc: BaseException) -> None:
        self.code[i] = self.reason_code("(error)")
        self.errors[int(i)] = exc

    def detail(self, i: int) -> str:
        i = int(i)
        return self.details[i] if i in self.details else self.detail_of(i)

    def reason(self, i: int) -> str:
        return self.reasons[int(self.code[i]) - 1]


class _Recorder:
    """Stands in for the bad-row policy of the per-value functions of :mod:`.parse`: keeps
    the reason and detail of the value they refused."""

    def __init__(self) -> None:
        self.found: tuple[str, str] | None = None

    def __call__(self, line_no: int, reason: str, detail: str) -> None:
        self.found = (reason, detail)


def _each(col: Column, indices: np.ndarray, strip: bool):
    """(index, value) for the texts at ``indices`` (stripped with ``strip``)."""
    for i, text in zip(indices, col.texts_at(indices)):
        yield int(i), (text.strip() if strip else text)


def _fallback(col: Column, indices: np.ndarray, strip: bool, read: Callable, failures: Failures,
              store: Callable[[int, object], None]) -> None:
    """Reads the texts at ``indices`` one by one with ``read(recorder, value)`` (a function of
    :mod:`.parse`); stores what it returns, or records its refusal (or exception)."""
    for i, value in _each(col, indices, strip):
        rec = _Recorder()
        try:
            out = read(rec, value)
        except Exception as exc:  # raised where its row stands, as the row-by-row reader did
            failures.raise_at(i, exc)
            continue
        if out is None:
            failures.fail(i, *rec.found)
        else:
            store(i, out)


# ---- ids ----------------------------------------------------------------------------------------

def _canonical_mask(texts: pa.Array) -> np.ndarray:
    """[K] bool: the text is a canonical non-negative integer of at most 18 digits (no sign,
    no leading zero, no space): within int64 whatever its digits."""
    digits = pc.ascii_is_decimal(texts).to_numpy(zero_copy_only=False)
    first, _, lengths = _edge_bytes(texts)
    return digits & (lengths <= 18) & ((first != ord("0")) | (lengths == 1))


def read_ids(col: Column, what: str) -> tuple[np.ndarray, Failures]:
    """MovieLens / KuaiRand ids (:func:`.parse.parse_id`): [K] int64 and the failures."""
    values = np.zeros(col.size, np.int64)
    failures = Failures.none(col.size)
    fast = _canonical_mask(col.texts)
    if fast.any():
        values[fast] = pc.cast(col.texts.filter(pa.array(fast)), pa.int64()).to_numpy()

    def store(i, v):
        values[i] = v
    _fallback(col, np.flatnonzero(~fast), False,
              lambda rec, v: parse_id(rec, 0, v, what), failures, store)
    return values, failures


def read_table_ids(texts: pa.Array) -> np.ndarray | None:
    """Generic table ids (:func:`.parse.raw_ids`): [K] int64 when every text is a canonical
    integer, else None (the ids are the texts)."""
    fast = _canonical_mask(texts)
    if fast.all():
        return pc.cast(texts, pa.int64()).to_numpy() if len(texts) else np.zeros(0, np.int64)
    values = np.zeros(len(texts), np.int64)
    values[fast] = pc.cast(texts.filter(pa.array(fast)), pa.int64()).to_numpy()
    for i in np.flatnonzero(~fast):
        v = canonical_int(texts[int(i)].as_py())
        if v is None:
            return None
        values[i] = v
    return values


# ---- numbers ------------------------------------------------------------------------------------

def _plain_decimal_mask(texts: pa.Array) -> np.ndarray:
    """[K] bool: digits, optionally with one '.' among them (e.g. ``4``, ``4.5``, ``.5``,
    ``5.``): spellings that Arrow's and Python's parsers read alike."""
    first, _, lengths = _edge_bytes(texts)
    digits = pc.ascii_is_decimal(pc.replace_substring(texts, ".", "", max_replacements=1))
    digits = digits.to_numpy(zero_copy_only=False)
    return digits & (lengths > 0) & ~((lengths == 1) & (first == ord(".")))


def read_floats(col: Column, what: str, *, strip: bool = False) -> tuple[np.ndarray, Failures]:
    """Finite floats (:func:`.parse.parse_float`): [K] float64 and the failures."""
    values = np.zeros(col.size, np.float64)
    failures = Failures.none(col.size)
    if isinstance(col, TypedColumn):
        typed = col.numbers()
        if typed is None:
            fast = np.zeros(col.size, bool)
        else:  # float(str(x)) is x for a finite float, float(int) for an integer
            numbers, valid = typed
            values[:] = numbers
            fast = valid & np.isfinite(values)
    else:
        fast = _plain_decimal_mask(col.texts)
        if fast.any():
            values[fast] = pc.cast(col.texts.filter(pa.array(fast)), pa.float64()).to_numpy()

    def store(i, v):
        values[i] = v
    _fallback(col, np.flatnonzero(~fast), strip,
              lambda rec, v: parse_float(rec, 0, v, what), failures, store)
    return values, failures


# ---- labels -------------------------------------------------------------------------------------

def read_labels(col: Column, labels: FeedbackLabels) -> np.ndarray:
    """[K] int8 feedback codes of the label texts (0: the label has no meaning)."""
    return np.array([0 if (f := labels(t)) is None else int(f) for t in col.texts.to_pylist()],
                    np.int8)
