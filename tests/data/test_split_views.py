"""The parts of a split are views of the split log's arrays (negrec.data.log_view), and nothing
that consumes them can tell: every array, count, statistic, collated batch, training run and
metric equals what the split gave when it copied its parts (the oracle below is that code);
and splitting an opened event store adds next to no private memory."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import one_model_objective
from negrec.data import (CollateConfig, Collator, EventLog, Feedback, HeldOut, ItemMeta,
                         PopularitySampler, UniformSampler, leave_last_out, leave_one_out,
                         time_split)
from negrec.data.collate_reference import collate_python
from negrec.data.log_view import EventLogView
from negrec.data.split import Split
from negrec.eval import evaluate
from negrec.eval.recommender import from_model
from negrec.models import ModelConfig
from negrec.train import LossConfig, OptimConfig, TrainConfig, Trainer, training_windows

ARRAYS = ("offsets", "items", "timestamps", "feedback", "strength", "user_ids")


# ---- the oracle: the split as it was made before, its parts copied ------------------------

def _copied_held_out(log: EventLog, users, event_idx) -> HeldOut:
    users = np.asarray(users, dtype=np.int64)
    event_idx = np.asarray(event_idx, dtype=np.int64)
    starts = log.offsets[users]
    lengths = event_idx - starts
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    history = EventLog(offsets=offsets, items=log.items[idx], timestamps=log.timestamps[idx],
                       feedback=log.feedback[idx],
                       strength=None if log.strength is None else log.strength[idx],
                       user_ids=log.user_ids[users], item_meta=log.item_meta, source=log.source,
                       report=log.report)
    return HeldOut(users=users, items=log.items[event_idx], feedback=log.feedback[event_idx],
                   timestamps=log.timestamps[event_idx], history=history)


def copied_split(log: EventLog, kind: str) -> Split:
    lengths = log.lengths()
    if kind == "time":
        t_valid, t_test = np.quantile(log.timestamps, [0.8, 0.9])
        train = log.select_events(log.timestamps < t_valid, source=log.source + " [train]")

        def window(lo, hi):
            users, idx = [], []
            for u in range(log.num_users):
                s = log.user_slice(u)
                inside = np.flatnonzero((log.timestamps[s] >= lo) & (log.timestamps[s] < hi))
                if len(inside) and inside[0] > 0:
                    users.append(u)
                    idx.append(s.start + inside[0])
            return _copied_held_out(log, np.asarray(users, np.int64), np.asarray(idx, np.int64))
        return Split(train, window(t_valid, t_test), window(t_test, np.inf), "time_split")
    n = 1 if kind == "loo" else 2
    users = np.flatnonzero(lengths >= 2 * n + 1)
    idx = log.offsets[users + 1][:, None] - np.arange(2 * n, 0, -1)[None, :]
    keep = np.ones(log.num_events, dtype=bool)
    keep[idx.ravel()] = False
    train = log.select_events(keep, source=log.source + " [train]")
    rep = np.repeat(users, n)
    return Split(train, _copied_held_out(log, rep, idx[:, :n].ravel()),
                 _copied_held_out(log, rep, idx[:, n:].ravel()),
                 "leave_one_out" if n == 1 else "leave_last_2_out",
                 int((lengths < 2 * n + 1).sum()))


def new_split(log: EventLog, kind: str) -> Split:
    return {"loo": leave_one_out, "last2": lambda lg: leave_last_out(lg, 2),
            "time": time_split}[kind](log)


# ---- logs -----------------------------------------------------------------------------------

def random_log(seed: int = 0, users: int = 60, events: int = 1500, items: int = 40) -> EventLog:
    """Users with 0..~50 events, all four feedback types, a strength, ties in time."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, users, events)
    who[:5] = users + 1  # a user with 5 events, and users with none (dense ids are kept)
    log = EventLog.from_events(who, rng.integers(0, items, events), rng.integers(0, 300, events),
                               rng.choice([1, 1, 1, 2, 3, 4], events), strength=rng.random(events),
                               item_meta=ItemMeta.anonymous(np.arange(items)), source="random")
    return log


@pytest.fixture(params=["memory", "store"])
def log(request, tmp_path):
    made = random_log()
    return made if request.param == "memory" else EventLog.open(made.save_store(tmp_path / "s"))


def assert_same_log(got: EventLog, want: EventLog) -> None:
    for name in ARRAYS:
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.num_users == want.num_users and got.num_events == want.num_events
    assert got.source == want.source and got.report == want.report
    np.testing.assert_array_equal(got.item_meta.raw_ids, want.item_meta.raw_ids)
    np.testing.assert_array_equal(got.item_meta.cluster, want.item_meta.cluster)
    np.testing.assert_array_equal(got.lengths(), want.lengths())
    for fb in ([Feedback.POSITIVE], [Feedback.POSITIVE, Feedback.DISLIKE], None):
        np.testing.assert_array_equal(got.lengths(fb), want.lengths(fb))
        np.testing.assert_array_equal(got.item_counts(fb), want.item_counts(fb))
    assert got.feedback_counts() == want.feedback_counts()
    assert got.stats() == want.stats()
    for u in range(want.num_users):
        for a, b in zip(got.user_events(u), want.user_events(u)):
            np.testing.assert_array_equal(a, b)


def assert_same_held_out(got: HeldOut, want: HeldOut) -> None:
    for name in ("users", "items", "feedback", "timestamps"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert_same_log(got.history, want.history)


# ---- the parts --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["loo", "last2", "time"])
def test_the_parts_equal_the_copied_parts_and_share_the_logs_arrays(log, kind):
    split, want = new_split(log, kind), copied_split(log, kind)
    assert (split.kind, split.skipped_users) == (want.kind, want.skipped_users)
    assert_same_log(split.train, want.train)
    assert_same_held_out(split.valid, want.valid)
    assert_same_held_out(split.test, want.test)
    for part in (split.train, split.valid.history, split.test.history):
        assert isinstance(part, EventLogView)
        assert part.event_rows().items is log.items and part.event_rows().feedback is log.feedback


def test_a_time_split_whose_training_events_are_no_prefix_copies_them():
    """Times out of order within a user (an EventLog built from arrays as they are): the events
    before the time cut are not each user's first events; the training part is then a copy."""
    log = EventLog(offsets=np.array([0, 4, 8]), items=np.arange(8),
                   timestamps=np.array([1, 9, 2, 3, 4, 5, 6, 7]), feedback=np.ones(8, np.int8),
                   user_ids=np.array([0, 1]), item_meta=ItemMeta.anonymous(np.arange(8)))
    split, want = time_split(log), copied_split(log, "time")
    assert not isinstance(split.train, EventLogView)
    assert_same_log(split.train, want.train)


def test_splitting_a_part_again_equals_splitting_its_copy(log):
    part = leave_one_out(log).train
    plain = dataclasses.replace(part)  # an EventLog of new arrays
    assert type(plain) is EventLog
    for kind in ("loo", "last2", "time"):
        got, want = new_split(part, kind), copied_split(plain, kind)
        assert_same_log(got.train, want.train)
        assert_same_held_out(got.test, want.test)
    assert_same_log(part.select_users(np.array([3, 0, 3])), plain.select_users(np.array([3, 0, 3])))


def test_a_view_reads_as_a_log_but_its_arrays_cannot_change(log):
    train = leave_one_out(log).train
    for name in ("items", "feedback", "offsets", "strength"):
        with pytest.raises(AttributeError, match="cannot be replaced"):
            setattr(train, name, getattr(train, name))
        if getattr(train, name) is not None:
            assert not getattr(train, name).flags.writeable, name
    assert train.items is train.items  # made once
    placebo = dataclasses.replace(train, feedback=train.feedback[::-1].copy())  # a new log
    assert type(placebo) is EventLog and placebo.feedback.flags.writeable
    np.testing.assert_array_equal(placebo.feedback, train.feedback[::-1])
    np.testing.assert_array_equal(placebo.items, train.items)
    for again in (pickle.loads(pickle.dumps(train)), copy.copy(train), copy.deepcopy(train)):
        assert isinstance(again, EventLogView)
        assert_same_log(again, train)
    assert repr(train).startswith(f"EventLogView(users={train.num_users}, ")


# ---- what consumes them -----------------------------------------------------------------------

def _batches(log: EventLog, users, ends, with_targets: bool) -> list:
    config = CollateConfig(max_len=7, random_crop=with_targets,
                           input_feedback=(Feedback.POSITIVE, Feedback.SKIP, Feedback.DISLIKE))
    collator = Collator(log, config, with_targets=with_targets,
                        sampler=PopularitySampler(log.item_counts(), 16) if with_targets else None,
                        ntr_sampler=UniformSampler(log.num_items, 4) if with_targets else None,
                        generator=torch.Generator().manual_seed(3))
    return [collator(users[b:b + 50], None if ends is None else torch.from_numpy(ends[b:b + 50]))
            for b in range(0, len(users), 50)]


def _assert_same_batches(got: list, want: list) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        for name, value in vars(b).items():
            other = getattr(a, name)
            if isinstance(value, torch.Tensor):
                assert torch.equal(other, value), name
            else:
                assert other == value, name


@pytest.mark.parametrize("kind", ["loo", "last2"])
def test_collated_batches_equal_those_of_the_copied_parts(log, kind, native):
    split, want = new_split(log, kind), copied_split(log, kind)
    events = (Feedback.POSITIVE, Feedback.SKIP, Feedback.DISLIKE)
    for rng_seed in (None, 5):  # the epochs' windows, fixed and shifted
        rng = lambda: None if rng_seed is None else np.random.default_rng(rng_seed)  # noqa: E731
        users, ends = training_windows(split.train, events, 7, rng())
        users_w, ends_w = training_windows(want.train, events, 7, rng())
        np.testing.assert_array_equal(users, users_w)
        np.testing.assert_array_equal(ends, ends_w)
        _assert_same_batches(_batches(split.train, users, ends, True),
                             _batches(want.train, users, ends, True))
    for got, wanted in ((split.valid, want.valid), (split.test, want.test)):
        rows = np.arange(len(wanted))
        _assert_same_batches(_batches(got.history, rows, None, False),
                             _batches(wanted.history, rows, None, False))
    config = CollateConfig(max_len=7)
    rows = np.arange(len(want.test))
    _assert_same_batches([collate_python(split.test.history, rows, config, False)],
                         [collate_python(want.test.history, rows, config, False)])
    u = split.train.num_users
    with pytest.raises(ValueError,
                       match=rf"^collate: users\[1\] = {u} is out of range \[0, {u}\)$"):
        Collator(split.train)([0, u])


def test_a_short_training_run_and_its_metrics_equal_those_of_the_copied_parts(tmp_path):
    from negrec.sim import SimConfig, Simulator

    log, _ = Simulator(SimConfig(num_items=120, num_clusters=6, num_creators=30, num_users=80,
                                 events_per_user=25), seed=0).generate()
    split, want = leave_one_out(log), copied_split(log, "loo")
    config = TrainConfig(model=ModelConfig(kind="sasrec", dim=16, num_layers=1, num_heads=2,
                                           dropout=0.1, max_len=12),
                         loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=32),
                         optim=OptimConfig(lr=3e-3, warmup_steps=2), epochs=2, batch_size=16,
                         random_crop=True, progress=False, tensorboard=False, eval_every=0,
                         objective=one_model_objective())
    runs = []
    for name, part in (("view", split), ("copy", want)):
        trainer = Trainer(config, part.train, tmp_path / name)
        trainer.fit()
        inputs = config.objective.inputs
        metrics = {held: evaluate(from_model(trainer.model, inputs), getattr(part, held),
                                  bootstrap=50).to_dict() for held in ("valid", "test")}
        runs.append((trainer.model.state_dict(), trainer.step, metrics))
    (weights, steps, metrics), (weights_w, steps_w, metrics_w) = runs
    assert steps == steps_w > 0
    for name in weights_w:
        assert torch.equal(weights[name], weights_w[name]), name
    assert metrics == metrics_w


# ---- memory -----------------------------------------------------------------------------------

SPLIT_RSS = """
import sys
import numpy as np
from negrec.data import EventLog, leave_one_out
from negrec.train import training_windows

def private_mb():  # resident memory of this process's own (anonymous) pages
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

log = EventLog.open(sys.argv[1])
arrays_mb = sum(a.nbytes for a in (log.offsets, log.items, log.timestamps, log.feedback)) / 2**20
before = private_mb()
split = leave_one_out(log)
after_split = private_mb()
split.train.item_counts(), split.train.feedback_counts(), split.test.history.lengths()
training_windows(split.train, (1, 2, 3, 4), 50)
print(after_split - before, private_mb() - before, arrays_mb, split.train.num_events)
"""


def test_splitting_an_opened_store_adds_next_to_no_private_memory(tmp_path):
    """4M events of 40k users in a store (65 MB of event arrays): leave-one-out in a fresh
    process adds 6 MB of the process's own memory (O(users)); the counts and the training
    windows read from its parts 4 MB more (chunks of events, not copies). Before, the split
    copied its parts: 251 MB, and 311 MB with the counts and windows. (The pages of the mapped
    files that the held-out events touch are the page cache's, shared by every process that
    opens the store: not measured here.)"""
    n, users = 4_000_000, 40_000
    rng = np.random.default_rng(0)
    log = EventLog(offsets=np.linspace(0, n, users + 1).astype(np.int64),
                   items=rng.integers(0, 1000, n), timestamps=np.arange(n),
                   feedback=rng.integers(1, 5, n).astype(np.int8), user_ids=np.arange(users),
                   item_meta=ItemMeta.anonymous(np.arange(1000)))
    path = log.save_store(tmp_path / "big")
    del log
    out = subprocess.run([sys.executable, "-c", SPLIT_RSS, str(path)], capture_output=True,
                         text=True, timeout=600, check=True).stdout.split()
    split_mb, used_mb, arrays_mb, train_events = map(float, out)
    assert train_events == n - 2 * users
    assert split_mb < 0.1 * arrays_mb, (split_mb, arrays_mb)
    # reading the parts in chunks of 1M events leaves ~10 MB with the allocator
    assert used_mb < 0.25 * arrays_mb, (used_mb, arrays_mb)
