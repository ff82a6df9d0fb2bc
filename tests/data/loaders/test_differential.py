"""The Arrow loaders against the row-by-row oracle on generated tables with injected faults:
the same EventLog (arrays, ids, metadata) and the same report, or the same error.

Blocks and Parquet batches are made tiny here (a few lines / rows), so that every file crosses
block boundaries: bad rows, blank lines, quotes and undecodable bytes land on either side of
one, and blocks switch between Arrow and the csv module; the blocks' distinct ids are merged
every few blocks."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negrec.data.loaders import (ColumnMap, ItemColumns, RatingMapping, events, table,
                                 table_files, text)

from .differential import compare, outcome

SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


#: Text block sizes: a few lines, a few dozen lines, and the whole file in one block.
BLOCK_SIZES = [64, 300, 1 << 20]


@contextlib.contextmanager
def blocks_of(block_bytes: int):
    """Text blocks of ``block_bytes``, Parquet batches of 3 rows, the blocks' distinct ids
    merged every 2 blocks, while the ``with`` body runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text, "BLOCK_BYTES", block_bytes)
        patch.setattr(table_files, "PARQUET_BATCH_ROWS", 3)
        patch.setattr(events, "MERGE_IDS", 2)  # the blocks' distinct ids merged often
        yield block_bytes


@pytest.fixture(params=BLOCK_SIZES, ids=["block64B", "block300B", "block1MiB"])
def small_blocks(request):
    """Each block size in turn, for the tests written out by hand."""
    with blocks_of(request.param):
        yield request.param


#: The generated tests draw the block size with each example (rather than running every
#: example at every size): the same sizes are covered at a third of the examples.
block_sizes = st.sampled_from(BLOCK_SIZES)


# ---- values --------------------------------------------------------------------------------------

IDS = ["1", "2", "12", "0012", "+5", "5", "-3", "0", "-0", "1_0", " 7 ", "u1", "u2", "ü", "",
       "9223372036854775807", "9223372036854775808", "1.0", "x\x1fy", "a b"]
TIMES = ["1", "2", "3", "10", "007", "+4", "-5", "1.5", "1.25", "2.", ".5", "-1.5", "1e3",
         "1.7e9", "9007199254740993", "9223372036854775808", "inf", "nan", "", " 3 ", "abc",
         "2024-05-01", "2024-05-01T12:30:00Z", "2024-05-01 12:30:00", "2024-05-01T12:30:00.250Z",
         "2024-05-01T12:30:00.750000+02:00", "2024-05-01T12:30", "2024-02-30", "0001-01-01",
         "2024-05-01T24:00:00", "1714566600.123456789012345", "0x10", "0X1f", " 12 "]
LABELS = ["positive", "Positive ", "skip", "dislike", "neutral", "like", "hate", "meh", "1",
          "0", "", "LIKE"]
NUMBERS = ["1", "2.5", "0", "-1", "nan", "inf", "1_0", " 2 ", "", "x", "1e400", ".5", "3.", "0x10", "7"]


@st.composite
def rows(draw, *, columns: int):
    """Lines of ``columns`` fields (joined later), with row-level faults."""
    out = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["row"] * 8 + ["short", "long", "blank", "spaces",
                                                    "quoted", "open_quote", "dup"]))
        fields = [draw(st.sampled_from(IDS)), draw(st.sampled_from(IDS)),
                  draw(st.sampled_from(TIMES)), draw(st.sampled_from(LABELS)),
                  draw(st.sampled_from(NUMBERS))][:columns]
        if kind == "short":
            fields = fields[:draw(st.integers(1, columns - 1))]
        elif kind == "long":
            fields = fields + ["extra"]
        elif kind == "blank":
            fields = None
        elif kind == "spaces":
            fields = ["   "]
        elif kind == "quoted":
            j = draw(st.integers(0, columns - 1))
            fields[j] = '"' + fields[j].replace('"', '""') + ',x"'
        elif kind == "open_quote":
            j = draw(st.integers(0, columns - 1))
            fields[j] = '"' + fields[j]
        elif kind == "dup" and out:
            out.append(out[-1])
            continue
        out.append(fields)
    return out


@st.composite
def csv_table(draw):
    """(bytes of a CSV event table, load_table options)."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rating = draw(st.booleans())
    dwell = draw(st.booleans())
    header = ["user", "item", "timestamp", "rating" if rating else "feedback"] + \
        (["dwell"] if dwell else [])
    body = draw(rows(columns=len(header)))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [delimiter.join(header)] + ["" if f is None else delimiter.join(f) for f in body]
    data = eol.join(lines) + draw(st.sampled_from(["", eol, eol + eol]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252", "utf-16"]))
    raw = data.encode(encoding, "replace")
    for _ in range(draw(st.integers(0, 2))):  # byte-level faults
        op = draw(st.sampled_from(["bom", "bad_byte", "lone_cr", "nul", "truncate"]))
        i = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "bom":
            raw = b"\xef\xbb\xbf" + raw
        elif op == "bad_byte":
            raw = raw[:i] + b"\xe9" + raw[i:]
        elif op == "lone_cr":
            raw = raw[:i] + b"\r" + raw[i:]
        elif op == "nul":
            raw = raw[:i] + b"\x00" + raw[i:]
        else:
            raw = raw[:i]
    options = dict(columns=ColumnMap(rating="rating", dwell="dwell" if dwell else None) if rating
                   else ColumnMap(feedback="feedback", dwell="dwell" if dwell else None),
                   delimiter=delimiter, encoding=encoding,
                   on_bad_rows=draw(st.sampled_from(["error", "skip"])))
    if not rating and draw(st.booleans()):
        options["feedback_values"] = draw(st.sampled_from([
            {"like": "positive", "hate": "dislike"}, {"like": "positive", "*": "neutral"},
            {"1": "positive", "0": "skip", "meh": "neutral"}]))
    if rating:
        options["rating_mapping"] = RatingMapping(draw(st.sampled_from([2.0, 4.0])), 1.0)
    return raw, options


@settings(max_examples=300, **SETTINGS)
@given(table_=csv_table(), parser=st.booleans(), block=block_sizes)
def test_generated_csv_tables(tmp_path, table_, parser, block):
    with blocks_of(block):
        raw, options = table_
        path = tmp_path / "events.csv"
        path.write_bytes(raw)
        if parser:
            options["timestamp_parser"] = lambda s: int(s) * 2  # ValueError on non-integers
        compare_outcomes("load_table", path, **options)


def compare_outcomes(name, *args, **kwargs):
    """As compare(), but an error is an outcome too (not re-raised)."""
    try:
        compare(name, *args, **kwargs)
    except AssertionError:
        raise
    except Exception:
        pass


@st.composite
def metadata(draw):
    lines = ["item,category,creator"]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row"] * 5 + ["short", "empty", "blank"]))
        item = draw(st.sampled_from(IDS))
        cat = draw(st.sampled_from(["news", "sport", "", " news "]))
        if kind == "short":
            lines.append(item)
        elif kind == "empty":
            lines.append(f",{cat},al")
        elif kind == "blank":
            lines.append("")
        else:
            lines.append(f"{item},{cat},{draw(st.sampled_from(['al', 'bo', '']))}")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, **SETTINGS)
@given(table_=csv_table(), meta=metadata(), creator=st.booleans(), block=block_sizes)
def test_generated_tables_with_item_metadata(tmp_path, table_, meta, creator, block):
    with blocks_of(block):
        raw, options = table_
        path = tmp_path / "events.csv"
        path.write_bytes(raw)
        (tmp_path / "items.csv").write_text(meta.replace(",", options["delimiter"]),
                                            encoding=options["encoding"], errors="replace")
        compare_outcomes("load_table", path, items_path=tmp_path / "items.csv",
                         item_columns=ItemColumns(creator="creator" if creator else None),
                         **options)


# ---- Parquet ---------------------------------------------------------------------------------------

@st.composite
def parquet_table(draw):
    n = draw(st.integers(0, 12))
    kind_user = draw(st.sampled_from(["int", "str", "uint", "float", "bool"]))
    kind_time = draw(st.sampled_from(["int", "float", "str", "ts_s", "ts_ms_utc", "ts_us_paris",
                                      "date", "null_int"]))
    users = draw(st.lists(st.integers(-3, 9), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    if kind_user == "int":
        user = pa.array(users, pa.int64())
    elif kind_user == "uint":
        user = pa.array([abs(u) + 2**63 * (u == 9) for u in users], pa.uint64())
    elif kind_user == "float":
        user = pa.array([u / 2 for u in users], pa.float64())
    elif kind_user == "bool":
        user = pa.array([u % 2 == 0 for u in users])
    else:
        user = pa.array([draw(st.sampled_from(IDS + [None])) for _ in users], pa.string())
    base = dt.datetime(2024, 5, 1, 12, 30)
    if kind_time == "int":
        time = pa.array(times, pa.int64())
    elif kind_time == "null_int":
        time = pa.array([t if t else None for t in times], pa.int64())
    elif kind_time == "float":
        time = pa.array([draw(st.sampled_from([1.0, 1.5, 2.25, 1e16, float("nan"), -0.0, 3.0]))
                         for _ in times], pa.float64())
    elif kind_time == "str":
        time = pa.array([draw(st.sampled_from(TIMES + [None])) for _ in times], pa.string())
    elif kind_time == "date":
        time = pa.array([base.date() + dt.timedelta(days=t) for t in times], pa.date32())
    else:
        unit, tz = {"ts_s": ("s", None), "ts_ms_utc": ("ms", "UTC"),
                    "ts_us_paris": ("us", "Europe/Paris")}[kind_time]
        time = pa.array([base + dt.timedelta(milliseconds=250 * t) for t in times],
                        pa.timestamp(unit, tz=tz))
    label = pa.array([draw(st.sampled_from(LABELS + [None])) for _ in range(n)], pa.string())
    item = pa.array([draw(st.sampled_from([1, 2, 3, None])) for _ in range(n)], pa.int32())
    dwell = pa.array([draw(st.sampled_from([1.5, float("nan"), float("inf"), None, 0.0]))
                      for _ in range(n)], pa.float32())
    return pa.table({"user": user, "item": item, "timestamp": time, "feedback": label,
                     "dwell": dwell})


@settings(max_examples=200, **SETTINGS)
@given(t=parquet_table(), skip=st.booleans(), dwell=st.booleans(), block=block_sizes)
def test_generated_parquet_tables(tmp_path, t, skip, dwell, block):
    with blocks_of(block):
        path = tmp_path / "events.parquet"
        pq.write_table(t, path, row_group_size=4)
        compare_outcomes("load_table", path, on_bad_rows="skip" if skip else "error",
                         columns=ColumnMap(feedback="feedback", dwell="dwell" if dwell else None),
                         feedback_values={"like": "positive", "*": "neutral"})


# ---- MovieLens and KuaiRand -------------------------------------------------------------------------

@st.composite
def movielens_folder(draw):
    layout = draw(st.sampled_from(["ml-100k", "ml-1m", "ml-latest"]))
    sep = {"ml-100k": "\t", "ml-1m": "::", "ml-latest": ","}[layout]
    lines = []
    for fields in draw(rows(columns=4)):
        if fields is None:
            lines.append("")
            continue
        fields = list(fields)
        if len(fields) >= 3:  # ratings, mostly valid ids and numbers
            fields[0] = draw(st.sampled_from(["1", "2", "3", "01", "x", " 4"] + IDS[:3]))
            fields[1] = draw(st.sampled_from(["1", "2", "3", "9", "1.0"]))
            fields[2] = draw(st.sampled_from(["5", "1", "3.5", "nan", "x", " 4 "]))
        lines.append(sep.join(fields))
    header = sep.join(["userId", "movieId", "rating", "timestamp"]) + "\n" if layout == "ml-latest" else ""
    ratings = header + "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    movies = [(i, draw(st.sampled_from(["Heat", "Café", "A, B", "Ran"])),
               draw(st.sampled_from(["Drama", "Action|Drama", "(no genres listed)", ""])))
              for i in draw(st.lists(st.sampled_from(["1", "2", "3", "4", "03", "x"]),
                                     max_size=6))]
    return layout, ratings, movies


def write_movielens(root, layout, ratings, movies):
    root.mkdir()
    if layout == "ml-100k":
        genres = ["unknown", "Action", "Drama"]
        lines = [f"{i}|{t}|01-Jan-1995||u|" + "|".join(
            "1" if any(g == x for x in gs.split("|")) else ("2" if t == "Ran" else "0")
            for g in genres + [""] * 16) for i, t, gs in movies]
        (root / "u.item").write_bytes("\n".join(lines).encode("latin-1"))
        (root / "u.data").write_bytes(ratings.encode("latin-1"))
    elif layout == "ml-1m":
        (root / "movies.dat").write_bytes("\n".join(f"{i}::{t}::{g}" for i, t, g in movies)
                                          .encode("latin-1"))
        (root / "ratings.dat").write_bytes(ratings.encode("latin-1"))
    else:
        (root / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(
            f'{i},"{t}",{g}' if "," in t else f"{i},{t},{g}" for i, t, g in movies))
        (root / "ratings.csv").write_text(ratings)


@settings(max_examples=200, **SETTINGS)
@given(folder=movielens_folder(), skip=st.booleans(), rule=st.sampled_from(["rarest", "first"]),
       block=block_sizes)
def test_generated_movielens_folders(tmp_path, folder, skip, rule, block):
    with blocks_of(block):
        root = Path(tempfile.mkdtemp(dir=tmp_path)) / "ml"
        write_movielens(root, *folder)
        compare_outcomes("load_movielens", root, on_bad_rows="skip" if skip else "error",
                         genre_rule=rule)


@st.composite
def kuairand_folder(draw):
    header = "user_id,video_id,time_ms,is_like,is_hate,long_view,play_time_ms,duration_ms,tab"
    lines = [header]
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["row"] * 6 + ["short", "blank", "bad"]))
        values = [draw(st.sampled_from(["1", "2", "3"])), draw(st.sampled_from(["100", "101", "102", "103"])),
                  draw(st.sampled_from(["5", "3", "5.9", "5.1", "x", ""])),
                  draw(st.sampled_from(["0", "1"])), draw(st.sampled_from(["0", "1"])),
                  draw(st.sampled_from(["0", "1"])), draw(st.sampled_from(["10", "500", "9000"])),
                  draw(st.sampled_from(["100", "10000", "60000"])), "1"]
        if kind == "short":
            values = values[:3]
        elif kind == "bad":
            values[draw(st.integers(0, 7))] = draw(st.sampled_from(["nan", "01", "x", ""]))
        lines.append("" if kind == "blank" else ",".join(values))
    features = ["video_id,author_id,tag"] + [
        f"{draw(st.sampled_from(['100', '101', '102', '0100', 'x']))},"
        f"{draw(st.sampled_from(['7', '07', ' 8', '']))}"
        + draw(st.sampled_from(['', ',5', ',"5,8"', ',', ',"  ,9"']))
        for _ in range(draw(st.integers(0, 6)))]
    return "\n".join(lines) + "\n", "\n".join(features) + "\n", draw(st.booleans())


@settings(max_examples=150, **SETTINGS)
@given(folder=kuairand_folder(), skip=st.booleans(), block=block_sizes)
def test_generated_kuairand_folders(tmp_path, folder, skip, block):
    with blocks_of(block):
        log, features, with_features = folder
        root = Path(tempfile.mkdtemp(dir=tmp_path)) / "kr"
        root.mkdir()
        (root / "log_standard_a.csv").write_text(log)
        (root / "log_standard_b.csv").write_text(log.replace("\n1,", "\n4,"))
        if with_features:
            (root / "video_features_basic_a.csv").write_text(features)
        compare_outcomes("load_kuairand", root, on_bad_rows="skip" if skip else "error")


# ---- decoding across Python's 8 KiB chunks ------------------------------------------------------------

@pytest.mark.parametrize("bad_line", [2, 300, 700])
@pytest.mark.parametrize("byte_line", [100, 409, 410, 411, 900])
@pytest.mark.parametrize("on_bad_rows", ["error", "skip"])
def test_undecodable_bytes_after_a_bad_row(tmp_path, small_blocks, bad_line, byte_line, on_bad_rows):
    """An undecodable byte and a bad row: which is reported depends on where Python's text
    reader (8 KiB chunks) failed, line 410 or so being at the first chunk boundary."""
    lines = ["user,item,timestamp,feedback"] + [f"u{k:04d},i{k % 7},{k},positive"
                                               for k in range(1, 1000)]
    lines[bad_line] = lines[bad_line].replace("positive", "loved")
    raw = "\n".join(lines).encode() + b"\n"
    at = raw.index(lines[byte_line].encode()) + 2
    raw = raw[:at] + b"\xff" + raw[at:]
    path = tmp_path / "e.csv"
    path.write_bytes(raw)
    kind, _ = outcome(table.load_table, path, on_bad_rows=on_bad_rows)
    assert kind == "error"
    compare_outcomes("load_table", path, on_bad_rows=on_bad_rows)


@pytest.mark.parametrize("column", ["user", "item"])
def test_an_id_with_trailing_nul_characters_is_a_text(tmp_path, small_blocks, column):
    """``"1\\x00"`` is no canonical integer: the ids are texts (numpy strings, which drop
    trailing NULs), not int64, even when every id without its NULs is an integer (found by
    test_generated_csv_tables: the kept item ids "1\\x00" and "1")."""
    rows = [("7", "1\x00", 1), ("7", "2", 2), ("8", "1", 3)]
    if column == "user":
        rows = [(item, user, t) for user, item, t in rows]
    path = tmp_path / "e.csv"
    path.write_bytes(("user,item,timestamp,feedback\n" + "".join(
        f"{u},{i},{t},positive\n" for u, i, t in rows)).encode())
    compare_outcomes("load_table", path)
    log = table.load_table(path)
    ids = log.user_ids if column == "user" else log.item_meta.raw_ids
    assert ids.dtype.kind == "U" and ids.tolist() == ["1", "2"]


def test_the_oracle_is_not_the_package():
    """The differential tests compare two implementations, not one with itself."""
    from negrec.data.loaders import load_table

    from . import oracle

    assert oracle.load_table is not load_table
    assert oracle.table.Rows.__module__.endswith("oracle.text")
