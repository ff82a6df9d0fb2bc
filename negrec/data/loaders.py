"""Loaders of public feedback logs into :class:`~negrec.data.log.EventLog`.

- MovieLens: ml-100k (``u.data`` + ``u.item``), ml-1m (``ratings.dat`` + ``movies.dat``),
  ml-latest / ml-latest-small (``ratings.csv`` + ``movies.csv``).
- KuaiRand "standard" logs (``log_standard_*.csv`` + optional ``video_features_basic*.csv``).
- Generic CSV or Parquet with a column mapping (:func:`load_table`).

Every loader reports what it read, kept, dropped and repaired (:class:`LoadReport`). Bad rows
raise a :class:`DataFormatError` naming the file and line, or with ``on_bad_rows="skip"`` are
dropped and counted by reason.

Rules shared by every loader:

- **Lines.** Text files hold one record per physical line; line numbers in messages are the
  file's physical lines (1 = the first, header included). A quoted field that does not close on
  its own line is a bad row ("unclosed quote"; fields spanning lines are not supported): the
  lines after it are read again as records of their own, so an unbalanced quote never hides
  rows. A UTF-8 byte-order mark is dropped whatever the declared encoding (the file is then read
  as UTF-8); a UTF-16 file is an error.
- **Ids** (users, items, metadata items) are strings unless every id of the column is a
  canonical integer (:func:`canonical_int`: ``-?(0|[1-9][0-9]*)`` within int64), in which case
  they are int64. Surrounding spaces are not part of an id; otherwise two distinct spellings
  (``"0012"`` / ``"12"``, ``"+5"`` / ``"5"``, ``"1_0"`` / ``"10"``) are never one id. MovieLens
  and KuaiRand ids must be canonical integers (any other spelling is a bad row).
- **Timestamps** are read exactly as int64: integers as they are; decimal numbers (``1.5``,
  ``1.7e9``) exactly, then floored to whole units, counted in ``LoadReport.notes``, with events
  inside one unit kept in the order of their exact times. Generic tables (:func:`load_table`)
  also take ISO-8601 date-times (``2024-05-01``, ``2024-05-01T12:30:00``, ``...+02:00``,
  ``...Z``), converted to int64 **seconds** since 1970-01-01 UTC; a date-time without a time
  zone is UTC; fractions of a second are floored like decimal numbers. A value of digits only is
  a number, and one column holds numbers or date-times, not both.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Mapping, NamedTuple, Sequence

import numpy as np

from negrec.data.feedback import FEEDBACK_TYPES, OTHER_LABELS, Feedback, FeedbackLabels
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.errors import UserError

__all__ = [
    "DataFormatError", "Option", "RatingMapping", "ColumnMap", "ItemColumns", "KuaiRandMapping",
    "canonical_int", "load_movielens", "load_kuairand", "load_table", "load_source",
]

BadRows = Literal["error", "skip"]

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


# ---- errors ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """A loader keyword argument an error message advises, with the value to pass.

    ``str()`` spells it as Python (``on_bad_rows='skip'``); a front end with other spellings
    (the command line: ``--on-bad-rows skip``) re-spells it through
    :meth:`DataFormatError.spelled`, so the data layer needs no knowledge of the front end.
    """

    name: str  # keyword of load_movielens / load_kuairand / load_table
    value: object

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


SKIP_BAD_ROWS = Option("on_bad_rows", "skip")


class DataFormatError(UserError):
    """A malformed input file: the message names the file, the line and what is wrong.

    Built from text and :class:`Option` parts; ``str()`` spells the options as Python keyword
    arguments, :meth:`spelled` with any other speller.
    """

    def __init__(self, *parts: str | Option):
        self.parts = parts
        super().__init__("".join(map(str, parts)))

    def spelled(self, spell: Callable[[Option], str]) -> str:
        """The message with every option written by ``spell``."""
        return "".join(spell(p) if isinstance(p, Option) else p for p in self.parts)


class _BadRows:
    """The bad-row policy of one file: ``"error"`` raises a DataFormatError naming the file and
    line; ``"skip"`` drops the row and counts it in ``report`` by reason."""

    def __init__(self, path: Path, on_bad_rows: BadRows, report: LoadReport):
        if on_bad_rows not in ("error", "skip"):
            raise UserError(f"on_bad_rows must be 'error' or 'skip'; got {on_bad_rows!r}")
        self.path, self.policy, self.report = path, on_bad_rows, report

    def __call__(self, line_no: int, reason: str, detail: str) -> None:
        if self.policy == "error":
            raise DataFormatError(f"{self.path}:{line_no}: {reason}: {detail} (pass ",
                                  SKIP_BAD_ROWS, " to drop such rows and count them)")
        self.report.drop(reason, f"line {line_no}: {detail}")


# ---- values ------------------------------------------------------------------------------------

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


def _raw_ids(values: Sequence[str]) -> np.ndarray:
    """[N] int64 ids when every value is a canonical integer, else the strings themselves."""
    ints = [canonical_int(v) for v in values]
    if all(v is not None for v in ints):
        return np.asarray(ints, dtype=np.int64)
    return np.asarray(values, dtype=str)


def _exact_decimal(text: str) -> Decimal | None:
    """``text`` as an exact finite Decimal, or None (Decimal also reads '1_0' and ' 5 ')."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _parse_id(bad: _BadRows, line_no: int, value: str, what: str) -> int | None:
    """A MovieLens / KuaiRand id: a canonical integer (surrounding spaces ignored), else a bad
    row (None)."""
    text = value.strip()
    ident = canonical_int(text)
    if ident is not None:
        return ident
    number = _exact_decimal(text)
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


def _parse_float(bad: _BadRows, line_no: int, value: str, what: str) -> float | None:
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


class _Time(NamedTuple):
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


class _OutOfInt64(ValueError):
    """A number too large for an int64."""


def _number_time(text: str) -> _Time:
    """An integer or decimal timestamp (``text`` matches ``_DECIMAL``), read exactly."""
    exact = Decimal(text)
    if exact.adjusted() > 19:  # beyond int64: do not build a huge integer (e.g. from 1e999999)
        raise _OutOfInt64(text)
    if _INTEGER.fullmatch(text):
        whole, fraction, rounded = int(exact), 0.0, False
    else:
        whole = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        rounded = exact != whole
        fraction = float(exact - whole)  # a Decimal in [0, 1): float only orders ties
    if not INT64_MIN <= whole <= INT64_MAX:
        raise _OutOfInt64(text)
    return _Time(whole, fraction, rounded, text)


def _datetime_time(text: str) -> _Time:
    """An ISO-8601 date-time as seconds since 1970-01-01 UTC (naive = UTC); ValueError if it
    is not one."""
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text  # 'Z' before Python 3.11
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH  # exact: days, seconds in [0, 86400), microseconds in [0, 1e6)
    return _Time(delta.days * 86_400 + delta.seconds, delta.microseconds / 1e6,
                 delta.microseconds != 0, text)


class _TimeColumn:
    """Parses one column of event times by the module's timestamp rule; remembers the kind of
    the first value (a column holds numbers or date-times, not both)."""

    def __init__(self, *, datetimes: bool):
        self.datetimes = datetimes
        self.first: tuple[str, int] | None = None  # (kind, line) of the first value

    def parse(self, bad: _BadRows, line_no: int, value: str, what: str = "timestamp") -> _Time | None:
        text = value.strip()
        try:
            if _DECIMAL.fullmatch(text):
                kind, time = "a number", _number_time(text)
            elif self.datetimes:
                kind, time = "a date-time", _datetime_time(text)
            else:
                bad(line_no, f"unparsable {what}", f"{value!r} is not a number")
                return None
        except _OutOfInt64:
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


class _Events:
    """The kept events of one load, in source order, as EventLog.from_events takes them."""

    def __init__(self) -> None:
        self.users: list = []
        self.items: list = []
        self.times: list[int] = []
        self.fractions: list[float] = []
        self.feedback: list[int] = []
        self.strength: list[float] = []
        self.rounded_times = 0
        self.rounded_example = ""

    def __len__(self) -> int:
        return len(self.users)

    def add(self, user, item, time: _Time, feedback: int | None = None,
            strength: float | None = None) -> None:
        self.users.append(user)
        self.items.append(item)
        self.times.append(time.whole)
        self.fractions.append(time.fraction)
        if time.rounded:
            self.rounded_times += 1
            self.rounded_example = self.rounded_example or f"{time.text!r} -> {time.whole}"
        if feedback is not None:
            self.feedback.append(feedback)
        if strength is not None:
            self.strength.append(strength)

    def to_log(self, *, report: LoadReport, source: str, users=None, items=None, feedback=None,
               strength=None, item_meta: ItemMeta | None = None) -> EventLog:
        """The log of these events (``users`` / ``items`` / ``feedback`` / ``strength`` replace
        the collected lists, e.g. ids converted by :func:`_raw_ids`)."""
        if self.rounded_times:
            report.note("timestamps with a fraction, floored to whole units (events within one "
                        "unit keep the order of their exact times)", self.rounded_example,
                        self.rounded_times)
        fractions = np.asarray(self.fractions) if self.rounded_times else None
        return EventLog.from_events(
            self.users if users is None else users, self.items if items is None else items,
            self.times, self.feedback if feedback is None else feedback,
            strength=(self.strength or None) if strength is None else strength,
            item_meta=item_meta, source=source, report=report, time_fractions=fractions)


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


# ---- delimited text ------------------------------------------------------------------------------

class _NumberedLines:
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

    def __iter__(self) -> "_NumberedLines":
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


class _Rows:
    """Reads a delimited text file record by record, one record per physical line, with the
    line numbers of the file and a bad-row policy (see the module docstring)."""

    def __init__(self, path: Path, *, delimiter: str, encoding: str, header: bool,
                 on_bad_rows: BadRows, report: LoadReport, min_fields: int,
                 encoding_option: bool = False):
        self.bad = _BadRows(path, on_bad_rows, report)
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
                lines = _NumberedLines(f)
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

    def _quote_spans_lines(self, lines: _NumberedLines) -> None:
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


# ---- MovieLens ------------------------------------------------------------------------------

GenreRule = Literal["rarest", "first"]


def _genre_clusters(item_genres: list[list[str]], rule: GenreRule) -> tuple[np.ndarray, list[str]]:
    """One cluster per item from its genres. ``rarest``: the least frequent of its genres
    (the most specific; ties broken by genre name); ``first``: the first one listed.
    Items without a genre get -1."""
    if rule not in ("rarest", "first"):
        raise UserError(f"genre_rule must be 'rarest' or 'first'; got {rule!r}")
    freq: dict[str, int] = {}
    for gs in item_genres:
        for g in gs:
            freq[g] = freq.get(g, 0) + 1
    names = sorted(freq)
    index = {g: i for i, g in enumerate(names)}
    cluster = np.full(len(item_genres), -1, dtype=np.int32)
    for i, gs in enumerate(item_genres):
        if not gs:
            continue
        g = gs[0] if rule == "first" else min(gs, key=lambda x: (freq[x], x))
        cluster[i] = index[g]
    return cluster, names


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _movielens_layout(path: Path) -> str:
    if (path / "u.data").exists():
        return "ml-100k"
    if (path / "ratings.dat").exists():
        return "ml-1m"
    if (path / "ratings.csv").exists():
        return "ml-latest"
    raise FileNotFoundError(
        f"{path}: not a MovieLens folder (expected u.data [ml-100k], ratings.dat [ml-1m] or "
        "ratings.csv [ml-latest])"
    )


def load_movielens(
    path: str | Path,
    *,
    mapping: RatingMapping = RatingMapping(),
    genre_rule: GenreRule = "rarest",
    on_bad_rows: BadRows = "error",
) -> EventLog:
    """A MovieLens folder (ml-100k, ml-1m or ml-latest[-small], detected from its files).

    Ratings become feedback through ``mapping``; the rating is kept as ``strength``. Genres
    give the content cluster (see ``genre_rule``); MovieLens has no creators. All movies of
    the metadata file are items, rated or not. User and movie ids are canonical integers;
    timestamps follow the module's rule (numbers only).
    """
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: MovieLens path must be a folder")
    layout = _movielens_layout(path)
    report = LoadReport(source=f"movielens:{layout}")
    if layout == "ml-100k":
        item_ids, titles, genres = _ml100k_items(path / "u.item", on_bad_rows, report)
        rows = _Rows(path / "u.data", delimiter="\t", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    elif layout == "ml-1m":
        item_ids, titles, genres = _ml_items(path / "movies.dat", "::", "latin-1", False,
                                             on_bad_rows, report)
        rows = _Rows(path / "ratings.dat", delimiter="::", encoding="latin-1", header=False,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = (0, 1, 2, 3)
    else:
        item_ids, titles, genres = _ml_items(path / "movies.csv", ",", "utf-8", True,
                                             on_bad_rows, report)
        rows = _Rows(path / "ratings.csv", delimiter=",", encoding="utf-8", header=True,
                     on_bad_rows=on_bad_rows, report=report, min_fields=4)
        cols = None
    events = _Events()
    times = _TimeColumn(datetimes=False)
    known_items = set(item_ids)
    for line_no, f in rows:
        if cols is None:
            cols = tuple(rows.column(c) for c in ("userId", "movieId", "rating", "timestamp"))
        if len(f) <= max(cols):
            rows.bad(line_no, "too few fields", f"expected {max(cols) + 1}, got {len(f)}")
            continue
        # one bad field drops (and counts) the row once: stop at the first
        user_col, item_col, rating_col, time_col = cols
        user = _parse_id(rows.bad, line_no, f[user_col], "user id")
        if user is None:
            continue
        item = _parse_id(rows.bad, line_no, f[item_col], "item id")
        if item is None:
            continue
        rating = _parse_float(rows.bad, line_no, f[rating_col], "rating")
        if rating is None:
            continue
        time = times.parse(rows.bad, line_no, f[time_col])
        if time is None:
            continue
        if item not in known_items:
            rows.bad(line_no, "item missing from the movie metadata", f"item {item}")
            continue
        events.add(user, item, time, strength=rating)
    report.rows_kept = len(events)
    _require_events(rows.path, report)
    cluster, names = _genre_clusters(genres, genre_rule)
    meta = ItemMeta(raw_ids=np.asarray(item_ids, dtype=np.int64), cluster=cluster,
                    cluster_names=names, titles=titles)
    ratings = np.asarray(events.strength, dtype=np.float32)
    return events.to_log(report=report, source=f"movielens:{layout}",
                         feedback=mapping.map(ratings), strength=ratings, item_meta=meta)


def _ml100k_items(path: Path, on_bad_rows: BadRows, report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = _Rows(path, delimiter="|", encoding="latin-1", header=False, on_bad_rows=on_bad_rows,
                 report=meta_report, min_fields=5 + len(ML100K_GENRES))
    ids, titles, genres = [], [], []
    seen: set[int] = set()
    for line_no, f in rows:
        i = _parse_id(rows.bad, line_no, f[0], "item id")
        if i is None:
            continue
        flags = f[5:5 + len(ML100K_GENRES)]
        if any(x not in ("0", "1") for x in flags):
            rows.bad(line_no, "genre flags must be 0 or 1", f"{flags}")
            continue
        if i in seen:
            meta_report.repair("duplicate item rows in the metadata (first kept)", f"line {line_no}: item {i}")
            continue
        seen.add(i)
        ids.append(i)
        titles.append(f[1])
        genres.append([g for g, x in zip(ML100K_GENRES, flags) if x == "1" and g != "unknown"])
    _merge_meta_report(report, meta_report, path)
    return ids, titles, genres


def _ml_items(path: Path, delimiter: str, encoding: str, header: bool, on_bad_rows: BadRows,
              report: LoadReport):
    meta_report = LoadReport(source=str(path))
    rows = _Rows(path, delimiter=delimiter, encoding=encoding, header=header,
                 on_bad_rows=on_bad_rows, report=meta_report, min_fields=3)
    ids, titles, genres = [], [], []
    seen: set[int] = set()
    cols = None if header else (0, 1, 2)
    for line_no, f in rows:
        if cols is None:
            cols = tuple(rows.column(c) for c in ("movieId", "title", "genres"))
        if len(f) <= max(cols):
            rows.bad(line_no, "too few fields", f"expected {max(cols) + 1}, got {len(f)}")
            continue
        i = _parse_id(rows.bad, line_no, f[cols[0]], "item id")
        if i is None:
            continue
        if i in seen:
            meta_report.repair("duplicate item rows in the metadata (first kept)", f"line {line_no}: item {i}")
            continue
        seen.add(i)
        ids.append(i)
        titles.append(f[cols[1]])
        gs = [g for g in f[cols[2]].split("|") if g and g != "(no genres listed)"]
        genres.append(gs)
    _merge_meta_report(report, meta_report, path)
    return ids, titles, genres


def _merge_meta_report(report: LoadReport, meta_report: LoadReport, path: Path) -> None:
    """Adds a metadata file's drops, repairs and notes to the load's report, by file."""
    for counts, add in ((meta_report.dropped, report.drop), (meta_report.repaired, report.repair),
                        (meta_report.notes, report.note)):
        for reason, n in counts.items():
            add(f"{path.name}: {reason}", meta_report.examples.get(reason, ""), n)


def _require_events(path: Path, report: LoadReport) -> None:
    """An event file that yields no event at all is empty, truncated or unreadable: an error
    (an empty log would only fail later, far from the cause)."""
    if report.rows_kept == 0:
        why = f"; dropped: {report.dropped}" if report.dropped else ""
        raise DataFormatError(f"{path}: no events read ({report.rows_read} rows read{why}); the "
                              "file is empty, truncated or not in the expected format")


# ---- KuaiRand ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class KuaiRandMapping:
    """KuaiRand exposure -> feedback, in priority order: ``is_hate`` -> dislike; ``is_like`` or
    ``long_view`` -> positive; a play shorter than ``skip_fraction`` of the video's duration
    (or than ``skip_max_ms``, whichever is longer) -> skip; anything else neutral."""

    skip_fraction: float = 0.1
    skip_max_ms: int = 3000

    def feedback(self, is_like: float, is_hate: float, long_view: float, play_time_ms: float,
                 duration_ms: float) -> Feedback:
        if is_hate:
            return Feedback.DISLIKE
        if is_like or long_view:
            return Feedback.POSITIVE
        if play_time_ms < max(self.skip_fraction * duration_ms, self.skip_max_ms):
            return Feedback.SKIP
        return Feedback.NEUTRAL


_KUAIRAND_NUMBERS = ("is_like", "is_hate", "long_view", "play_time_ms", "duration_ms")


def load_kuairand(
    path: str | Path,
    *,
    mapping: KuaiRandMapping = KuaiRandMapping(),
    on_bad_rows: BadRows = "error",
) -> EventLog:
    """A KuaiRand folder: every ``log_standard_*.csv`` in it, plus categories (the video's
    first tag) and creators (``author_id``) from ``video_features_basic*.csv`` when present.
    The play time in seconds is kept as ``strength``. User and video ids are canonical
    integers; ``time_ms`` follows the module's timestamp rule (numbers only, milliseconds)."""
    path = Path(path)
    files = sorted(path.glob("log_standard_*.csv")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"{path}: no KuaiRand log_standard_*.csv files found")
    report = LoadReport(source="kuairand")
    events = _Events()
    times = _TimeColumn(datetimes=False)
    for file in files:
        rows = _Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("user_id", "video_id", "time_ms") + _KUAIRAND_NUMBERS}
                width = max(cols.values()) + 1
            if len(f) < width:
                rows.bad(line_no, "too few fields", f"expected {width}, got {len(f)}")
                continue
            # one bad field drops (and counts) the row once: stop at the first
            user = _parse_id(rows.bad, line_no, f[cols["user_id"]], "user_id")
            if user is None:
                continue
            video = _parse_id(rows.bad, line_no, f[cols["video_id"]], "video_id")
            if video is None:
                continue
            time = times.parse(rows.bad, line_no, f[cols["time_ms"]], "time_ms")
            if time is None:
                continue
            numbers = {}
            for c in _KUAIRAND_NUMBERS:
                numbers[c] = _parse_float(rows.bad, line_no, f[cols[c]], c)
                if numbers[c] is None:
                    break
            if any(v is None for v in numbers.values()):
                continue
            events.add(user, video, time, int(mapping.feedback(**numbers)),
                       numbers["play_time_ms"] / 1000.0)
    report.rows_kept = len(events)
    _require_events(path, report)
    feature_files = sorted(path.glob("video_features_basic*.csv")) if path.is_dir() else []
    meta = _kuairand_meta(feature_files, np.unique(np.asarray(events.items, dtype=np.int64)),
                          on_bad_rows, report)
    return events.to_log(report=report, source="kuairand", item_meta=meta)


def _kuairand_meta(files: list[Path], item_ids: np.ndarray, on_bad_rows: BadRows,
                   report: LoadReport) -> ItemMeta:
    if not files:
        return ItemMeta.anonymous(item_ids)
    tag_of: dict[int, str] = {}
    author_of: dict[int, str] = {}
    for file in files:
        meta_report = LoadReport(source=str(file))
        rows = _Rows(file, delimiter=",", encoding="utf-8", header=True, on_bad_rows=on_bad_rows,
                     report=meta_report, min_fields=1)
        cols = None
        for line_no, f in rows:
            if cols is None:
                cols = {c: rows.column(c) for c in ("video_id", "author_id", "tag")}
            if len(f) <= max(cols["video_id"], cols["author_id"]):
                rows.bad(line_no, "too few fields",
                         f"expected {max(cols['video_id'], cols['author_id']) + 1}, got {len(f)}")
                continue
            vid = _parse_id(rows.bad, line_no, f[cols["video_id"]], "video_id")
            if vid is None:
                continue
            tags = [t for t in f[cols["tag"]].split(",") if t.strip()] if cols["tag"] < len(f) else []
            if vid in tag_of:
                meta_report.repair("duplicate video rows in the features (last kept)", f"video {vid}")
            tag_of[vid] = tags[0].strip() if tags else ""
            author_of[vid] = f[cols["author_id"]].strip()  # a raw string: "07" and "7" stay two
        _merge_meta_report(report, meta_report, file)
    tag_names = sorted({t for t in tag_of.values() if t})
    authors = sorted({a for a in author_of.values() if a})
    t_index = {t: i for i, t in enumerate(tag_names)}
    a_index = {a: i for i, a in enumerate(authors)}
    cluster = np.array([t_index.get(tag_of.get(int(v), ""), -1) for v in item_ids], np.int32)
    creator = np.array([a_index.get(author_of.get(int(v), ""), -1) for v in item_ids], np.int32)
    missing = int(sum(int(v) not in tag_of for v in item_ids))
    if missing:
        report.repair("items missing from the video features (no category / creator)",
                      f"{missing} items", missing)
    return ItemMeta(raw_ids=item_ids, cluster=cluster, cluster_names=tag_names, creator=creator,
                    creator_names=authors)


# ---- generic tables -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a generic table hold what. Exactly one of ``feedback`` (labels, see
    :class:`~negrec.data.feedback.FeedbackLabels`) and ``rating`` (numbers, mapped through a
    :class:`RatingMapping`) must be given."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    feedback: str | None = None
    rating: str | None = None
    dwell: str | None = None

    def __post_init__(self) -> None:
        if (self.feedback is None) == (self.rating is None):
            raise UserError("ColumnMap: give exactly one of feedback= (a label column) and "
                             f"rating= (a numeric column); got feedback={self.feedback!r}, "
                             f"rating={self.rating!r}")


@dataclass(frozen=True)
class ItemColumns:
    """Columns of an item-metadata table: item id, category (cluster), optional creator."""

    item: str = "item"
    category: str | None = "category"
    creator: str | None = None


def _read_table(path: Path, delimiter: str, encoding: str, on_bad_rows: BadRows,
                report: LoadReport, needed: Sequence[str]):
    """Yields (line_no, {column: str value}) for CSV, or (row number, ...) from a Parquet file
    (values as ``str()`` of what pyarrow gives: ints canonical, datetimes ISO, nulls empty)."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFormatError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # truncated or not Parquet at all
            raise DataFormatError(f"{path}: not a readable Parquet file ({type(exc).__name__}: "
                                  f"{exc})") from None
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise DataFormatError(f"{path}: missing column {missing[0]!r}; the file has "
                                  f"{table.column_names}")
        cols = {c: table.column(c).to_pylist() for c in needed}
        for r in range(table.num_rows):
            report.rows_read += 1
            yield r + 1, {c: ("" if cols[c][r] is None else str(cols[c][r])) for c in needed}
        return
    rows = _Rows(path, delimiter=delimiter, encoding=encoding, header=True,
                 on_bad_rows=on_bad_rows, report=report, min_fields=1, encoding_option=True)
    idx = None
    for line_no, f in rows:
        if idx is None:
            idx = {c: rows.column(c) for c in needed}
            width = max(idx.values()) + 1
        if len(f) < width:
            rows.bad(line_no, "too few fields",
                     f"expected at least {width} fields separated by {delimiter!r}, got {len(f)}")
            continue
        yield line_no, {c: f[j].strip() for c, j in idx.items()}
    if idx is None and rows.header is not None:
        for c in needed:
            rows.column(c)  # header present but no rows: still report missing columns


def _custom_time(bad: _BadRows, line_no: int, value: str,
                 parser: Callable[[str], int]) -> _Time | None:
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
    return _Time(int(whole), 0.0, False, value)


MAX_LABELS_LISTED = 10


def _label_census(path: Path, delimiter: str, encoding: str, column: str,
                  labels: FeedbackLabels) -> Counter:
    """Rows per label (as matched: stripped, lower case) that ``labels`` gives no meaning, over
    the whole column: read again only to explain an error."""
    census: Counter = Counter()
    for _, row in _read_table(path, delimiter, encoding, "skip", LoadReport(), [column]):
        if labels(row[column]) is None:
            census[FeedbackLabels.key(row[column])] += 1
    return census


def _unknown_label_error(path: Path, line_no: int, label: str, column: str, census: Counter,
                         feedback_values: Mapping[str, str] | None) -> DataFormatError:
    """One line: the label, why it has no meaning, the labels of the column without one (with
    their row counts) and the map that would give them one."""
    names = ", ".join(f.label for f in FEEDBACK_TYPES)
    if feedback_values:
        why = f"it is neither in the feedback map nor a feedback name ({names})"
    else:
        why = f"labels must be feedback names ({names}) unless mapped; numbers are never read as feedback codes"
    listed = census.most_common(MAX_LABELS_LISTED)
    seen = ", ".join(f"{k!r} ({n} row{'s' * (n != 1)})" for k, n in listed)
    if len(census) > len(listed):
        seen += f" and {len(census) - len(listed)} more labels"
    suggestion = {**(feedback_values or {}), **{k: "NAME" for k, _ in listed}}
    return DataFormatError(
        f"{path}:{line_no}: unknown feedback label: {label!r}; {why}; labels without a meaning in "
        f"column {column!r}: {seen}; map them with ", Option("feedback_values", suggestion),
        f" (NAME: one of {names}), or every label not listed with ",
        Option("feedback_values", {**(feedback_values or {}), OTHER_LABELS: "NAME"}))


def load_table(
    path: str | Path,
    *,
    columns: ColumnMap = ColumnMap(feedback="feedback"),
    feedback_values: Mapping[str, str] | None = None,
    rating_mapping: RatingMapping = RatingMapping(),
    items_path: str | Path | None = None,
    item_columns: ItemColumns = ItemColumns(),
    delimiter: str = ",",
    encoding: str = "utf-8",
    on_bad_rows: BadRows = "error",
    timestamp_parser: Callable[[str], int] | None = None,
) -> EventLog:
    """A generic CSV (with a header) or Parquet event table.

    Feedback labels are feedback names (positive, neutral, skip, dislike) or mapped by
    ``feedback_values`` (e.g. ``{"like": "positive", "hate": "dislike", "*": "neutral"}``; the
    ``"*"`` entry maps every label not listed); numbers are never read as feedback codes, and a
    label without a meaning is an error listing the column's unmapped labels. Timestamps follow
    the module's rule (integers, decimals, ISO-8601 date-times), or ``timestamp_parser`` (str ->
    int). Ids follow the module's rule (int64 only if all canonical integers). With
    ``items_path``, a metadata table (``item_columns``) gives categories and creators; events of
    items missing from it keep cluster -1 (counted in the report), metadata rows of items never
    seen are kept as items without events.
    """
    path = Path(path)
    report = LoadReport(source=f"table:{path.name}")
    needed = [columns.user, columns.item, columns.timestamp]
    needed.append(columns.feedback if columns.feedback is not None else columns.rating)
    if columns.dwell:
        needed.append(columns.dwell)
    labels = FeedbackLabels(feedback_values) if columns.feedback is not None else None
    bad = _BadRows(path, on_bad_rows, report)
    times = _TimeColumn(datetimes=True)
    events = _Events()
    ratings: list[float] = []
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, report, needed):
        user, item = row[columns.user], row[columns.item]
        if not user or not item:
            bad(line_no, "empty user or item id", f"user={user!r}, item={item!r}")
            continue
        ts_raw = row[columns.timestamp]
        time = _custom_time(bad, line_no, ts_raw, timestamp_parser) if timestamp_parser \
            else times.parse(bad, line_no, ts_raw)
        if time is None:
            continue
        feedback = None
        if labels is not None:
            feedback = labels(row[columns.feedback])
            if feedback is None:
                if on_bad_rows == "error":
                    census = _label_census(path, delimiter, encoding, columns.feedback, labels)
                    raise _unknown_label_error(path, line_no, row[columns.feedback],
                                               columns.feedback, census, feedback_values)
                bad(line_no, "unknown feedback label", f"{row[columns.feedback]!r}")
                continue
        else:
            rating = _parse_float(bad, line_no, row[columns.rating], "rating")
            if rating is None:
                continue
        dwell = None
        if columns.dwell:
            dwell = _parse_float(bad, line_no, row[columns.dwell], "dwell")
            if dwell is None:
                continue
        if labels is None:
            ratings.append(rating)
        events.add(user, item, time, None if feedback is None else int(feedback), dwell)
    report.rows_kept = len(events)
    _require_events(path, report)
    feedback_codes = strength = None
    if columns.rating is not None:
        feedback_codes = rating_mapping.map(np.asarray(ratings))
        strength = events.strength or ratings
    items_arr = _raw_ids(events.items)
    meta = None
    if items_path is not None:
        meta = _table_item_meta(Path(items_path), item_columns, items_arr, delimiter, encoding,
                                on_bad_rows, report)
    return events.to_log(report=report, source=f"table:{path.name}", users=_raw_ids(events.users),
                         items=items_arr, feedback=feedback_codes, strength=strength,
                         item_meta=meta)


def _table_item_meta(path: Path, cols: ItemColumns, event_items: np.ndarray, delimiter: str,
                     encoding: str, on_bad_rows: BadRows, report: LoadReport) -> ItemMeta:
    """The metadata table's items, then the event items it lacks (cluster -1); ids by the
    module's rule over all of them, so metadata ids join event ids exactly as spelled."""
    needed = [cols.item] + [c for c in (cols.category, cols.creator) if c]
    meta_report = LoadReport(source=str(path))
    bad = _BadRows(path, on_bad_rows, meta_report)
    ids, cats, creators = [], [], []
    seen: set[str] = set()
    for line_no, row in _read_table(path, delimiter, encoding, on_bad_rows, meta_report, needed):
        i = row[cols.item]
        if not i:
            bad(line_no, "empty item id", f"column {cols.item!r} is empty")
            continue
        if i in seen:
            report.repair("duplicate item rows in the metadata (first kept)", f"item {i!r}")
            continue
        seen.add(i)
        ids.append(i)
        cats.append(row[cols.category] if cols.category else "")
        creators.append(row[cols.creator] if cols.creator else "")
    _merge_meta_report(report, meta_report, path)
    meta_ids = _raw_ids(ids)
    # items with events but no metadata row join the catalogue without cluster / creator; an
    # int64 side compares as its canonical text, which is exactly how it was spelled
    ev = np.unique(event_items)
    as_text = meta_ids.dtype.kind != ev.dtype.kind
    meta_cmp = meta_ids.astype(str) if as_text else meta_ids
    ev_cmp = ev.astype(str) if as_text else ev
    missing = ev[~np.isin(ev_cmp, meta_cmp)]
    if len(missing):
        report.repair("items with events but no metadata row (cluster -1)",
                      f"item {missing[0]!r}", len(missing))
    unseen = int((~np.isin(meta_cmp, ev_cmp)).sum())
    if unseen:
        report.repair("metadata items without any event (kept as items)", "", unseen)
    all_ids = list(ids) + [str(m) for m in missing]
    cats += [""] * len(missing)
    creators += [""] * len(missing)
    cat_names = sorted({c for c in cats if c})
    cre_names = sorted({c for c in creators if c})
    ci = {c: k for k, c in enumerate(cat_names)}
    ri = {c: k for k, c in enumerate(cre_names)}
    return ItemMeta(raw_ids=_raw_ids(all_ids),
                    cluster=np.array([ci.get(c, -1) for c in cats], np.int32),
                    cluster_names=cat_names,
                    creator=np.array([ri.get(c, -1) for c in creators], np.int32) if cols.creator else None,
                    creator_names=cre_names if cols.creator else None)


# ---- one entry point for the CLI --------------------------------------------------------------

def load_source(source: str, path: str | Path, **kwargs) -> EventLog:
    """``source`` in movielens | kuairand | csv | parquet | npz (a saved EventLog)."""
    if source == "movielens":
        return load_movielens(path, **kwargs)
    if source == "kuairand":
        return load_kuairand(path, **kwargs)
    if source in ("csv", "parquet", "table"):
        return load_table(path, **kwargs)
    if source == "npz":
        return EventLog.load(path)
    raise UserError(f"unknown data source {source!r}; expected movielens, kuairand, csv, "
                     "parquet or npz")
