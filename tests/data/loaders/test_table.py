"""Generic tables (negrec.data.loaders.table): ISO-8601 date-time timestamps, feedback labels that are never read as internal codes, partial feedback maps (issue 18)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from negrec.data import ColumnMap, DataFormatError, Feedback, load_table


def test_iso_datetime_timestamps_are_utc_seconds(tmp_path):
    noon = int(datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc).timestamp())
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n"
                  "u,a,2024-05-01T12:30:00Z,positive\n"       # UTC
                  "u,b,2024-05-01T14:30:00+02:00,positive\n"  # the same instant
                  "u,c,2024-05-01 12:30:00,positive\n"        # naive: UTC
                  "u,d,2024-05-01T12:30:00.750000Z,skip\n"    # a fraction of a second
                  "u,e,2024-05-01T12:30:00.250Z,skip\n"
                  "v,a,2024-05-01,dislike\n")                 # a date: midnight UTC
    log = load_table(ev)
    u = log.user_slice(0)
    assert log.timestamps[u].tolist() == [noon] * 5
    assert log.item_meta.raw_ids[log.items[u]].tolist() == ["a", "b", "c", "e", "d"]
    assert log.timestamps[log.user_slice(1)].tolist() == [noon - 12 * 3600 - 30 * 60]
    assert log.report.notes["timestamps with a fraction, floored to whole units (events within "
                            "one unit keep the order of their exact times)"] == 2


def test_parquet_timestamp_columns_are_utc_seconds(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (optional Parquet support)")
    import pyarrow.parquet as pq

    noon = int(datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc).timestamp())
    moments = [datetime(2024, 5, 1, 12, 30), datetime(2024, 5, 1, 12, 31)]
    for unit, tz in (("s", None), ("ms", "UTC"), ("ns", None)):
        times = pa.array(moments, pa.timestamp(unit, tz=tz))
        pq.write_table(pa.table({"user": [1, 1], "item": [1, 2], "timestamp": times,
                                 "feedback": ["positive", "skip"]}), tmp_path / "e.parquet")
        assert load_table(tmp_path / "e.parquet").timestamps.tolist() == [noon, noon + 60], unit


def test_a_timestamp_column_holds_one_kind(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\nu,a,1714566600,positive\nu,b,2024-05-01,skip\n")
    with pytest.raises(DataFormatError, match=r"e\.csv:3: mixed timestamp kinds: '2024-05-01' is a "
                                              r"date-time but line 2 holds a number"):
        load_table(ev)
    ev.write_text("user,item,timestamp,feedback\nu,a,1714566600,positive\nu,b,May 1st,skip\n")
    with pytest.raises(DataFormatError, match=r"e\.csv:3: unparsable timestamp: 'May 1st' is not an "
                                              r"integer, a decimal number or an ISO-8601 date-time"):
        load_table(ev)


def test_numeric_labels_are_never_feedback_codes(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n1,1,1,1\n1,2,2,2\n1,3,3,4\n2,1,1,1\n")
    with pytest.raises(DataFormatError) as err:
        load_table(ev)
    msg = str(err.value)
    assert msg.startswith(f"{ev}:2: unknown feedback label: '1'; labels must be feedback names")
    assert "numbers are never read as feedback codes" in msg
    assert "labels without a meaning in column 'feedback': '1' (2 rows), '2' (1 row), '4' (1 row)" in msg
    assert "feedback_values={'1': 'NAME', '2': 'NAME', '4': 'NAME'}" in msg
    # skip mode drops and counts them; here every row goes, so the load is an error with counts
    with pytest.raises(DataFormatError, match=r"no events read \(4 rows read; dropped: "
                                              r"\{'unknown feedback label': 4\}"):
        load_table(ev, on_bad_rows="skip")
    log = load_table(ev, feedback_values={"1": "positive", "2": "skip", "4": "dislike"})
    assert log.feedback_counts() == {"positive": 2, "neutral": 0, "skip": 1, "dislike": 1}


def test_many_unmapped_labels_are_listed_up_to_ten(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\n" + "".join(f"1,1,{k},l{k}\n" for k in range(14)))
    with pytest.raises(DataFormatError, match=r"'l9' \(1 row\) and 4 more labels; map them"):
        load_table(ev)


def test_partial_feedback_map(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,action\nu,a,1,like\nu,b,2,meh\nu,c,3,Meh \nu,d,4,dislike\n"
                  "u,e,5,bored\n")
    cols = ColumnMap(feedback="action")
    with pytest.raises(DataFormatError) as err:
        load_table(ev, columns=cols, feedback_values={"like": "positive"})
    msg = str(err.value)
    assert msg.startswith(f"{ev}:3: unknown feedback label: 'meh'; it is neither in the feedback map")
    assert "column 'action': 'meh' (2 rows), 'bored' (1 row)" in msg  # 'dislike' is a name
    assert "feedback_values={'like': 'positive', 'meh': 'NAME', 'bored': 'NAME'}" in msg
    assert "feedback_values={'like': 'positive', '*': 'NAME'}" in msg
    # '*' maps every label not listed; feedback names keep their meaning
    log = load_table(ev, columns=cols, feedback_values={"like": "positive", "*": "neutral"})
    assert log.feedback.tolist() == [Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.NEUTRAL,
                                     Feedback.DISLIKE, Feedback.NEUTRAL]


@pytest.mark.parametrize("stored", ["plain", "dictionary"])
def test_parquet_ids_and_labels_read_as_dictionaries_load_as_plain_strings(tmp_path, monkeypatch,
                                                                           stored):
    """String ids and labels are read from Parquet as dictionaries (the row group's whole
    dictionary, cut to a small batch's texts here): nulls and empty texts are one empty id, and
    the log and report equal those of the row-by-row reading of the same texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from negrec.data.loaders import table_files

    users = ["u2", None, "", "u1", "u2", "u3", None, "u1"]
    labels = ["skip", "positive", "dislike", None, "like", "positive", "skip", "neutral"]
    columns = {"user": pa.array(users, pa.string()), "item": pa.array([1, 2, 3, 4, 5, 6, 7, 8]),
               "timestamp": pa.array([5, 4, 3, 2, 1, 0, 9, 8]),
               "feedback": pa.array(labels, pa.string())}
    if stored == "dictionary":
        columns = {k: v.dictionary_encode() if v.type == pa.string() else v
                   for k, v in columns.items()}
    pq.write_table(pa.table(columns), tmp_path / "e.parquet", row_group_size=8)
    monkeypatch.setattr(table_files, "PARQUET_BATCH_ROWS", 3)
    log = load_table(tmp_path / "e.parquet", on_bad_rows="skip",
                     feedback_values={"like": "positive"})
    # kept: u2@5 skip, u1@2 -> None label (dropped), u2@1 like, u3@0 positive, u1@8 neutral
    assert log.user_ids.tolist() == ["u1", "u2", "u3"]
    assert log.item_meta.raw_ids[log.items].tolist() == [8, 5, 1, 6]
    assert log.feedback.tolist() == [Feedback.NEUTRAL, Feedback.POSITIVE, Feedback.SKIP,
                                      Feedback.POSITIVE]
    assert log.report.rows_read == 8 and log.report.rows_kept == 4
    assert log.report.dropped == {"empty user or item id": 3, "unknown feedback label": 1}
    assert log.report.examples["empty user or item id"] == "line 2: user='', item='2'"
