"""The native collator against the Python reference (and the vectorized torch version), its
input validation, DataLoader use, and the negative samplers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from negrec.data import (Batch, CollateConfig, Collator, EventLog, Feedback, PopularitySampler,
                         TargetRule, UniformSampler)
from negrec.data.collate_reference import VectorizedCollator, collate_python

FIELDS = ("input_items", "input_feedback", "mask", "lengths", "target_items", "target_labels",
          "target_weights")


@st.composite
def logs(draw):
    """Random logs with empty users, short and long users and all-negative users."""
    num_items = draw(st.integers(1, 30))
    lengths = draw(st.lists(st.integers(0, 25), min_size=1, max_size=12))
    all_negative = draw(st.booleans())
    users, items, ts, fb = [], [], [], []
    for u, n in enumerate(lengths):
        for t in range(n):
            users.append(u)
            items.append(draw(st.integers(0, num_items - 1)))
            ts.append(t)
            codes = [3, 4] if (all_negative and u == 0) else [1, 2, 3, 4]
            fb.append(draw(st.sampled_from(codes)))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    from negrec.data.log import ItemMeta

    return EventLog(offsets=offsets, items=np.asarray(items, np.int64),
                    timestamps=np.asarray(ts, np.int64), feedback=np.asarray(fb, np.int8),
                    user_ids=np.arange(len(lengths)),
                    item_meta=ItemMeta.anonymous(np.arange(num_items)))


configs = st.builds(
    lambda L, allowed, pos_w, dis, skip, neu, left: CollateConfig(
        max_len=L, input_feedback=frozenset(allowed), left_pad=left,
        targets={Feedback.POSITIVE: TargetRule(1, pos_w), Feedback.DISLIKE: TargetRule(dis, 2.0),
                 Feedback.SKIP: TargetRule(skip, 0.5), Feedback.NEUTRAL: TargetRule(neu, 1.0)}),
    st.integers(1, 12),
    st.sets(st.sampled_from([Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.SKIP, Feedback.DISLIKE]),
            min_size=1),
    st.floats(0.0, 3.0), st.sampled_from([-1, 0]), st.sampled_from([-1, 0]),
    st.sampled_from([0, 1]), st.booleans())


def assert_batches_equal(a: Batch, b: Batch, with_targets=True):
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if not with_targets and f.startswith("target"):
            assert x is None and y is None
            continue
        assert x.dtype == y.dtype, f
        assert torch.equal(x, y), f"{f}:\n{x}\n{y}"


@given(log=logs(), config=configs, with_targets=st.booleans(), data=st.data())
def test_native_matches_reference(native, log, config, with_targets, data):
    users = data.draw(st.lists(st.integers(0, log.num_users - 1), min_size=0, max_size=10))
    use_ends = data.draw(st.booleans())
    ends = [data.draw(st.integers(-1, 30)) for _ in users] if use_ends else None
    got = Collator(log, config, with_targets=with_targets)(users, ends=ends)
    want = collate_python(log, users, config, with_targets=with_targets, ends=ends)
    assert_batches_equal(got, want, with_targets)
    if not use_ends:
        vec = VectorizedCollator(log, config, with_targets=with_targets)(users)
        assert_batches_equal(vec, want, with_targets)


def test_semantics_on_a_hand_built_log(native):
    # user 0: A+ B- C(neutral) D+ ; inputs without dislikes; labels +1 positive, -1 dislike
    log = EventLog.from_events([0, 0, 0, 0], [0, 1, 2, 3], [0, 1, 2, 3], [1, 4, 2, 1])
    cfg = CollateConfig(max_len=4, targets={Feedback.POSITIVE: TargetRule(1, 1.0),
                                            Feedback.DISLIKE: TargetRule(-1, 3.0)})
    b = Collator(log, cfg)([0])
    # inputs A B C, targets B C D; left padded to 4
    assert b.input_items.tolist() == [[4, 0, 1, 2]]
    assert b.input_feedback.tolist() == [[0, 1, 4, 2]]
    assert b.target_items.tolist() == [[4, 1, 2, 3]]
    assert b.target_labels.tolist() == [[0, -1, 0, 1]]
    assert b.target_weights.tolist() == [[0.0, 3.0, 0.0, 1.0]]
    assert b.mask.tolist() == [[False, True, True, True]] and b.lengths.tolist() == [3]
    # filter dislikes from the inputs: they are neither inputs nor targets
    no_dis = CollateConfig(max_len=4, input_feedback=frozenset({Feedback.POSITIVE, Feedback.NEUTRAL}))
    b = Collator(log, no_dis)([0])
    assert b.input_items.tolist() == [[4, 4, 0, 2]] and b.target_items.tolist() == [[4, 4, 2, 3]]
    # inference: the last L events, no targets; right padding
    b = Collator(log, CollateConfig(max_len=6, left_pad=False), with_targets=False)([0])
    assert b.input_items.tolist() == [[0, 1, 2, 3, 4, 4]] and b.target_items is None


def test_random_crop_windows(native):
    n = 30
    log = EventLog.from_events([0] * n, list(range(n)), list(range(n)), [1] * n)
    cfg = CollateConfig(max_len=5, random_crop=True)
    g = torch.Generator().manual_seed(0)
    col = Collator(log, cfg, generator=g)
    starts = set()
    for _ in range(200):
        b = col([0])
        x = b.input_items[0].tolist()
        assert x == list(range(x[0], x[0] + 5))  # a contiguous window of 5 inputs
        assert b.target_items[0].tolist() == [v + 1 for v in x]
        starts.add(x[0])
    assert starts == set(range(0, n - 5))  # every window occurs
    # reproducible with the same generator seed
    a = Collator(log, cfg, generator=torch.Generator().manual_seed(7))([0, 0, 0])
    b = Collator(log, cfg, generator=torch.Generator().manual_seed(7))([0, 0, 0])
    assert torch.equal(a.input_items, b.input_items)


def test_threads_do_not_change_results(native):
    rng = np.random.default_rng(0)
    n = 5000
    log = EventLog.from_events(rng.integers(0, 300, n), rng.integers(0, 100, n), rng.integers(0, 50, n),
                               rng.integers(1, 5, n))
    cfg = CollateConfig(max_len=20, random_crop=True)
    users = rng.integers(0, 300, 512)
    a = Collator(log, cfg, threads=1, generator=torch.Generator().manual_seed(3))(users)
    b = Collator(log, cfg, threads=4, generator=torch.Generator().manual_seed(3))(users)
    assert_batches_equal(a, b)


def test_input_validation(native):
    log = EventLog.from_events([0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 4])
    col = Collator(log, CollateConfig(max_len=3))
    with pytest.raises(ValueError, match=r"users\[1\] = 5 is out of range \[0, 2\)"):
        col([0, 5])
    with pytest.raises(ValueError, match=r"users must be a 1-D list"):
        col([[0]])
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        CollateConfig(max_len=0)
    with pytest.raises(ValueError, match="TargetRule.label must be -1, 0 or \\+1"):
        TargetRule(2)
    # corrupt the arrays behind a collator: offsets, items, codes
    bad = Collator(log, CollateConfig(max_len=3))
    bad._offsets = torch.tensor([0, 3, 2])
    with pytest.raises(ValueError, match="offsets of user 1 are invalid"):
        bad([1])
    bad = Collator(log, CollateConfig(max_len=3))
    bad._items = torch.tensor([0, 7, 1])
    with pytest.raises(ValueError, match=r"items\[1\] = 7 is out of range \[0, 2\)"):
        bad([0])
    bad = Collator(log, CollateConfig(max_len=3, input_feedback=frozenset({Feedback.POSITIVE})))
    bad._feedback = torch.tensor([1, 9, 1], dtype=torch.int8)
    with pytest.raises(ValueError, match=r"feedback\[1\] = 9 is not a feedback code"):
        bad([0])
    with pytest.raises(TypeError, match="items must be int64"):
        native.collate(torch.tensor([0, 1]), torch.tensor([0], dtype=torch.int32),
                       torch.tensor([1], dtype=torch.int8), torch.tensor([0]), None, 2, 2, True, 2,
                       [False, True, True, True, True], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0], False,
                       True, 0, 1)


def test_dataloader_with_workers_and_pickle(native):
    rng = np.random.default_rng(1)
    n = 3000
    log = EventLog.from_events(rng.integers(0, 200, n), rng.integers(0, 80, n), rng.integers(0, 40, n),
                               rng.integers(1, 5, n))
    cfg = CollateConfig(max_len=16)
    col = Collator(log, cfg, sampler=UniformSampler(80, 32))
    col2 = pickle.loads(pickle.dumps(col))
    users = list(range(200))
    assert_batches_equal(col(users[:50]), col2(users[:50]))
    loader = torch.utils.data.DataLoader(users, batch_size=64, collate_fn=col, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert [len(b.users) for b in batches] == [64, 64, 64, 8]
    for b in batches:
        assert_batches_equal(b, collate_python(log, b.users.tolist(), cfg))
        assert b.neg_ids.shape == (32,) and b.neg_logq.dtype == torch.float32
        assert b.target_logq.shape == b.target_items.shape


# ---- samplers -----------------------------------------------------------------------------


def test_collator_refuses_non_integer_users_and_ends():
    log = EventLog.from_events([0, 0, 1], [0, 1, 2], [0, 1, 2], [1, 1, 1])
    c = Collator(log, CollateConfig(max_len=4))
    with pytest.raises(TypeError, match="users must be integers; got dtype float64"):
        c([0, 1.7])
    with pytest.raises(TypeError, match="ends must be integers; got dtype float32"):
        c([0, 1], ends=torch.tensor([1.0, 1.0]))
    assert c(np.array([1, 0], dtype=np.int32)).users.tolist() == [1, 0]


# ---- without the compiled extension: the pure-PyTorch reference, with one warning ----------------

def test_without_the_extension_the_collator_builds_the_same_batches_with_a_warning(monkeypatch):
    from negrec import _extension

    rng = np.random.default_rng(3)
    n = 200
    log = EventLog.from_events(rng.integers(0, 12, n), rng.integers(0, 30, n), np.arange(n),
                               rng.integers(1, 5, n))
    config = CollateConfig(max_len=5, input_feedback=frozenset(
        {Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.SKIP}),
        targets={Feedback.POSITIVE: TargetRule(1, 1.0), Feedback.SKIP: TargetRule(-1, 0.5)})
    users, ends = np.arange(12), torch.tensor([-1, 3] * 6)
    for with_targets in (True, False):
        native = Collator(log, config, with_targets=with_targets)(users, ends)
        monkeypatch.setattr(_extension, "_C", None)
        monkeypatch.setattr(_extension, "_warned", set())
        with pytest.warns(RuntimeWarning, match=r"negrec.data.Collator: .*; using "
                                                r"negrec.data.collate_reference.collate_python"):
            fallback = Collator(log, config, with_targets=with_targets)(users, ends)
        monkeypatch.undo()
        assert_batches_equal(native, fallback, with_targets)


def test_without_the_extension_the_popularity_sampler_draws_with_multinomial(monkeypatch):
    from negrec import _extension

    monkeypatch.setattr(_extension, "_C", None)
    monkeypatch.setattr(_extension, "_warned", set())
    sampler = PopularitySampler(np.array([10.0, 30.0]), 4000, alpha=1.0, smoothing=0.0)
    with pytest.warns(RuntimeWarning, match="negrec.data.PopularitySampler: .*torch.multinomial"):
        ids, logq = sampler.sample(None, torch.Generator().manual_seed(0))
    # 4,000 draws: the share of item 1 is 0.75 within ~4.6 standard errors (0.0068 each)
    assert set(ids.tolist()) <= {0, 1} and abs((ids == 1).float().mean().item() - 0.75) < 0.03
    torch.testing.assert_close(logq, sampler.log_prob(ids))
