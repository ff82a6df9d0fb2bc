"""Loaders under bad input files: truncated files, wrong encodings, wrong delimiters, duplicated
and out-of-order events, items unknown to the metadata, non-finite values, corrupt saved logs.

Every case must end in a clear error (DataFormatError / ValueError naming the file and, where
there is one, the line) or in a log whose LoadReport accounts for every row: rows read = rows
kept + rows dropped (by reason), repairs and notes counted. Nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negrec.data import (ColumnMap, DataFormatError, EventLog, Feedback, ItemColumns,
                         load_kuairand, load_movielens, load_table)

GENRES = 19


def ml100k(root, data_lines, item_lines=None, items=5):
    root.mkdir(parents=True, exist_ok=True)
    if item_lines is None:
        item_lines = [f"{i}|Film {i} (1995)|01-Jan-1995||http://x|" + "|".join(
            "1" if g == i % GENRES else "0" for g in range(GENRES)) + "\n" for i in range(1, items + 1)]
    (root / "u.item").write_bytes("".join(item_lines).encode("latin-1"))
    data = b"".join(x if isinstance(x, bytes) else x.encode("latin-1") for x in data_lines)
    (root / "u.data").write_bytes(data)
    return root


def ml_latest(root, ratings: bytes | str, movies: bytes | str | None = None):
    root.mkdir(parents=True, exist_ok=True)
    if movies is None:
        movies = "movieId,title,genres\n" + "".join(f"{i},Film {i},Drama\n" for i in range(1, 6))
    (root / "ratings.csv").write_bytes(ratings.encode() if isinstance(ratings, str) else ratings)
    (root / "movies.csv").write_bytes(movies.encode() if isinstance(movies, str) else movies)
    return root


def accounted(report) -> bool:
    return report.rows_read == report.rows_kept + sum(
        n for reason, n in report.dropped.items() if ": " not in reason)  # ": " = metadata file


GOOD = ["1\t1\t5\t100\n", "1\t2\t1\t101\n", "2\t3\t3\t50\n", "2\t1\t4\t60\n"]


# ---- truncated files ------------------------------------------------------------------------

def test_truncated_row_names_the_line(tmp_path):
    root = ml100k(tmp_path / "a", GOOD + ["3\t4\t5"])  # cut before the timestamp
    with pytest.raises(DataFormatError, match=r"u\.data:5: too few fields"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.num_events == 4 and log.report.dropped == {"too few fields": 1}
    assert accounted(log.report)


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_empty_event_file_is_an_error(tmp_path, content):
    root = ml100k(tmp_path / "a", [content])
    with pytest.raises(DataFormatError, match=r"u\.data: no events read \(0 rows read\)"):
        load_movielens(root)


def test_header_only_csv_is_an_error(tmp_path):
    root = ml_latest(tmp_path / "a", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv: no events read"):
        load_movielens(root)
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n")
    with pytest.raises(DataFormatError, match=r"e\.csv: no events read"):
        load_table(ev)


def test_all_rows_bad_in_skip_mode_is_an_error_with_counts(tmp_path):
    root = ml100k(tmp_path / "a", ["x\t1\t5\t1\n", "1\ty\t5\t1\n"])
    with pytest.raises(DataFormatError, match=r"no events read \(2 rows read; dropped: "
                                              r"\{'unparsable user id': 1, 'unparsable item id': 1\}"):
        load_movielens(root, on_bad_rows="skip")


def test_truncated_quoted_field(tmp_path):
    movies = 'movieId,title,genres\n1,"Heat (1995)",Action\n2,"Cut off in the mid'
    root = ml_latest(tmp_path / "a", "userId,movieId,rating,timestamp\n1,1,4,1\n", movies)
    with pytest.raises(DataFormatError, match=r"movies\.csv:3: too few fields"):
        load_movielens(root)


def test_nul_bytes_of_a_crash_truncated_file(tmp_path):
    data = "".join(GOOD).encode() + b"\x00" * 64
    root = ml100k(tmp_path / "a", [data])
    with pytest.raises(DataFormatError, match=r"u\.data:5: (too few fields|unreadable row)"):
        load_movielens(root)


def test_truncated_multibyte_character(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_bytes("user,item,timestamp,feedback\nü,a,1,positive\n".encode() + "é".encode()[:1])
    with pytest.raises(DataFormatError, match=r"e\.csv:3: cannot decode as utf-8"):
        load_table(ev)


def test_truncated_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (optional Parquet support)")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": [1, 2], "item": [1, 2], "timestamp": [1, 2],
                             "feedback": ["positive", "dislike"]}), tmp_path / "e.parquet")
    raw = (tmp_path / "e.parquet").read_bytes()
    for cut in (0, 4, len(raw) // 2, len(raw) - 1):
        (tmp_path / "t.parquet").write_bytes(raw[:cut])
        with pytest.raises(DataFormatError, match=r"t\.parquet: not a readable Parquet file"):
            load_table(tmp_path / "t.parquet")


def test_truncated_saved_event_log(tmp_path):
    log = load_movielens(ml100k(tmp_path / "a", GOOD))
    path = log.save(tmp_path / "log.npz")
    raw = path.read_bytes()
    for cut in (0, 10, len(raw) // 3, len(raw) - 20):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=r"not a readable negrec event log .*truncated or corrupt"):
            EventLog.load(bad)


# ---- encodings --------------------------------------------------------------------------------

def test_utf16_file_is_a_decode_error_on_line_1(tmp_path):
    root = ml_latest(tmp_path / "a", "userId,movieId,rating,timestamp\n1,1,4,1\n".encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"ratings\.csv:1: cannot decode as utf-8"):
        load_movielens(root)


def test_decode_error_deep_in_a_large_file_names_its_line(tmp_path):
    lines = ["user,item,timestamp,feedback\n"] + [f"{u},{u % 7},{u},positive\n" for u in range(5000)]
    raw = "".join(lines).encode()
    raw += "5001,x\xe9,5001,positive\n".encode("latin-1")  # line 5002
    ev = tmp_path / "e.csv"
    ev.write_bytes(raw)
    with pytest.raises(DataFormatError, match=r"e\.csv:5002: cannot decode as utf-8"):
        load_table(ev)


def test_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_bytes(b"\xef\xbb\xbf" + b"user,item,timestamp,feedback\n1,1,1,positive\n1,2,2,skip\n")
    log = load_table(ev)
    assert log.num_events == 2


# ---- delimiters -------------------------------------------------------------------------------

def test_wrong_delimiter_movielens(tmp_path):
    root = ml100k(tmp_path / "a", [line.replace("\t", ",") for line in GOOD])
    with pytest.raises(DataFormatError, match=r"u\.data:1: too few fields: expected at least 4 "
                                              r"fields separated by '\\t', got 1"):
        load_movielens(root)
    root = tmp_path / "ml1m"
    root.mkdir()
    (root / "movies.dat").write_text("1::Film::Drama\n")
    (root / "ratings.dat").write_text("1:1:5:100\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat:1: too few fields"):
        load_movielens(root)


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_wrong_delimiter_table_has_a_hint(tmp_path, sep):
    ev = tmp_path / "e.csv"
    ev.write_text(sep.join(["user", "item", "timestamp", "feedback"]) + "\n" +
                  sep.join(["1", "1", "1", "positive"]) + "\n")
    with pytest.raises(DataFormatError, match=r"missing column 'user'.*wrong delimiter\? the header "
                                              + re.escape(f"looks {sep!r}-separated")):
        load_table(ev)
    assert load_table(ev, delimiter=sep).num_events == 1


# ---- duplicated and out-of-order events ------------------------------------------------------

def test_duplicate_and_out_of_order_events_are_kept_and_noted(tmp_path):
    lines = ["1\t1\t5\t100\n", "1\t1\t5\t100\n", "1\t2\t1\t90\n", "1\t1\t5\t100\n",
             "2\t3\t3\t50\n", "2\t1\t4\t40\n", "2\t3\t3\t50\n"]
    log = load_movielens(ml100k(tmp_path / "a", lines))
    assert log.num_events == 7  # nothing dropped
    notes = log.report.notes
    assert notes["duplicate events (same user, item, time and feedback; all kept)"] == 3
    assert notes["events out of time order in the source (sorted by time, ties in source order)"] == 2
    assert np.all(np.diff(log.timestamps[log.user_slice(0)]) >= 0)
    assert "noted 3: duplicate events" in log.report.summary()
    assert log.stats()["load_report"]["notes"] == notes


def test_same_time_different_events_are_not_duplicates(tmp_path):
    log = load_movielens(ml100k(tmp_path / "a", ["1\t1\t5\t100\n", "1\t2\t5\t100\n",
                                                 "1\t1\t1\t100\n"]))
    assert log.report.notes == {}


def test_duplicates_in_a_generic_table(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\nu,a,5,positive\nu,a,5,positive\nu,b,1,skip\n"
                  "v,a,1,dislike\n")
    rep = load_table(ev).report
    assert rep.notes == {"duplicate events (same user, item, time and feedback; all kept)": 1,
                         "events out of time order in the source (sorted by time, ties in source order)": 1}


def test_duplicate_metadata_rows(tmp_path):
    items = [f"{i}|Film {i}|01-Jan-1995||u|" + "|".join(["0"] * GENRES) + "\n" for i in (1, 2, 2, 3)]
    log = load_movielens(ml100k(tmp_path / "a", GOOD, item_lines=items))
    assert log.num_items == 3
    assert log.report.repaired == {"u.item: duplicate item rows in the metadata (first kept)": 1}
    root = ml_latest(tmp_path / "b", "userId,movieId,rating,timestamp\n1,1,4,1\n",
                     "movieId,title,genres\n1,A,Drama\n1,A again,Comedy\n2,B,Drama\n")
    log = load_movielens(root)
    assert log.num_items == 2 and log.item_meta.titles[0] == "A"
    assert log.report.repaired == {"movies.csv: duplicate item rows in the metadata (first kept)": 1}


# ---- unknown users / items in metadata -------------------------------------------------------

def test_events_of_items_missing_from_movielens_metadata(tmp_path):
    root = ml100k(tmp_path / "a", GOOD + ["3\t99\t4\t1\n", "3\t98\t4\t2\n"])
    with pytest.raises(DataFormatError, match=r"u\.data:5: item missing from the movie metadata: item 99"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.report.dropped == {"item missing from the movie metadata": 2}
    assert accounted(log.report) and log.num_events == 4


def test_generic_metadata_unknown_and_unseen_items(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n1,a,1,positive\n1,zz,2,positive\n2,yy,1,skip\n")
    meta = tmp_path / "m.csv"
    meta.write_text("item,category\na,news\nb,sport\nc,news\n,orphan\n")
    with pytest.raises(DataFormatError, match=r"m\.csv:5: empty item id"):
        load_table(ev, items_path=meta)
    log = load_table(ev, items_path=meta, on_bad_rows="skip")
    rep = log.report
    assert rep.repaired["items with events but no metadata row (cluster -1)"] == 2
    assert rep.repaired["metadata items without any event (kept as items)"] == 2
    assert rep.dropped == {"m.csv: empty item id": 1}  # a metadata row dropped is counted too
    assert log.num_items == 5 and log.num_events == 3


def test_metadata_bad_rows_are_counted_not_silent(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n1,a,1,positive\n")
    meta = tmp_path / "m.csv"
    meta.write_text("item,category,creator\na,news,al\nb\n")
    log = load_table(ev, items_path=meta, item_columns=ItemColumns(creator="creator"),
                     on_bad_rows="skip")
    assert log.report.dropped == {"m.csv: too few fields": 1}


def _kuairand(root, features: str):
    root.mkdir()
    (root / "log_standard_x.csv").write_text(
        "user_id,video_id,time_ms,is_like,is_hate,long_view,play_time_ms,duration_ms\n"
        "1,100,5,1,0,0,10,100\n1,101,3,0,0,0,10,100\n1,101,3,0,0,0,10,100\n")
    (root / "video_features_basic_x.csv").write_text(features)
    return root


def test_kuairand_feature_faults(tmp_path):
    root = _kuairand(tmp_path / "a", "video_id,author_id,tag\n100,7,5\n100,8,6\n555\n")
    with pytest.raises(DataFormatError, match=r"video_features_basic_x\.csv:4: too few fields"):
        load_kuairand(root)
    log = load_kuairand(root, on_bad_rows="skip")
    rep = log.report
    assert rep.dropped == {"video_features_basic_x.csv: too few fields": 1}
    assert rep.repaired == {
        "video_features_basic_x.csv: duplicate video rows in the features (last kept)": 1,
        "items missing from the video features (no category / creator)": 1}
    assert rep.notes == {"duplicate events (same user, item, time and feedback; all kept)": 1,
                         "events out of time order in the source (sorted by time, ties in source order)": 1}


# ---- non-finite and out-of-range values ---------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_rating(tmp_path, value):
    root = ml100k(tmp_path / value, GOOD + [f"3\t1\t{value}\t7\n"])
    with pytest.raises(DataFormatError, match=r"u\.data:5: non-finite rating"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.report.dropped == {"non-finite rating": 1} and log.num_events == 4
    ev = tmp_path / f"{value}.csv"
    ev.write_text(f"user,item,timestamp,rating\n1,1,1,4\n1,2,2,{value}\n")
    with pytest.raises(DataFormatError, match=r":3: non-finite rating"):  # as MovieLens says
        load_table(ev, columns=ColumnMap(rating="rating"))


@pytest.mark.parametrize("ts", ["inf", "1e30", "nan", "9223372036854775808"])
def test_timestamp_out_of_range(tmp_path, ts):
    ev = tmp_path / "e.csv"
    ev.write_text(f"user,item,timestamp,feedback\n1,1,1,positive\n1,2,{ts},positive\n")
    with pytest.raises(DataFormatError, match=r"e\.csv:3: unparsable timestamp"):
        load_table(ev)
    root = ml100k(tmp_path / "ml", GOOD + [f"3\t1\t4\t{ts}\n"])
    with pytest.raises(DataFormatError, match=r"u\.data:5: (unparsable timestamp|timestamp out of)"):
        load_movielens(root)


def test_id_beyond_int64(tmp_path):
    root = ml100k(tmp_path / "a", GOOD + ["99999999999999999999\t1\t4\t1\n"])
    with pytest.raises(DataFormatError, match=r"u\.data:5: user id out of the int64 range"):
        load_movielens(root)


# ---- exact timestamps (issue 16, W5) --------------------------------------------------------------

ROUNDED = "timestamps with a fraction, floored to whole units (events within one unit keep the order of their exact times)"
OUT_OF_ORDER = "events out of time order in the source (sorted by time, ties in source order)"


def test_fractional_timestamps_keep_their_exact_order(tmp_path):
    """Fractions are floored to whole units, counted, and order events inside one unit."""
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\nu,a,1.7,positive\nu,b,1.2,skip\nu,c,1.5,dislike\n"
                  "u,d,0.9,positive\nv,a,2,positive\n")
    log = load_table(ev)
    assert log.item_meta.raw_ids[log.items[log.user_slice(0)]].tolist() == ["d", "b", "c", "a"]
    assert log.timestamps[log.user_slice(0)].tolist() == [0, 1, 1, 1]
    assert log.report.notes[ROUNDED] == 4
    assert log.report.notes[OUT_OF_ORDER] == 2  # b after a (1.2 < 1.7), d after c
    assert "'1.7' -> 1" in log.report.summary()
    # MovieLens and KuaiRand timestamps follow the same rule
    root = ml100k(tmp_path / "ml", ["1\t1\t5\t100.5\n", "1\t2\t1\t100.25\n", "1\t3\t4\t99.75\n"])
    log = load_movielens(root)
    assert log.item_meta.raw_ids[log.items].tolist() == [3, 2, 1]
    assert log.timestamps.tolist() == [99, 100, 100] and log.report.notes[ROUNDED] == 3
    kr = tmp_path / "kr"
    kr.mkdir()
    (kr / "log_standard_x.csv").write_text(
        "user_id,video_id,time_ms,is_like,is_hate,long_view,play_time_ms,duration_ms\n"
        "1,100,5.9,1,0,0,10,100\n1,101,5.1,0,0,0,10,100\n")
    log = load_kuairand(kr)
    assert log.item_meta.raw_ids[log.items].tolist() == [101, 100]
    assert log.report.notes[ROUNDED] == 2


def test_integer_timestamps_beyond_2_53_are_exact(tmp_path):
    big = 2**53  # float64 cannot tell big from big + 1
    ev = tmp_path / "e.csv"
    ev.write_text(f"user,item,timestamp,feedback\nu,a,{big + 1},positive\nu,b,{big},positive\n"
                  f"u,c,{big + 3}.0,positive\nu,d,9.007199254740997e15,positive\n")
    log = load_table(ev)
    assert log.timestamps.tolist() == [big, big + 1, big + 3, big + 5]
    assert log.item_meta.raw_ids[log.items].tolist() == ["b", "a", "c", "d"]
    assert ROUNDED not in log.report.notes  # nothing was rounded
    root = ml100k(tmp_path / "ml", [f"1\t1\t5\t{big + 1}.0\n", f"1\t2\t5\t{big}\n"])
    assert load_movielens(root).timestamps.tolist() == [big, big + 1]


def test_parquet_int64_timestamps_are_exact(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (optional Parquet support)")
    import pyarrow.parquet as pq

    big = 2**62 + 1
    pq.write_table(pa.table({"user": [1, 1], "item": [5, 6], "timestamp": [big + 2, big],
                             "feedback": ["positive", "dislike"]}), tmp_path / "e.parquet")
    log = load_table(tmp_path / "e.parquet")
    assert log.timestamps.tolist() == [big, big + 2]


# ---- ids are never merged (issue 16, W6) ------------------------------------------------------------

def test_distinct_id_spellings_are_distinct_ids(tmp_path):
    ev = tmp_path / "e.csv"
    spellings = ["0012", "12", "+5", "5", "1_0", "10", "-0", "0", " 7 "]
    ev.write_text("user,item,timestamp,feedback\n" + "".join(
        f"{s},{s},{k},positive\n" for k, s in enumerate(spellings)))
    log = load_table(ev)
    expected = sorted({s.strip() for s in spellings})  # spaces around an id are not part of it
    assert log.num_users == len(expected) == 9 and log.num_items == 9
    assert sorted(log.user_ids.tolist()) == expected
    assert sorted(log.item_meta.raw_ids.tolist()) == expected
    # canonical integers only: int64 ids, including negative and beyond-2^53 ones
    ev.write_text("user,item,timestamp,feedback\n-3,9007199254740993,1,positive\n"
                  "4,9007199254740992,2,positive\n")
    log = load_table(ev)
    assert log.user_ids.dtype == np.int64 and log.user_ids.tolist() == [-3, 4]
    assert log.item_meta.raw_ids.tolist() == [9007199254740992, 9007199254740993]
    # beyond int64: the ids stay strings (no overflow, no merge)
    ev.write_text("user,item,timestamp,feedback\n99999999999999999999,1,1,positive\n"
                  "99999999999999999998,1,2,positive\n")
    assert load_table(ev).num_users == 2


def test_metadata_ids_join_event_ids_as_spelled(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n1,12,1,positive\n1,7,2,positive\n")
    meta = tmp_path / "m.csv"
    meta.write_text("item,category\n0012,old\n12,new\n+7,plus\n")
    log = load_table(ev, items_path=meta)
    m = log.item_meta
    raw = m.raw_ids.tolist()
    assert sorted(raw) == ["+7", "0012", "12", "7"]  # four items: nothing merged
    by_raw = dict(zip(raw, m.cluster.tolist()))
    assert m.cluster_names[by_raw["12"]] == "new" and m.cluster_names[by_raw["0012"]] == "old"
    assert by_raw["7"] == -1  # the event's "7" has no metadata row; "+7" is another item
    assert log.item_meta.raw_ids[log.items].tolist() == ["12", "7"]
    assert log.report.repaired == {"items with events but no metadata row (cluster -1)": 1,
                                   "metadata items without any event (kept as items)": 2}


@pytest.mark.parametrize("bad_id, what", [("01", "user id"), ("+1", "user id"), ("1_0", "item id"),
                                          ("1.0", "item id")])
def test_movielens_ids_must_be_canonical(tmp_path, bad_id, what):
    lines = GOOD + ([f"{bad_id}\t1\t4\t7\n"] if what == "user id" else [f"1\t{bad_id}\t4\t7\n"])
    root = ml100k(tmp_path / "a", lines, items=12)
    with pytest.raises(DataFormatError, match=rf"u\.data:5: non-canonical {what}: {re.escape(repr(bad_id))}"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.report.dropped == {f"non-canonical {what}": 1} and log.num_events == 4


def test_movielens_and_kuairand_metadata_ids_must_be_canonical(tmp_path):
    items = [f"{i}|Film|01-Jan-1995||u|" + "|".join(["0"] * GENRES) + "\n" for i in ("1", "2", "03", "3")]
    root = ml100k(tmp_path / "a", GOOD, item_lines=items)
    with pytest.raises(DataFormatError, match=r"u\.item:3: non-canonical item id: '03'"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.num_items == 3 and log.report.dropped == {"u.item: non-canonical item id": 1}
    kr = _kuairand(tmp_path / "kr", "video_id,author_id,tag\n0100,7,5\n100,8,6\n")
    with pytest.raises(DataFormatError, match=r"video_features_basic_x\.csv:2: non-canonical video_id"):
        load_kuairand(kr)
    log = load_kuairand(kr, on_bad_rows="skip")
    m = log.item_meta
    assert m.creator_names[m.creator[list(m.raw_ids).index(100)]] == "8"


# ---- unbalanced quotes hide no row (issue 16, S1) ---------------------------------------------------

SIX_ROWS = ('user,item,timestamp,feedback\nu1,a,1,positive\nu1,"b,2,positive\nu1,c,3,positive\n'
            'u2,a,4,skip\nu2,b,5,dislike\nu3,"c",6,positive\n')


def test_unbalanced_quote_is_a_bad_row_and_hides_nothing(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text(SIX_ROWS)
    with pytest.raises(DataFormatError, match=r"e\.csv:3: unclosed quote: a quoted field opened on "
                                              r"this line runs on to line 7"):
        load_table(ev)
    log = load_table(ev, on_bad_rows="skip")
    rep = log.report
    assert (rep.rows_read, rep.rows_kept, rep.dropped) == (6, 5, {"unclosed quote": 1})
    assert log.num_events == 5 and sorted(log.user_ids.tolist()) == ["u1", "u2", "u3"]


def test_line_numbers_after_an_unbalanced_quote_are_physical_lines(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text('user,item,timestamp,feedback\nu1,a,1,positive\nu1,"b,2,positive\n'
                  'u1,c",3,positive\nu2,a,4,skip\nu2,b,x,dislike\n')
    rep = load_table(ev, on_bad_rows="skip").report
    assert rep.examples["unclosed quote"].startswith("line 3: ")
    assert rep.examples["unparsable timestamp"].startswith("line 6: ")
    assert rep.dropped == {"unclosed quote": 1, "unparsable timestamp": 1}  # line 4: item 'c"'
    assert accounted(rep)


def test_unbalanced_quote_in_metadata_files(tmp_path):
    movies = 'movieId,title,genres\n1,"Heat (1995),Action\n2,Casino (1995),Drama\n3,Ran (1985),War\n'
    root = ml_latest(tmp_path / "a", "userId,movieId,rating,timestamp\n1,2,4,1\n1,3,4,2\n", movies)
    with pytest.raises(DataFormatError, match=r"movies\.csv:2: unclosed quote"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.num_items == 2 and log.report.dropped == {"movies.csv: unclosed quote": 1}
    kr = _kuairand(tmp_path / "kr", 'video_id,author_id,tag\n100,7,"5\n101,8,6\n102,9,7\n')
    with pytest.raises(DataFormatError, match=r"video_features_basic_x\.csv:2: unclosed quote"):
        load_kuairand(kr)
    log = load_kuairand(kr, on_bad_rows="skip")
    m = log.item_meta
    assert m.creator_names[m.creator[list(m.raw_ids).index(101)]] == "8"
    assert log.report.dropped == {"video_features_basic_x.csv: unclosed quote": 1}


def test_unbalanced_quote_past_the_csv_field_limit(tmp_path):
    """An open quote that runs on for more than csv's field-size limit (128 KiB) is the same bad
    row, not an unreadable file."""
    rows = "".join(f"u{k},i{k},{k},positive\n" for k in range(12_000))  # ~250 KB
    ev = tmp_path / "e.csv"
    ev.write_text('user,item,timestamp,feedback\nu,"x,1,positive\n' + rows)
    with pytest.raises(DataFormatError, match=r"e\.csv:2: unclosed quote"):
        load_table(ev)
    rep = load_table(ev, on_bad_rows="skip").report
    assert (rep.rows_read, rep.rows_kept, rep.dropped) == (12_001, 12_000, {"unclosed quote": 1})


def test_unclosed_quote_in_the_header_is_an_error(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text('user,"item,timestamp,feedback\nu,a,1,positive\n')
    with pytest.raises(DataFormatError, match=r"e\.csv:1: unclosed quote in the header"):
        load_table(ev, on_bad_rows="skip")


# ---- byte-order marks whatever the encoding (issue 16, unclear errors) ------------------------------

def test_utf8_bom_in_latin1_movielens_files(tmp_path):
    items = [f"{i}|Caf\u00e9 {i}|01-Jan-1995||u|" + "|".join(["0"] * GENRES) + "\n" for i in (1, 2, 3)]
    root = tmp_path / "a"
    root.mkdir()
    (root / "u.item").write_bytes(b"\xef\xbb\xbf" + "".join(items).encode("utf-8"))
    (root / "u.data").write_bytes(b"\xef\xbb\xbf" + "".join(GOOD).encode("latin-1"))
    log = load_movielens(root)
    assert log.num_events == 4 and sorted(log.user_ids.tolist()) == [1, 2]
    assert log.item_meta.titles[0] == "Caf\u00e9 1"  # a BOM means UTF-8: read as UTF-8
    assert log.report.notes == {
        "file starts with a UTF-8 byte-order mark: read as UTF-8, not latin-1": 1,  # u.data
        "u.item: file starts with a UTF-8 byte-order mark: read as UTF-8, not latin-1": 1}
    assert "(e.g. u.data)" in log.report.summary()


def test_utf16_file_in_a_latin1_format_is_a_clear_error(tmp_path):
    root = ml100k(tmp_path / "a", ["".join(GOOD).encode("utf-16")])
    with pytest.raises(DataFormatError, match=r"u\.data:1: cannot decode as latin-1 \(the file starts "
                                              r"with a UTF-16 byte-order mark\)"):
        load_movielens(root)


# ---- fuzz: random corruption of a valid file -----------------------------------------------------

BASE_CSV = ("user,item,timestamp,feedback,dwell\n" +
            "".join(f"u{u},i{(u * 7 + k) % 11},{k * 3 - u},{('positive', 'skip', 'dislike', 'neutral')[k % 4]},"
                    f"{k * 0.5}\n" for u in range(6) for k in range(5)))


INTACT_LINE = re.compile(r"(u\d+),(i\d+),(-?\d+),(positive|skip|dislike|neutral),\d+\.\d+")


@st.composite
def corrupted(draw):
    data = bytearray(BASE_CSV.encode())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "delete", "insert", "replace", "delimiter", "dup_line",
                                   "quote"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            del data[i:]
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 20))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "replace":
            data[i] = draw(st.integers(0, 255))
        elif op == "delimiter":
            data[:] = data.replace(b",", draw(st.sampled_from([b";", b"\t", b"|", b",,"])), draw(st.integers(1, 5)))
        elif op == "quote":  # an unbalanced quote, which csv would let swallow the next lines
            data[i:i] = b'"'
        elif op == "dup_line":
            lines = bytes(data).split(b"\n")
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(j, lines[j])
            data[:] = b"\n".join(lines)
    return bytes(data)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(corrupted(), st.sampled_from(["error", "skip"]))
def test_fuzz_corrupted_csv(tmp_path, data, on_bad_rows):
    """Random truncations, deletions, insertions of random bytes and quotes, delimiter changes
    and duplicated lines: a DataFormatError (a ValueError naming the file), or a log whose report
    accounts for every row read and that keeps every line the corruption left intact."""
    ev = tmp_path / "fuzz.csv"
    ev.write_bytes(data)
    cols = ColumnMap(feedback="feedback", dwell="dwell")
    try:
        log = load_table(ev, columns=cols, on_bad_rows=on_bad_rows)
    except DataFormatError as exc:
        assert "fuzz.csv" in str(exc)
        return
    rep = log.report
    assert rep.rows_read == rep.rows_kept + sum(rep.dropped.values()), rep.summary()
    assert log.num_events == rep.rows_kept
    if on_bad_rows == "error":
        assert not rep.dropped
    # no line may vanish: with the header intact, every well-formed event line is an event
    lines = re.split(r"\r\n|\r|\n", data.decode("utf-8"))
    if lines[0] != BASE_CSV.split("\n")[0] or "mixed timestamp kinds" in rep.dropped:
        return  # columns moved, or a corrupt first time set the column's kind: rows may go
    intact = Counter(tuple(m.groups()) for m in map(INTACT_LINE.fullmatch, lines[1:]) if m)
    kept = Counter()
    for u in range(log.num_users):
        for j in range(*log.offsets[u:u + 2]):
            kept[(log.user_ids[u], log.item_meta.raw_ids[log.items[j]], str(log.timestamps[j]),
                  Feedback(log.feedback[j]).label)] += 1
    assert not intact - kept, (intact - kept, rep.summary())
