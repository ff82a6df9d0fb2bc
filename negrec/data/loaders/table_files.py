"""Reading an event table's files in blocks: one file, or a folder or glob pattern of files
read with ``pyarrow.dataset`` (Hive partition folders such as ``day=2024-05-01/`` give columns
of that name); CSV through :mod:`.text`, Parquet in record batches. Each block carries its file,
so that every bad row is reported against its own file and line (or row). Used by
:func:`negrec.data.loaders.table.load_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from negrec.data.loaders.columns import Column, Failures, TypedColumn, _plain, strip_texts
from negrec.data.loaders.errors import BadRowPolicy, BadRows, DataFormatError
from negrec.data.loaders.memory import release_free_memory
from negrec.data.loaders.rows import BadRow
from negrec.data.loaders.text import TextFile
from negrec.data.log import LoadReport

#: Rows per record batch read from a Parquet file: a batch's Arrow buffers are about 50 bytes
#: per row (ids as text), so that reading holds ~15 MB beside the events kept so far.
PARQUET_BATCH_ROWS = 1 << 18

@dataclass
class TableBlock:
    """Rows of one block of one file of a table, with the fields read by column name. A CSV
    value is read without its surrounding spaces (``strip``); a Parquet value is ``str()`` of
    what pyarrow gives. ``too_few``: the rows lacking a needed field (CSV)."""

    policy: BadRowPolicy
    n: int
    columns: dict[str, Column]
    lines: Callable[[np.ndarray], np.ndarray]
    rows_read: int
    strip: bool  # CSV: every value is read without its surrounding spaces
    too_few: Failures | None = None  # rows lacking a needed field (CSV)
    reader_bad: list[BadRow] = field(default_factory=list)
    error_after: Exception | None = None

    def ids(self, name: str) -> Column:
        """A column of ids or labels as distinct texts (stripped for CSV)."""
        col = self.columns[name]
        if isinstance(col, TypedColumn):
            return col.as_text()
        return strip_texts(col) if self.strip else col


def _is_pattern(path: Path) -> bool:
    return any(c in str(path) for c in "*?[")


def _table_files(path: Path) -> list[tuple[Path, dict[str, str]]]:
    """The files of a table and the Hive partition columns of each (``key=value`` folders)."""
    if not _is_pattern(path) and not path.is_dir():
        return [(path, {})]
    import pyarrow.dataset as ds

    if _is_pattern(path):
        root = next(p for p in path.parents if not _is_pattern(p))
        files = sorted(root.glob(str(path.relative_to(root))))
        if not files:
            raise FileNotFoundError(f"{path}: no files match")
        base = root
    else:
        files, base = None, path
    fmt = _format_of(files[0] if files else path)
    dataset = ds.dataset([str(f) for f in files] if files else str(path), format=fmt,
                         partitioning=ds.HivePartitioning.discover(infer_dictionary=True),
                         partition_base_dir=str(base) if files else None,
                         exclude_invalid_files=False)
    out = []
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        keys = ds.get_partition_keys(fragment.partition_expression)
        out.append((Path(fragment.path), {k: "" if v is None else str(v) for k, v in keys.items()}))
    if not out:
        raise FileNotFoundError(f"{path}: no files found")
    return out


def _format_of(path: Path) -> str:
    """``parquet`` for a .parquet file (or a folder holding one), else ``csv``."""
    if path.is_dir():
        return "parquet" if next(path.rglob("*.parquet"), None) is not None else "csv"
    return "parquet" if path.suffix == ".parquet" else "csv"


def _read_table(path: Path, delimiter: str, encoding: str, on_bad_rows: BadRows,
                report: LoadReport, needed: Sequence[str], kinds: Mapping[str, str]
                ) -> Iterator[TableBlock]:
    """The blocks of every file of the table ``path``, with the columns ``needed``
    (``kinds[name]``: "dict" for ids and labels, "str" for other texts)."""
    for file, partitions in _table_files(path):
        fmt = _format_of(file)
        from_file = [c for c in needed if c not in partitions]
        blocks = (_parquet_blocks(file, from_file, kinds, on_bad_rows, report) if fmt == "parquet"
                  else _csv_blocks(file, from_file, kinds, delimiter, encoding, on_bad_rows, report))
        for block in blocks:
            for name, value in partitions.items():
                block.columns[name] = Column(pa.array([value]), np.zeros(block.n, np.int32))
            yield block


def _csv_blocks(path: Path, needed: Sequence[str], kinds: Mapping[str, str], delimiter: str,
                encoding: str, on_bad_rows: BadRows, report: LoadReport) -> Iterator[TableBlock]:
    text = TextFile(path, delimiter=delimiter, encoding=encoding, header=True,
                    on_bad_rows=on_bad_rows, report=report, min_fields=1, encoding_option=True)
    text.start()
    try:
        idx = {c: text.column(c) for c in needed}
    except DataFormatError:
        # as the row-by-row reader: its first row (or the end, given a header) found it out
        if text.report_until_good_row() or text.header is not None:
            raise
        return
    width = max(idx.values()) + 1 if idx else 0
    for block in text.blocks({j: kinds[c] for c, j in idx.items()}):
        nfields = block.nfields
        too_few = Failures.where(nfields < width, "too few fields", lambda r, nf=nfields: (
            f"expected at least {width} fields separated by {delimiter!r}, got {nf[r]}"))
        yield TableBlock(policy=text.bad, n=block.n,
                         columns={c: block.columns[j] for c, j in idx.items()},
                         lines=block.lines, rows_read=block.rows_read, strip=True,
                         too_few=too_few, reader_bad=block.reader_bad,
                         error_after=block.error_after)


def _unreadable_parquet(path: Path, exc: Exception) -> DataFormatError:
    """The error for a file pyarrow cannot read, as reading the whole file reports it."""
    try:
        pq.read_table(path)
    except Exception as whole:  # truncated or not Parquet at all
        exc = whole
    return DataFormatError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})")


def _parquet_blocks(path: Path, needed: Sequence[str], kinds: Mapping[str, str],
                    on_bad_rows: BadRows, report: LoadReport) -> Iterator[TableBlock]:
    """Record batches of a Parquet file; values read as ``str()`` of what pyarrow gives (ints
    canonical, datetimes ISO, nulls empty), typed columns without going through text."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        # pre_buffer would read every column chunk of the file ahead (its whole size resident)
        schema = pq.ParquetFile(path, pre_buffer=False).schema_arrow
    except Exception as exc:
        raise _unreadable_parquet(path, exc) from None
    names = schema.names
    missing = [c for c in needed if c not in names]
    if missing:
        raise DataFormatError(f"{path}: missing column {missing[0]!r}; the file has {names}")
    # ids and labels read as the file stores them (distinct texts and a code per row), not as
    # a string per row that would then be encoded again
    as_dictionary = [c for c in dict.fromkeys(needed)
                     if kinds[c] == "dict" and _is_text(schema.field(c).type)]
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False, read_dictionary=as_dictionary)
    except Exception as exc:
        raise _unreadable_parquet(path, exc) from None
    policy = BadRowPolicy(path, on_bad_rows, report)
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(dict.fromkeys(needed)))
    first = 1
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:
            raise _unreadable_parquet(path, exc) from None
        n = batch.num_rows
        cols = {c: _parquet_column(batch.column(c), kinds[c]) for c in needed}
        yield TableBlock(policy=policy, n=n, columns=cols, rows_read=n, strip=False,
                         lines=lambda rows, first=first: first + np.asarray(rows, np.int64))
        first += n
        del batch, cols
        release_free_memory()  # what reading the batch left free (see .memory)


def _is_text(typ: pa.DataType) -> bool:
    """A string type, or a dictionary of strings."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) \
        or pa.types.is_string_view(typ)


def _parquet_column(array: pa.Array, kind: str) -> Column:
    if pa.types.is_dictionary(array.type):
        if kind == "dict" and _is_text(array.type):
            return _dictionary_column(array)
        array = array.dictionary_decode()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) \
            or pa.types.is_string_view(array.type):
        array = array.fill_null("")
        return Column.of(array.dictionary_encode() if kind == "dict" else array)
    if kind == "dict":  # ids and labels are texts: str() of each value
        return TypedColumn(array).as_text()
    return TypedColumn(array)


def _dictionary_column(array: pa.DictionaryArray) -> Column:
    """A dictionary array of strings as texts and a code per row (a null: the text ``""``).
    A Parquet reader hands every batch its row group's whole dictionary: one larger than the
    batch is cut to the texts the batch uses, so that the work per batch stays within its rows.
    (A text that a dictionary held twice would be read twice, with the same outcome: the readers
    and checks give each row the outcome of its text.)"""
    texts, indices = array.dictionary, array.indices
    if len(texts) > len(indices):
        used = indices.dictionary_encode()  # (nulls stay null)
        texts, indices = texts.take(used.dictionary), used.indices
    texts = _plain(texts)
    if texts.null_count:
        texts = texts.fill_null("")
    if indices.null_count:
        empty = pc.index(texts, "").as_py()
        if empty < 0:
            texts, empty = pa.concat_arrays([texts, pa.array([""], pa.string())]), len(texts)
        indices = indices.fill_null(empty)
    return Column(texts, indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False))
