"""Pickling a log opened from an event store (negrec.data.log_store): the store's arrays go by
reference (its folder, the array's name, its content hash) and are mapped again where they are
unpickled, so that a DataLoader worker started with ``spawn`` shares the store's pages; a log
built in memory pickles by value, as before. The pickled size of an opened log does not grow
with its events; a split's part adds only what identifies it (O(users))."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from negrec.data import EventLog, ItemMeta, LoadReport, leave_one_out
from negrec.data.store import StoreError

from .loaders.differential import assert_same_log

USERS, ITEMS = 300, 50


def _log(events: int, seed: int = 0) -> EventLog:
    """``events`` events of :data:`USERS` users over :data:`ITEMS` items, with strengths."""
    rng = np.random.default_rng(seed)
    offsets = np.linspace(0, events, USERS + 1).astype(np.int64)
    return EventLog(offsets=offsets, items=rng.integers(0, ITEMS, events),
                    timestamps=np.arange(events),
                    feedback=rng.integers(1, 5, events).astype(np.int8),
                    strength=rng.random(events).astype(np.float32),
                    user_ids=np.array([f"u{k}" for k in range(USERS)]),
                    item_meta=ItemMeta(raw_ids=np.arange(ITEMS) * 10,
                                       cluster=np.arange(ITEMS) % 3, cluster_names=["a", "b", "c"]),
                    source="generated", report=LoadReport("generated", events, events))


def _arrays(log: EventLog) -> dict[str, np.ndarray]:
    return {"offsets": log.offsets, "items": log.items, "timestamps": log.timestamps,
            "feedback": log.feedback, "strength": log.strength, "user_ids": log.user_ids,
            "item_raw_ids": log.item_meta.raw_ids, "item_cluster": log.item_meta.cluster}


def test_an_opened_log_pickles_by_reference_whatever_its_events(tmp_path):
    sizes = []
    for events in (1_000, 100_000):
        log = _log(events)
        opened = EventLog.open(log.save_store(tmp_path / f"s{events:07d}"))
        data = pickle.dumps(opened)
        sizes.append(len(data))
        back = pickle.loads(data)
        assert_same_log(back, log)
        assert back.stats() == opened.stats()
        assert back._stored is not None and back._stored.covers(back)  # recorded checks kept
    # the arrays of the larger one: 2.2 MB; the sizes differ by the counts in report and stats
    assert sizes[1] - sizes[0] < 32 and sizes[1] < 2_000, sizes


def test_a_log_built_in_memory_pickles_by_value(tmp_path):
    log = _log(20_000)
    data = pickle.dumps(log)
    assert len(data) > sum(a.nbytes for a in _arrays(log).values())
    assert_same_log(pickle.loads(data), log)
    # a log of new arrays made from an opened one (a selection) is in memory too
    opened = EventLog.open(log.save_store(tmp_path / "s"))
    kept = opened.select_events(opened.feedback != 1)
    assert len(pickle.dumps(kept)) > kept.items.nbytes
    assert_same_log(pickle.loads(pickle.dumps(kept)), kept)


def test_a_split_part_pickles_what_identifies_it(tmp_path):
    """A part is its rows' bounds (O(users)) and the store's arrays by reference; unpickled, it
    reads the same events (the arrays it made from them are not pickled)."""
    sizes = []
    for events in (3_000, 300_000):
        opened = EventLog.open(_log(events).save_store(tmp_path / f"s{events:07d}"))
        split = leave_one_out(opened)
        for part in (split.train, split.test.history):
            part.items  # noqa: B018 - makes (and keeps) the part's own array of items
            data = pickle.dumps(part)
            back = pickle.loads(data)
            for name, value in _arrays(part).items():
                np.testing.assert_array_equal(_arrays(back)[name], value)
            assert back.lengths().tolist() == part.lengths().tolist()
            assert [back.user_events(u)[0].tolist() for u in range(5)] == \
                [part.user_events(u)[0].tolist() for u in range(5)]
            sizes.append(len(data))
    # 100x the events, the same bytes but for the counts in the report
    assert all(0 <= big - small < 32 for small, big in zip(sizes[:2], sizes[2:])), sizes
    assert max(sizes) < 64 * USERS + 4_000, sizes


def test_copies_of_an_opened_log_are_copies_as_before(tmp_path):
    """copy.copy shares the mapped arrays; copy.deepcopy copies them (references are for
    pickles only)."""
    opened = EventLog.open(_log(2_000).save_store(tmp_path / "s"))
    for log in (opened, leave_one_out(opened).train):
        shallow, deep = copy.copy(log), copy.deepcopy(log)
        assert type(shallow) is type(deep) is type(log)
        assert shallow.event_rows().items is log.event_rows().items
        assert deep.event_rows().items is not log.event_rows().items
        for again in (shallow, deep):
            for name, value in _arrays(log).items():
                np.testing.assert_array_equal(_arrays(again)[name], value)


UNPICKLE = """
import pickle, sys
import numpy as np
log = pickle.load(open(sys.argv[1], "rb"))
print(type(log).__name__, log.num_events, int(np.asarray(log.items, np.int64).sum()),
      type(np.asarray(log.event_rows().items).base).__name__)
"""


def test_another_process_maps_the_store_again_and_refuses_a_store_written_since(tmp_path):
    log = _log(5_000)
    path = log.save_store(tmp_path / "s")
    opened = EventLog.open(path)
    for name, value in (("log", opened), ("part", leave_one_out(opened).train)):
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(value))
    for name, expected in (("log", opened), ("part", leave_one_out(opened).train)):
        out = subprocess.run([sys.executable, "-c", UNPICKLE, str(tmp_path / f"{name}.pkl")],
                             capture_output=True, text=True, timeout=300, check=True).stdout.split()
        assert out == [type(expected).__name__, str(expected.num_events),
                       str(int(expected.items.sum())), "memmap"]
    _log(5_000, seed=1).save_store(path, overwrite=True)
    out = subprocess.run([sys.executable, "-c", UNPICKLE, str(tmp_path / "log.pkl")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "StoreError" in out.stderr and "written again since this log was pickled" in out.stderr


def test_an_unpickled_reference_to_a_store_written_again_is_an_error(tmp_path):
    from negrec.data import store

    opened = EventLog.open(_log(100).save_store(tmp_path / "s"))
    ref = store.reference(opened.items)
    assert isinstance(ref, store.MappedArray)
    stale = store.MappedArray(ref.folder, ref.name, "sha256:" + "0" * 64)
    with pytest.raises(StoreError, match="written again since this log was pickled"):
        pickle.loads(pickle.dumps(stale))


SPAWNED_LOADER = """
import pickle, sys
import numpy as np
import torch
from negrec.data import CollateConfig, Collator, EventLog, leave_one_out

opened = EventLog.open(sys.argv[1])
for log in (opened, leave_one_out(opened).train):
    collator = Collator(log, CollateConfig(max_len=8))
    assert len(pickle.dumps(collator)) < 64 * log.num_users + 8_000, len(pickle.dumps(collator))
    users = list(range(log.num_users))
    one = list(torch.utils.data.DataLoader(users, batch_size=64, collate_fn=collator))
    spawned = list(torch.utils.data.DataLoader(users, batch_size=64, collate_fn=collator,
                                               num_workers=2, multiprocessing_context="spawn"))
    assert len(one) == len(spawned) > 1
    for a, b in zip(one, spawned):
        for name, value in vars(a).items():
            other = getattr(b, name)
            assert (value is None and other is None) or torch.equal(value, other), name
print("same batches")
"""


def test_a_spawned_dataloader_over_a_store_gives_the_batches_of_one_process(tmp_path, native):
    """Run in a fresh interpreter (a spawned worker imports the package from sys.path)."""
    path = _log(20_000).save_store(tmp_path / "s")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(SPAWNED_LOADER), str(path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "same batches"
