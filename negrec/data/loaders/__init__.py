"""Loaders of public feedback logs into :class:`~negrec.data.log.EventLog`.

- MovieLens: ml-100k (``u.data`` + ``u.item``), ml-1m (``ratings.dat`` + ``movies.dat``),
  ml-latest / ml-latest-small (``ratings.csv`` + ``movies.csv``).
- KuaiRand "standard" logs (``log_standard_*.csv`` + optional ``video_features_basic*.csv``).
- Generic CSV or Parquet with a column mapping (:func:`load_table`).

One module per seam, so that each can be replaced on its own: :mod:`.text` (delimited rows: line
numbers, quotes, byte-order marks; blocks of plain lines parsed by Arrow in :mod:`.text_arrow`,
the others record by record in :mod:`.text_records`), :mod:`.parse` (ids, numbers, timestamps,
ratings), :mod:`.events` (the kept events and the load report), :mod:`.errors`, and one module
per source (:mod:`.movielens`, :mod:`.kuairand`, :mod:`.table`, :mod:`.npz`), each registering
the names it reads in :mod:`.sources`. The public API is what this package exports.

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

from negrec.data.loaders.errors import DataFormatError, Option
from negrec.data.loaders.kuairand import KuaiRandMapping, load_kuairand
from negrec.data.loaders.movielens import load_movielens
from negrec.data.loaders.parse import RatingMapping, canonical_int
from negrec.data.loaders.sources import data_source, source_loader, source_names
from negrec.data.loaders.table import ColumnMap, ItemColumns, load_table

__all__ = [
    "DataFormatError", "Option", "RatingMapping", "ColumnMap", "ItemColumns", "KuaiRandMapping",
    "canonical_int", "load_movielens", "load_kuairand", "load_table", "data_source",
    "source_loader", "source_names",
]
