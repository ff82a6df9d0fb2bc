"""The memory-mapped event store (negrec.data.store, EventLog.save_store / EventLog.open): a
round trip keeps every array, id, metadata, report and statistic; opening reads no event (a
corrupted event byte goes unnoticed until ``verify``); manifests and files that do not agree
are clear errors; the mapped arrays are read-only, selections make new arrays and splits share
the mapped ones."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from negrec.data import EventLog, Feedback, leave_one_out, load_movielens, load_table
from negrec.data.store import MANIFEST, StoreError
from negrec.data.transforms import permute_feedback
from negrec.errors import UserError

from .loaders.differential import assert_same_log


@pytest.fixture
def ml_log(tmp_path):
    root = tmp_path / "ml"
    root.mkdir()
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,10\n1,2,2.5,11\n"
                                      "2,2,0.5,3\n2,3,3.5,4\n2,3,3.5,4\n3,1,5,1.5\n3,2,1,1\n")
    (root / "movies.csv").write_text('movieId,title,genres\n1,"American President, The (1995)",'
                                     'Comedy|Drama\n2,Heat (1995),Action\n3,Film,(no genres listed)\n'
                                     '4,Unrated,Drama\n')
    return load_movielens(root)


@pytest.fixture
def table_log(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback,dwell\nu1,a,3,positive,1.5\nu1,b,1,dislike,2\n"
                  "u2,a,2,skip,0.5\nü,c,5,neutral,7\n")
    meta = tmp_path / "items.csv"
    meta.write_text("item,category,creator\na,news,al\nb,sport,bo\nd,news,al\n")
    from negrec.data import ColumnMap, ItemColumns
    return load_table(ev, columns=ColumnMap(feedback="feedback", dwell="dwell"), items_path=meta,
                      item_columns=ItemColumns(creator="creator"))


@pytest.mark.parametrize("name", ["ml_log", "table_log"])
def test_round_trip_keeps_everything(tmp_path, request, name):
    log = request.getfixturevalue(name)
    path = log.save_store(tmp_path / "store")
    back = EventLog.open(path)
    assert_same_log(back, log)
    assert back.stats() == json.loads(json.dumps(log.stats()))
    assert back.report is not log.report and back.report == log.report


def test_opened_arrays_are_read_only_memory_maps(tmp_path, ml_log):
    back = EventLog.open(ml_log.save_store(tmp_path / "store"))
    for name in ("offsets", "items", "timestamps", "feedback", "strength", "user_ids"):
        arr = getattr(back, name)
        assert not arr.flags.writeable, name
        assert isinstance(arr.base, np.memmap) or isinstance(arr, np.memmap), name
    with pytest.raises(ValueError, match="read-only"):
        back.items[0] = 1


def test_selections_make_new_arrays_and_splits_share_the_stores(tmp_path, ml_log):
    back = EventLog.open(ml_log.save_store(tmp_path / "store"))
    split = leave_one_out(back, min_events=2 + 1)
    for part in (split.train, split.test.history):  # views of the mapped arrays, no copy
        rows = part.event_rows()
        assert rows.items is back.items and rows.feedback is back.feedback
        assert rows.timestamps is back.timestamps and rows.strength is back.strength
        assert not part.items.flags.writeable  # made when read; writes would not be seen
    assert split.test.items.flags.writeable
    assert split.train.num_events == leave_one_out(ml_log).train.num_events
    placebo = permute_feedback(back, seed=1)
    assert placebo.feedback.flags.writeable
    only_pos = back.select_events(back.feedback == Feedback.POSITIVE)
    assert only_pos.num_events == int((ml_log.feedback == Feedback.POSITIVE).sum())
    assert back.select_users(np.array([1])).items.flags.writeable


def test_statistics_are_recorded_and_recomputed_when_the_arrays_change(tmp_path, ml_log):
    back = EventLog.open(ml_log.save_store(tmp_path / "store"))
    assert back.stats()["positive"] == ml_log.stats()["positive"]
    back.feedback = np.full_like(back.feedback, int(Feedback.DISLIKE))  # as all_positive does
    assert back.stats()["dislike"] == back.num_events
    replaced = dataclasses.replace(back, feedback=np.full(back.num_events, 1, np.int8))
    assert replaced.stats()["positive"] == back.num_events


def _corrupt(path, name, value):
    """Writes ``value`` over the first element of an array file (its header kept)."""
    arr = np.load(path / f"{name}.npy", mmap_mode="r+")
    arr[0] = value
    arr.flush()


def test_opening_reads_no_event_and_verify_reads_them_all(tmp_path, ml_log):
    path = ml_log.save_store(tmp_path / "store")
    _corrupt(path, "items", 10**9)  # out of range: a full scan would see it
    opened = EventLog.open(path)
    assert opened.num_events == ml_log.num_events  # opened without reading the events
    with pytest.raises(StoreError, match=r"items\.npy: content differs from the manifest's SHA-256"):
        EventLog.open(path, verify=True)


def test_verify_checks_the_events_invariants_too(tmp_path, ml_log):
    """A store whose hashes agree but whose events break an invariant its manifest says was
    checked (a broken writer) opens (the record is trusted) and fails verify, naming it."""
    import hashlib

    from negrec.data import store

    path = ml_log.save_store(tmp_path / "store")
    _corrupt(path, "items", 100)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["arrays"]["items"]["sha256"] = hashlib.sha256((path / "items.npy").read_bytes()).hexdigest()
    manifest["content_hash"] = store._content_hash(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))
    EventLog.open(path)
    with pytest.raises(StoreError, match=r"store: EventLog: item ids must be in \[0, 4\); got "
                                         r"range \[0, 100\]"):
        EventLog.open(path, verify=True)


def test_recorded_ranges_are_checked_on_open(tmp_path, ml_log, monkeypatch):
    """The ranges a store recorded are checked against its catalogue when it opens."""
    import negrec.data.log as log_module

    real = log_module.EventLog.validate
    monkeypatch.setattr(log_module.EventLog, "validate", lambda self: None)
    bad = dataclasses.replace(ml_log)
    bad.items = ml_log.items + 100
    path = bad.save_store(tmp_path / "store")
    monkeypatch.setattr(log_module.EventLog, "validate", real)
    with pytest.raises(StoreError, match=r"store: EventLog: item ids must be in \[0, 4\); got "
                                         r"range \[100, 102\]"):
        EventLog.open(path)


def test_manifest_edits_truncation_and_missing_files_are_errors(tmp_path, ml_log):
    path = ml_log.save_store(tmp_path / "store")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["source"] = "edited"
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"manifest\.json: the manifest does not match its content hash"):
        EventLog.open(path)
    path = ml_log.save_store(tmp_path / "store", overwrite=True)
    raw = (path / "timestamps.npy").read_bytes()
    (path / "timestamps.npy").write_bytes(raw[:-8])
    with pytest.raises(StoreError, match=r"timestamps\.npy: \d+ bytes, the manifest says \d+ "
                                         r"\(truncated or replaced\)"):
        EventLog.open(path)
    path = ml_log.save_store(tmp_path / "store", overwrite=True)
    (path / "feedback.npy").unlink()
    with pytest.raises(StoreError, match=r"feedback\.npy: missing from the event store"):
        EventLog.open(path)
    path = ml_log.save_store(tmp_path / "store", overwrite=True)
    n = ml_log.num_events
    np.save(path / "feedback.npy", np.zeros(n, np.uint8))  # same size, another dtype
    with pytest.raises(StoreError, match=rf"feedback\.npy: holds \|u1 \[{n}\], the manifest says "
                                         rf"\|i1 \[{n}\]"):
        EventLog.open(path)
    path = ml_log.save_store(tmp_path / "store", overwrite=True)
    (path / MANIFEST).write_text('{"format": "negrec-event-store", "vers')
    with pytest.raises(StoreError, match=r"manifest\.json: unreadable manifest .*the store is corrupt"):
        EventLog.open(path)
    (path / MANIFEST).write_text('{"format": "something-else"}')
    with pytest.raises(StoreError, match=r"manifest\.json: not a negrec event store manifest"):
        EventLog.open(path)
    with pytest.raises(FileNotFoundError, match="no such event store"):
        EventLog.open(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match=r"not an event store \(no manifest\.json"):
        EventLog.open(tmp_path / "plain")


def test_writing_refuses_to_replace_what_it_did_not_write(tmp_path, ml_log):
    ml_log.save_store(tmp_path / "store")
    with pytest.raises(UserError, match="already exists; pass overwrite=True"):
        ml_log.save_store(tmp_path / "store")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="is not an event store"):
        ml_log.save_store(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_the_store_is_a_data_source(tmp_path, ml_log):
    from negrec.experiments.data import load_data
    from negrec.train.data_spec import DataSpec

    path = ml_log.save_store(tmp_path / "store")
    assert_same_log(load_data(DataSpec(source="store", path=str(path))), ml_log)


OPEN_RSS = """
import resource, sys, time
from negrec.data import EventLog
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
before = rss()
t = time.perf_counter()
log = EventLog.open(sys.argv[1])
seconds = time.perf_counter() - t
log.stats()
print(seconds, rss() - before, log.num_events)
"""


def test_opening_costs_neither_time_nor_memory_in_the_events(tmp_path):
    """A store of 4M events (~70 MB of arrays) opens in a fresh process in well under a second,
    adding a few MB of resident memory (the arrays are mapped, not read); so does stats()."""
    n, users = 4_000_000, 40_000
    rng = np.random.default_rng(0)
    offsets = np.linspace(0, n, users + 1).astype(np.int64)
    from negrec.data import ItemMeta

    log = EventLog(offsets=offsets, items=rng.integers(0, 1000, n), timestamps=np.arange(n),
                   feedback=rng.integers(1, 5, n).astype(np.int8),
                   user_ids=np.arange(users), item_meta=ItemMeta.anonymous(np.arange(1000)))
    path = log.save_store(tmp_path / "big")
    out = subprocess.run([sys.executable, "-c", OPEN_RSS, str(path)], capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    seconds, added_mb, events = float(out[0]), float(out[1]), int(out[2])
    assert events == n
    assert seconds < 1.0, seconds
    assert added_mb < 20, added_mb  # the arrays alone are 68 MB
