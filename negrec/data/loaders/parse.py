"""Reading values: ids (canonical integers or strings), finite numbers, timestamps (exact
integers, decimals floored to whole units, ISO-8601 date-times) and ratings -> feedback, by
the rules of :mod:`negrec.data.loaders`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Callable, NamedTuple, Sequence

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.loaders.errors import BadRowPolicy
from negrec.errors import UserError

__all__ = ["INT64_MAX", "INT64_MIN", "TIMESTAMP_RULE", "RatingMapping", "Time", "TimeColumn",
           "canonical_int", "custom_time", "parse_float", "parse_id", "raw_ids"]

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")


def canonical_int(text: str) -> int | None:
    """The int64 that ``text`` spells canonically (``-?(0|[1-9][0-9]*)``: no ``+``, leading
    zeros, ``_``, spaces or decimals; not ``-0``), else None. Distinct canonical strings are
    distinct integers, so reading ids this way never merges two raw ids."""
    if text != "-0" and _CANONICAL_INT.fullmatch(text):
        value = int(text)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    return None


def raw_ids(values: Sequence[str]) -> np.ndarray:
    """[N] int64 ids when every value is a canonical integer, else the strings themselves."""
    ints = [canonical_int(v) for v in values]
    if all(v is not None for v in ints):
        return np.asarray(ints, dtype=np.int64)
    return np.asarray(values, dtype=str)


def exact_decimal(text: str) -> Decimal | None:
    """``text`` as an exact finite Decimal, or None (Decimal also reads '1_0' and ' 5 ')."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def parse_id(bad: BadRowPolicy, line_no: int, value: str, what: str) -> int | None:
    """A MovieLens / KuaiRand id: a canonical integer (surrounding spaces ignored), else a bad
    row (None)."""
    text = value.strip()
    ident = canonical_int(text)
    if ident is not None:
        return ident
    number = exact_decimal(text)
    if number is None:
        bad(line_no, f"unparsable {what}", f"{value!r} is not a number")
    elif number != number.to_integral_value():
        bad(line_no, f"unparsable {what}", f"{value!r} is not an integer")
    elif not INT64_MIN <= number <= INT64_MAX:
        bad(line_no, f"{what} out of the int64 range", f"{value!r}")
    else:
        bad(line_no, f"non-canonical {what}",
            f"{value!r} is not written as a canonical integer ({int(number)}); ids with a '+', "
            "leading zeros, '_' or decimals are refused so that two spellings never become one id")
    return None


def parse_float(bad: BadRowPolicy, line_no: int, value: str, what: str) -> float | None:
    """A finite float, else a bad row (None)."""
    try:
        x = float(value)
    except ValueError:
        bad(line_no, f"unparsable {what}", f"{value!r} is not a number")
        return None
    if not math.isfinite(x):
        bad(line_no, f"non-finite {what}", f"{value!r}")
        return None
    return x


class Time(NamedTuple):
    """One parsed timestamp: ``whole`` int64 units (floored), ``fraction`` in [0, 1] the part
    below them (only orders events inside one unit), ``rounded`` whether flooring changed it."""

    whole: int
    fraction: float
    rounded: bool
    text: str


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_RULE = ("an integer, a decimal number or an ISO-8601 date-time such as "
                  "2024-05-01T12:30:00Z")


class OutOfInt64(ValueError):
    """A number too large for an int64."""


def number_time(text: str) -> Time:
    """An integer or decimal timestamp (``text`` matches ``_DECIMAL``), read exactly."""
    exact = Decimal(text)
    if exact.adjusted() > 19:  # beyond int64: do not build a huge integer (e.g. from 1e999999)
        raise OutOfInt64(text)
    if _INTEGER.fullmatch(text):
        whole, fraction, rounded = int(exact), 0.0, False
    else:
        whole = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        rounded = exact != whole
        fraction = float(exact - whole)  # a Decimal in [0, 1): float only orders ties
    if not INT64_MIN <= whole <= INT64_MAX:
        raise OutOfInt64(text)
    return Time(whole, fraction, rounded, text)


def datetime_time(text: str) -> Time:
    """An ISO-8601 date-time as seconds since 1970-01-01 UTC (naive = UTC); ValueError if it
    is not one."""
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text  # 'Z' before Python 3.11
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH  # exact: days, seconds in [0, 86400), microseconds in [0, 1e6)
    return Time(delta.days * 86_400 + delta.seconds, delta.microseconds / 1e6,
                 delta.microseconds != 0, text)


class TimeColumn:
    """Parses one column of event times by the module's timestamp rule; remembers the kind of
    the first value (a column holds numbers or date-times, not both)."""

    def __init__(self, *, datetimes: bool):
        self.datetimes = datetimes
        self.first: tuple[str, int] | None = None  # (kind, line) of the first value

    def parse(self, bad: BadRowPolicy, line_no: int, value: str, what: str = "timestamp") -> Time | None:
        text = value.strip()
        try:
            if _DECIMAL.fullmatch(text):
                kind, time = "a number", number_time(text)
            elif self.datetimes:
                kind, time = "a date-time", datetime_time(text)
            else:
                bad(line_no, f"unparsable {what}", f"{value!r} is not a number")
                return None
        except OutOfInt64:
            bad(line_no, f"unparsable {what}", f"{value!r} is out of the int64 range")
            return None
        except ValueError:  # not an ISO-8601 date-time
            bad(line_no, f"unparsable {what}", f"{value!r} is not {TIMESTAMP_RULE}")
            return None
        if self.first is None:
            self.first = (kind, line_no)
        elif self.first[0] != kind:
            bad(line_no, f"mixed {what} kinds",
                f"{value!r} is {kind} but line {self.first[1]} holds {self.first[0]}; one column "
                "holds numbers or date-times, not both")
            return None
        return time


@dataclass(frozen=True)
class RatingMapping:
    """Explicit ratings -> feedback: ``>= positive_min`` positive, ``<= dislike_max`` dislike,
    anything between neutral (MovieLens defaults: 4-5 positive, 1-2 dislike, 3 neutral)."""

    positive_min: float = 4.0
    dislike_max: float = 2.0

    def __post_init__(self) -> None:
        if not self.dislike_max < self.positive_min:
            raise UserError(f"RatingMapping: dislike_max ({self.dislike_max}) must be below "
                             f"positive_min ({self.positive_min})")

    def map(self, ratings: np.ndarray) -> np.ndarray:
        ratings = np.asarray(ratings, dtype=np.float64)
        out = np.full(len(ratings), int(Feedback.NEUTRAL), dtype=np.int8)
        out[ratings >= self.positive_min] = Feedback.POSITIVE
        out[ratings <= self.dislike_max] = Feedback.DISLIKE
        return out


def custom_time(bad: BadRowPolicy, line_no: int, value: str,
                 parser: Callable[[str], int]) -> Time | None:
    """A timestamp read by a caller's ``timestamp_parser`` (which must return an int)."""
    try:
        whole = parser(value)
    except (ValueError, OverflowError) as exc:
        bad(line_no, "unparsable timestamp", f"{value!r} ({exc})")
        return None
    if not isinstance(whole, (int, np.integer)) or isinstance(whole, bool):
        raise TypeError(f"timestamp_parser returned {whole!r} ({type(whole).__name__}) for "
                        f"{value!r}; it must return an int")
    if not INT64_MIN <= whole <= INT64_MAX:
        bad(line_no, "unparsable timestamp", f"{value!r} is out of the int64 range")
        return None
    return Time(int(whole), 0.0, False, value)
