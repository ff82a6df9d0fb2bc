"""Columns of a block of rows, and their values read by the rules of :mod:`.parse`, vectorised.

A :class:`Column` holds the text of one field of every row of a block as Arrow strings: either
one string per row, or (for ids and labels, which repeat) the distinct strings and a code per
row. Each reader below (:func:`read_ids`, :func:`read_floats`, :func:`read_times`, ...) reads
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
from negrec.data.loaders.parse import (_DECIMAL, TIMESTAMP_RULE, OutOfInt64, canonical_int,
                                       custom_time, datetime_time, number_time, parse_float,
                                       parse_id)

__all__ = ["Column", "Failures", "TypedColumn", "Times", "read_custom_times", "read_floats", "read_ids",
           "read_labels", "read_table_ids", "strip_texts"]


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


# ---- times --------------------------------------------------------------------------------------

#: Time kinds (a column holds numbers or date-times, not both).
NUMBER, DATETIME = 1, 2
KIND_NAMES = {NUMBER: "a number", DATETIME: "a date-time"}


@dataclass
class Times:
    """Event times read from distinct texts: ``whole`` [K] int64 units (floored), ``fraction``
    [K] float64 the part below them, ``rounded`` [K] bool whether flooring changed the value,
    ``kind`` [K] int8 (:data:`NUMBER` / :data:`DATETIME`, 0 where it failed)."""

    whole: np.ndarray
    fraction: np.ndarray
    rounded: np.ndarray
    kind: np.ndarray

    @classmethod
    def empty(cls, k: int) -> "Times":
        return cls(np.zeros(k, np.int64), np.zeros(k, np.float64), np.zeros(k, bool),
                   np.zeros(k, np.int8))

    def store(self, i: int, time, kind: int) -> None:
        self.whole[i], self.fraction[i], self.rounded[i], self.kind[i] = \
            time.whole, time.fraction, time.rounded, kind


def _split_decimal(texts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(integer part, fraction digits) of ``D+.D*`` texts."""
    parts = pc.split_pattern(texts, ".", max_splits=1)
    return pc.list_element(parts, 0), pc.list_element(parts, 1)


_ISO_ARROW = (r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})"
              r"(?::(?P<s>\d{2})(?:\.(?P<f>\d{3}|\d{6}))?)?(?:(?P<z>[Zz])|(?P<sign>[+-])"
              r"(?P<oh>\d{2}):(?P<om>\d{2}))?)?$")


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _iso_datetimes(texts: pa.Array, times: Times, candidates: np.ndarray) -> np.ndarray:
    """Reads the ISO-8601 date-times among ``texts[candidates]`` that ``datetime.fromisoformat``
    reads the same way (years 1000-8999, the common layouts; validated here); returns [K] bool,
    true where read. Others are left to the per-value reader."""
    done = np.zeros(len(texts), bool)
    if not len(candidates):
        return done
    sub = texts.take(pa.array(candidates, pa.int64()))
    parts = pc.extract_regex(sub, _ISO_ARROW)
    ok = parts.is_valid().to_numpy(zero_copy_only=False)
    if not ok.any():
        return done
    idx = candidates[ok]
    parts = parts.filter(pa.array(ok))

    def num(name, default=0):
        f = pc.struct_field(parts, name)
        f = pc.if_else(pc.equal(f, ""), str(default), f)
        return pc.cast(f, pa.int64()).to_numpy()

    y, mo, d = num("y"), num("mo"), num("d")
    h, mi, s = num("h"), num("mi"), num("s")
    frac = pc.struct_field(parts, "f")
    micro = num("f") * np.where(pc.utf8_length(frac).to_numpy(zero_copy_only=False) == 3, 1000, 1)
    sign = np.where(pc.equal(pc.struct_field(parts, "sign"), "-").to_numpy(zero_copy_only=False), -1, 1)
    oh, om = num("oh"), num("om")
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = _DAYS_IN_MONTH[np.clip(mo, 0, 12)] + ((mo == 2) & leap)
    valid = ((y >= 1000) & (y <= 8999) & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim)
             & (h <= 23) & (mi <= 59) & (s <= 59) & (oh <= 23) & (om <= 59))
    seconds = (_days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
               - sign * (oh * 3600 + om * 60))
    idx, seconds, micro = idx[valid], seconds[valid], micro[valid]
    times.whole[idx] = seconds
    times.fraction[idx] = micro / 1e6  # as datetime_time: microseconds / 1e6
    times.rounded[idx] = micro != 0
    times.kind[idx] = DATETIME
    done[idx] = True
    return done


def read_times(col: Column, what: str, *, datetimes: bool, strip: bool = False
               ) -> tuple[Times, Failures]:
    """Timestamps by the module's rule (:class:`.parse.TimeColumn`, less the one-kind-per-column
    rule, which depends on row order: :class:`TimeKinds`)."""
    if isinstance(col, TypedColumn):
        return _typed_times(col, what, datetimes)
    texts = col.texts
    k = len(texts)
    times, failures = Times.empty(k), Failures.none(k)
    first, _, lengths = _edge_bytes(texts)
    digits = pc.ascii_is_decimal(texts).to_numpy(zero_copy_only=False) & (lengths <= 18) \
        & (lengths > 0)
    if digits.any():  # plain non-negative integers: exact
        times.whole[digits] = pc.cast(texts.filter(pa.array(digits)), pa.int64()).to_numpy()
        times.kind[digits] = NUMBER
    rest = np.flatnonzero(~digits)
    if len(rest):
        rest = rest[_plain_decimals(texts, rest, times)]
    if len(rest) and datetimes:
        rest = rest[~_iso_datetimes(texts, times, rest)[rest]]
    if len(rest):
        reader = _TimeText(what, datetimes)
        for i, value in _each(col, rest, strip):
            reader(i, value, times, failures)
    return times, failures


_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _typed_times(col: TypedColumn, what: str, datetimes: bool) -> tuple[Times, Failures]:
    """Times of a typed column: integers exactly; whole floats within int64 exactly; date-time
    and date columns (with datetimes) as seconds since 1970-01-01 UTC, the part below a second
    to the microsecond (as ``str(datetime)`` then ``fromisoformat``); anything else (and
    nulls) as its text."""
    array, k = col.array, len(col.array)
    times, failures = Times.empty(k), Failures.none(k)
    typ = array.type
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    fast = np.zeros(k, bool)
    if pa.types.is_integer(typ):
        values = array.fill_null(0).to_numpy(zero_copy_only=False)
        if values.dtype == np.uint64:
            fast = valid & (values <= np.uint64(2**63 - 1))
            values = np.where(fast, values, 0).astype(np.int64)
        else:
            fast = valid
        times.whole[:] = values
        times.kind[fast] = NUMBER
    elif pa.types.is_floating(typ):
        values = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
        with np.errstate(invalid="ignore"):
            fast = valid & np.isfinite(values) & (np.floor(values) == values) \
                & (values >= -2.0**63) & (values < 2.0**63)
        times.whole[fast] = values[fast].astype(np.int64)
        times.kind[fast] = NUMBER
    elif datetimes and (pa.types.is_timestamp(typ) or pa.types.is_date(typ)):
        if pa.types.is_timestamp(typ):
            per_second = _UNITS_PER_SECOND[typ.unit]
            ticks = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        else:
            per_second = 1
            ticks = array.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy(
                zero_copy_only=False).astype(np.int64) * 86_400
        seconds, below = np.divmod(ticks, per_second)
        micro = below * 1_000_000 // per_second
        # years 1000-8999: Python's datetime holds them in every time zone
        fast = valid & (seconds >= -30_610_224_000) & (seconds < 221_845_392_000)
        times.whole[fast] = seconds[fast]
        times.fraction[fast] = micro[fast] / 1e6
        times.rounded[fast] = micro[fast] != 0
        times.kind[fast] = DATETIME
    rest = np.flatnonzero(~fast)
    if len(rest):
        reader = _TimeText(what, datetimes)
        for i, value in _each(col, rest, False):
            reader(i, value, times, failures)
    return times, failures


def _plain_decimals(texts: pa.Array, rest: np.ndarray, times: Times) -> np.ndarray:
    """Reads the non-negative ``D+.D*`` decimals among ``texts[rest]`` (at most 18 integer and
    20 fraction digits: exact in Decimal's default context, as :func:`.parse.number_time`);
    returns [len(rest)] bool, true where still unread."""
    sub = texts.take(pa.array(rest, pa.int64()))
    _, _, lengths = _edge_bytes(sub)
    candidates = _plain_decimal_mask(sub) & (lengths <= 39)
    candidates &= pc.match_substring(sub, ".").to_numpy(zero_copy_only=False)
    if not candidates.any():
        return np.ones(len(rest), bool)
    whole_txt, frac_txt = _split_decimal(sub.filter(pa.array(candidates)))
    wl = pc.utf8_length(whole_txt).to_numpy(zero_copy_only=False)
    fl = pc.utf8_length(frac_txt).to_numpy(zero_copy_only=False)
    ok = (wl >= 1) & (wl <= 18) & (fl <= 20)
    pos = np.flatnonzero(candidates)[ok]
    whole_txt, frac_txt = whole_txt.filter(pa.array(ok)), frac_txt.filter(pa.array(ok))
    idx = rest[pos]
    times.whole[idx] = pc.cast(whole_txt, pa.int64()).to_numpy()
    # the part below the unit: float("0." + digits), as float(Decimal) reads it
    frac_digits = pc.if_else(pc.equal(frac_txt, ""), "0", frac_txt)
    fraction = pc.cast(pc.binary_join_element_wise("0.", frac_digits, ""), pa.float64()).to_numpy()
    nonzero = pc.utf8_length(pc.replace_substring(frac_digits, "0", "")).to_numpy(
        zero_copy_only=False) > 0
    times.fraction[idx] = np.where(nonzero, fraction, 0.0)
    times.rounded[idx] = nonzero
    times.kind[idx] = NUMBER
    unread = np.ones(len(rest), bool)
    unread[pos] = False
    return unread


class _TimeText:
    """One timestamp text read as :class:`.parse.TimeColumn` reads it (less the kind rule)."""

    def __init__(self, what: str, datetimes: bool):
        self.what, self.datetimes = what, datetimes

    def __call__(self, i: int, value: str, times: Times, failures: Failures) -> None:
        text = value.strip()
        what = self.what
        try:
            if _DECIMAL.fullmatch(text):
                times.store(i, number_time(text), NUMBER)
            elif self.datetimes:
                times.store(i, datetime_time(text), DATETIME)
            else:
                failures.fail(i, f"unparsable {what}", f"{value!r} is not a number")
                # TimeColumn.parse reports this inside its try: in error mode the bad-row error
                # (a ValueError) is caught there and reported again by the ISO-8601 rule
                failures.error_details[i] = f"{value!r} is not {TIMESTAMP_RULE}"
        except OutOfInt64:
            failures.fail(i, f"unparsable {what}", f"{value!r} is out of the int64 range")
        except ValueError:  # not an ISO-8601 date-time
            failures.fail(i, f"unparsable {what}", f"{value!r} is not {TIMESTAMP_RULE}")
        except Exception as exc:  # e.g. OverflowError: raised where its row stands
            failures.raise_at(i, exc)


def read_custom_times(col: Column, parser: Callable[[str], int], *, only: np.ndarray,
                      strip: bool = False) -> tuple[Times, Failures]:
    """Timestamps read by a caller's ``timestamp_parser`` (:func:`.parse.custom_time`), once
    per distinct text, for the texts at ``only`` (those of rows still to read)."""
    times, failures = Times.empty(col.size), Failures.none(col.size)

    def store(i, t):
        times.store(i, t, NUMBER)
    _fallback(col, np.unique(only), strip, lambda rec, v: custom_time(rec, 0, v, parser),
              failures, store)
    return times, failures


# ---- labels -------------------------------------------------------------------------------------

def read_labels(col: Column, labels: FeedbackLabels) -> np.ndarray:
    """[K] int8 feedback codes of the label texts (0: the label has no meaning)."""
    return np.array([0 if (f := labels(t)) is None else int(f) for t in col.texts.to_pylist()],
                    np.int8)
