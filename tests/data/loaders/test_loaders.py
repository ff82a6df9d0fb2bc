"""Loaders on small fixture files written here, plus the real MovieLens-100K when present."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from negrec.data import (ColumnMap, DataFormatError, EventLog, Feedback, ItemColumns, RatingMapping,
                         load_kuairand, load_movielens, load_table)

ML100K_ITEM_LINE = "{id}|{title}|01-Jan-1995||http://x|{flags}\n"


def write_ml100k(root, data_lines, items=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text("".join(data_lines))
    items = items or {
        1: ("Toy Story (1995)", [3, 4, 5]),          # Animation, Children's, Comedy
        2: ("Misérables, Les (1995)", [8]),          # Drama; latin-1 byte in the title
        3: ("Heat (1995)", [1, 6, 16]),             # Action, Crime, Thriller
        4: ("Unknown movie", [0]),                  # only "unknown": no cluster
    }
    lines = []
    for i, (title, genres) in items.items():
        flags = ["1" if g in genres else "0" for g in range(19)]
        lines.append(ML100K_ITEM_LINE.format(id=i, title=title, flags="|".join(flags)))
    (root / "u.item").write_bytes("".join(lines).encode("latin-1"))
    return root


def test_ml100k_fixture(tmp_path):
    root = write_ml100k(tmp_path / "ml", [
        "1\t1\t5\t100\n", "1\t2\t1\t50\n", "2\t3\t3\t10\n", "1\t3\t4\t100\n", "2\t1\t2\t5\n",
    ])
    log = load_movielens(root)
    assert log.num_users == 2 and log.num_items == 4 and log.num_events == 5
    # user 1 sorted by time; the two events at t=100 keep file order (item 1 then item 3)
    items, fb = log.user_events(0)
    assert log.item_meta.raw_ids[items].tolist() == [2, 1, 3]
    assert fb.tolist() == [Feedback.DISLIKE, Feedback.POSITIVE, Feedback.POSITIVE]
    assert log.strength[log.user_slice(0)].tolist() == [1.0, 5.0, 4.0]
    assert log.feedback_counts() == {"positive": 2, "neutral": 1, "skip": 0, "dislike": 2}
    assert log.item_meta.titles[1] == "Misérables, Les (1995)"
    names = log.item_meta.cluster_names
    cl = log.item_meta.cluster
    # "rarest" rule: each genre occurs once here, ties broken by name
    assert names[cl[0]] == "Animation" and names[cl[1]] == "Drama" and names[cl[2]] == "Action"
    assert cl[3] == -1


def test_ml100k_first_genre_rule_and_custom_mapping(tmp_path):
    root = write_ml100k(tmp_path / "ml", ["1\t1\t3\t1\n", "1\t3\t3\t2\n"])
    log = load_movielens(root, genre_rule="first", mapping=RatingMapping(positive_min=3, dislike_max=1))
    names, cl = log.item_meta.cluster_names, log.item_meta.cluster
    assert names[cl[2]] == "Action"  # first listed of Action, Crime, Thriller
    assert log.feedback.tolist() == [Feedback.POSITIVE, Feedback.POSITIVE]
    with pytest.raises(ValueError, match="dislike_max .* must be below positive_min"):
        RatingMapping(positive_min=2, dislike_max=3)


def test_ml1m_fixture(tmp_path):
    root = tmp_path / "ml-1m"
    root.mkdir()
    (root / "ratings.dat").write_text("1::10::5::978300760\n1::20::2::978300700\n2::10::3::978300000\n")
    (root / "movies.dat").write_bytes("10::Heat (1995)::Action|Crime|Thriller\n20::Café (2000)::Drama\n"
                                      .encode("latin-1"))
    log = load_movielens(root)
    assert log.source == "movielens:ml-1m"
    assert (log.num_users, log.num_items, log.num_events) == (2, 2, 3)
    items, fb = log.user_events(0)
    assert log.item_meta.raw_ids[items].tolist() == [20, 10]
    assert fb.tolist() == [Feedback.DISLIKE, Feedback.POSITIVE]
    assert log.item_meta.titles[1] == "Café (2000)"


def test_ml_latest_fixture(tmp_path):
    root = tmp_path / "ml-latest-small"
    root.mkdir()
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,10\n1,2,2.5,11\n"
                                      "2,2,0.5,3\n2,3,3.5,4\n")
    (root / "movies.csv").write_text('movieId,title,genres\n1,"American President, The (1995)",'
                                     'Comedy|Drama|Romance\n2,Heat (1995),Action\n'
                                     '3,Some film (2001),(no genres listed)\n')
    log = load_movielens(root)
    assert log.feedback_counts() == {"positive": 1, "neutral": 2, "skip": 0, "dislike": 1}
    assert log.item_meta.titles[0] == "American President, The (1995)"
    assert log.item_meta.cluster[2] == -1


def test_movielens_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a MovieLens folder"):
        (tmp_path / "empty").mkdir()
        load_movielens(tmp_path / "empty")
    root = write_ml100k(tmp_path / "bad", ["1\t1\t5\t100\n", "1\tX\t5\t101\n", "1\t2\n",
                                           "2\t9\t4\t7\n"])
    with pytest.raises(DataFormatError, match=r"u\.data:2: unparsable item id: 'X' is not a number"):
        load_movielens(root)
    log = load_movielens(root, on_bad_rows="skip")
    assert log.num_events == 1
    rep = log.report
    assert rep.rows_read == 4 and rep.rows_kept == 1
    assert rep.dropped == {"unparsable item id": 1, "too few fields": 1,
                           "item missing from the movie metadata": 1}
    assert "line 3" in rep.examples["too few fields"]


def test_wrong_encoding_names_file_and_line(tmp_path):
    root = tmp_path / "ml-latest"
    root.mkdir()
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,1\n")
    (root / "movies.csv").write_bytes("movieId,title,genres\n1,Caf\xe9,Drama\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"movies\.csv:2: cannot decode as utf-8"):
        load_movielens(root)


def write_kuairand(root):
    root.mkdir()
    header = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,"
              "is_forward,is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,"
              "comment_stay_time,is_profile_enter,is_rand,tab\n")
    rows = [
        # user, video, time, like, hate, long_view, play, duration
        (1, 100, 30, 0, 1, 0, 9000, 10000),   # hate -> dislike (priority over the long play)
        (1, 101, 10, 1, 0, 0, 500, 10000),    # like -> positive
        (1, 102, 20, 0, 0, 1, 9000, 10000),   # long view -> positive
        (2, 100, 5, 0, 0, 0, 800, 60000),     # short play -> skip
        (2, 103, 6, 0, 0, 0, 30000, 60000),   # neither -> neutral
    ]
    lines = [header] + [f"{u},{v},20220408,1000,{t},1,{lk},0,0,0,{h},{lv},{p},{d},0,0,0,0,1\n"
                        for u, v, t, lk, h, lv, p, d in rows]
    (root / "log_standard_4_08_to_4_21_1k.csv").write_text("".join(lines))
    (root / "video_features_basic_1k.csv").write_text(
        "video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,"
        "server_width,server_height,music_id,music_type,tag\n"
        '100,7,NORMAL,2022-01-01,x,public,10000,720,1280,0,0,"5,8"\n'
        "101,7,NORMAL,2022-01-01,x,public,10000,720,1280,0,0,9\n"
        "102,8,NORMAL,2022-01-01,x,public,10000,720,1280,0,0,5\n")
    return root


def test_kuairand_fixture(tmp_path):
    log = load_kuairand(write_kuairand(tmp_path / "kr"))
    items, fb = log.user_events(0)
    raw = log.item_meta.raw_ids
    assert raw[items].tolist() == [101, 102, 100]
    assert fb.tolist() == [Feedback.POSITIVE, Feedback.POSITIVE, Feedback.DISLIKE]
    items2, fb2 = log.user_events(1)
    assert fb2.tolist() == [Feedback.SKIP, Feedback.NEUTRAL]
    meta = log.item_meta
    by_raw = {int(r): k for k, r in enumerate(raw)}
    assert meta.cluster_names[meta.cluster[by_raw[100]]] == "5"
    assert meta.creator_names[meta.creator[by_raw[101]]] == "7"
    assert meta.cluster[by_raw[103]] == -1 and meta.creator[by_raw[103]] == -1
    assert log.report.repaired == {"items missing from the video features (no category / creator)": 1}


def test_kuairand_missing_column(tmp_path):
    root = tmp_path / "kr"
    root.mkdir()
    (root / "log_standard_x.csv").write_text("user_id,video_id,time_ms\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"log_standard_x\.csv:1: missing column 'is_like'"):
        load_kuairand(root)


def test_generic_csv_with_labels_and_metadata(tmp_path):
    ev = tmp_path / "events.csv"
    ev.write_text("uid,iid,ts,action,dwell\nu1,a,3,like,10\nu1,b,1,hate,2\nu2,a,2,skip,0.5\n"
                  "u2,c,5,meh,7\n")
    meta = tmp_path / "items.csv"
    meta.write_text("item,category,creator\na,news,alice\nb,sport,bob\nd,news,alice\nb,x,y\n")
    log = load_table(ev, columns=ColumnMap(user="uid", item="iid", timestamp="ts", feedback="action",
                                           dwell="dwell"),
                     feedback_values={"like": "positive", "hate": "dislike", "skip": "skip",
                                      "meh": "neutral"},
                     items_path=meta, item_columns=ItemColumns(creator="creator"))
    assert log.num_users == 2 and log.num_events == 4
    items, fb = log.user_events(0)
    raw = log.item_meta.raw_ids
    assert raw[items].tolist() == ["b", "a"] and fb.tolist() == [Feedback.DISLIKE, Feedback.POSITIVE]
    assert log.strength[log.user_slice(0)].tolist() == [2.0, 10.0]
    m = log.item_meta
    k = {str(r): i for i, r in enumerate(raw)}
    assert m.cluster_names[m.cluster[k["a"]]] == "news" and m.creator_names[m.creator[k["b"]]] == "bob"
    assert m.cluster[k["c"]] == -1  # events but no metadata row
    assert "d" in k  # metadata row without events is still an item
    rep = log.report.repaired
    assert rep["duplicate item rows in the metadata (first kept)"] == 1
    assert rep["items with events but no metadata row (cluster -1)"] == 1
    assert rep["metadata items without any event (kept as items)"] == 1


def test_generic_csv_ratings_and_bad_rows(tmp_path):
    ev = tmp_path / "r.csv"
    ev.write_text("user,item,timestamp,rating\n1,1,1,5\n1,2,2,oops\n2,1,x,1\n2,2,4,3\n")
    cols = ColumnMap(rating="rating")
    with pytest.raises(DataFormatError, match=r"r\.csv:3: unparsable rating: 'oops'"):
        load_table(ev, columns=cols)
    log = load_table(ev, columns=cols, on_bad_rows="skip")
    assert log.num_events == 2
    assert log.report.dropped == {"unparsable rating": 1, "unparsable timestamp": 1}
    assert log.feedback.tolist() == [Feedback.POSITIVE, Feedback.NEUTRAL]


def test_generic_csv_errors(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,time,feedback\n1,1,1,positive\n")
    with pytest.raises(DataFormatError, match=r"e\.csv:1: missing column 'timestamp'; the header has"):
        load_table(ev)
    ev.write_text("user,item,timestamp,feedback\n1,1,1,positive\n1,2,2,loved\n")
    with pytest.raises(DataFormatError, match=r"e\.csv:3: unknown feedback label: 'loved'"):
        load_table(ev)
    with pytest.raises(ValueError, match="give exactly one of feedback= .* and rating="):
        ColumnMap(feedback="f", rating="r")
    with pytest.raises(FileNotFoundError, match="file not found"):
        load_table(tmp_path / "missing.csv")


def test_parquet_roundtrip(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (optional Parquet support)")
    import pyarrow.parquet as pq

    table = pa.table({"user": [1, 1, 2], "item": [5, 6, 5], "timestamp": [2, 1, 1],
                      "feedback": ["positive", "dislike", "skip"]})
    pq.write_table(table, tmp_path / "e.parquet")
    log = load_table(tmp_path / "e.parquet")
    assert log.feedback_counts() == {"positive": 1, "neutral": 0, "skip": 1, "dislike": 1}


def test_save_load_roundtrip(tmp_path):
    root = write_ml100k(tmp_path / "ml", ["1\t1\t5\t100\n", "1\t2\t1\t50\n", "2\t3\t3\t10\n"])
    log = load_movielens(root)
    path = log.save(tmp_path / "log.npz")
    back = EventLog.load(path)
    for name in ("offsets", "items", "timestamps", "feedback", "strength", "user_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(log, name))
    np.testing.assert_array_equal(back.item_meta.cluster, log.item_meta.cluster)
    assert back.item_meta.cluster_names == log.item_meta.cluster_names
    assert back.item_meta.titles == log.item_meta.titles
    assert back.stats() == log.stats()


def test_real_ml100k_counts(ml100k_dir):
    log = load_movielens(ml100k_dir)
    s = log.stats()
    assert (s["users"], s["items"], s["events"]) == (943, 1682, 100_000)
    assert (s["positive"], s["neutral"], s["dislike"], s["skip"]) == (55_375, 27_145, 17_480, 0)
    assert s["sequence_length"]["p0"] == 20 and s["sequence_length"]["p100"] == 737


def test_cli_data_stats(ml100k_dir):
    proc = subprocess.run([sys.executable, "-m", "negrec", "data", "stats", "--source", "movielens",
                           "--path", str(ml100k_dir)], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["users"] == 943 and stats["positive"] == 55_375 and stats["dislike"] == 17_480


def test_cli_data_stats_bad_path_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "negrec", "data", "stats", "--source", "csv",
                           "--path", str(tmp_path / "nope.csv"), "--feedback-col", "f"],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr
