"""Timestamps of a column of rows, read by the rules of :mod:`.parse`, vectorised: numbers
(seconds, or the units of a typed Arrow column), ISO date-times (Arrow kernels and civil-date
arithmetic in numpy), and custom formats (a per-value parser). Like every reader of
:mod:`.columns`, it reads the distinct strings: the common spellings with Arrow and numpy, any
other with the per-value function of :mod:`.parse`, so a value means exactly what it meant to
the row-by-row reader, and a bad value gets the same reason and detail (a :class:`Failures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negrec.data.loaders.columns import (Column, Failures, TypedColumn, _each, _edge_bytes,
                                         _fallback, _plain_decimal_mask)
from negrec.data.loaders.parse import (_DECIMAL, TIMESTAMP_RULE, OutOfInt64, custom_time,
                                       datetime_time, number_time)

__all__ = ["DATETIME", "KIND_NAMES", "NUMBER", "Times", "read_custom_times", "read_times"]

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
