"""The trainer: learning, exact resume, checkpoints, NaN handling, configs, and 2-process DDP
equal to 1 process on the same global batch."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from helpers import one_model_objective
from negrec.data import leave_one_out
from negrec.eval import evaluate
from negrec.eval.recommender import from_checkpoint, from_model
from negrec.train.checkpoint import load_checkpoint
from negrec.sim import SimConfig, Simulator
from negrec.train import (LossConfig, NonFiniteLossError, OptimConfig, TrainConfig, Trainer,
                          load_config, training_windows)
from negrec.errors import UserError
from negrec.models import ModelConfig

SIM = SimConfig(num_items=200, num_clusters=8, num_creators=40, num_users=150, events_per_user=30)


@pytest.fixture(scope="module")
def sim_split():
    log, _ = Simulator(SIM, seed=0).generate()
    return leave_one_out(log)


def small_config(**kw) -> TrainConfig:
    base = dict(objective=one_model_objective(), model=ModelConfig(kind="sasrec", dim=16, num_layers=1, num_heads=2, dropout=0.0,
                                  max_len=12),
                loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=48),
                optim=OptimConfig(lr=3e-3, warmup_steps=3), epochs=2, batch_size=32,
                progress=False, tensorboard=False, eval_every=0)
    base.update(kw)
    return TrainConfig(**base)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_windows_tile_every_target(sim_split):
    obj = small_config().objective
    users, ends = training_windows(sim_split.train, obj.inputs.events, 12)
    lengths = sim_split.train.lengths()
    for u in range(sim_split.train.num_users):
        e = ends[users == u]
        # windows of 12 targets from the end: targets 1..n-1 each covered once
        covered = sorted(t for end in e for t in range(max(1, end - 12), end))
        assert covered == list(range(1, lengths[u]))
    # shifted per epoch: every target still covered, windows differ between epochs
    shifted = [training_windows(sim_split.train, obj.inputs.events, 12, np.random.default_rng(s))
               for s in (1, 2)]
    for users_s, ends_s in shifted:
        for u in range(sim_split.train.num_users):
            covered = {t for end in ends_s[users_s == u] for t in range(max(1, end - 12), end)}
            assert covered == set(range(1, lengths[u]))
    assert not np.array_equal(shifted[0][1], shifted[1][1])


def test_learns_and_checkpoint_is_self_contained(sim_split, tmp_path):
    cfg = small_config(epochs=4, eval_every=1, loss=LossConfig(mode="full"))
    obj = cfg.objective.inputs
    untrained = Trainer(cfg, sim_split.train, tmp_path / "u")
    before = evaluate(from_model(untrained.model, obj), sim_split.valid, bootstrap=10).metrics["ndcg@10"]
    res = Trainer(cfg, sim_split.train, tmp_path / "run",
                  validate=lambda m: evaluate(from_model(m, obj), sim_split.valid, bootstrap=10).metrics).fit()
    fresh = Trainer(cfg, sim_split.train, tmp_path / "x")  # windows differ per epoch
    assert res.steps == sum(math.ceil(len(fresh._windows(e)[0]) / cfg.batch_size) for e in range(4))
    assert res.best_metric > 2 * before  # the simulator's tastes are learnable
    assert res.targets_per_s > 0 and res.sequences_per_s > 0
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.csv"):
        assert (tmp_path / "run" / name).exists(), name
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.objective.name == "input_ntr" and ck.item_meta.num_items == 200
    assert ck.item_meta.creator is not None and len(ck.user_ids) == 150
    again = evaluate(from_checkpoint(ck), sim_split.valid, bootstrap=10).metrics["ndcg@10"]
    assert again == pytest.approx(res.best_metric)
    cfg_back = load_config(tmp_path / "run" / "config.yaml")
    assert cfg_back.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("kind,embeddings", [("sasrec", "dense"), ("gru", "dense"),
                                              ("sasrec", "sparse")])
def test_resume_reproduces_the_uninterrupted_run(sim_split, tmp_path, kind, embeddings):
    model = ModelConfig(kind=kind, dim=16, num_layers=1, num_heads=2, dropout=0.1, max_len=12)
    optim = OptimConfig(lr=3e-3, warmup_steps=3, embeddings=embeddings)
    straight = Trainer(small_config(model=model, random_crop=True, optim=optim), sim_split.train,
                       tmp_path / "a")
    straight.fit()
    k = straight.steps_per_epoch + 2  # stop in the middle of the second epoch
    first = Trainer(small_config(model=model, random_crop=True, max_steps=k, optim=optim),
                    sim_split.train, tmp_path / "b")
    r1 = first.fit()
    assert r1.stopped_by_time and r1.steps == k
    resumed = Trainer(small_config(model=model, random_crop=True, optim=optim), sim_split.train,
                      tmp_path / "b", resume=True)
    assert resumed.embedding_update == embeddings
    assert resumed.step == k
    resumed.fit()
    a, b = params(straight.model), params(resumed.model)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("kind,embeddings", [("sasrec", "dense"), ("gru", "dense"),
                                              ("sasrec", "sparse")])
def test_two_runs_at_two_threads_are_bit_identical(tmp_path, kind, embeddings):
    """Training is deterministic with several threads: the gathers of the training path
    (feedback gains, item table rows for targets and negatives, side tables) sum the gradients
    of repeated ids in a fixed order. Sizes are large enough that the CPU kernels run in
    parallel (advanced indexing's backward did, in a thread-dependent order: two runs differed
    by up to 2e-5 after 8 steps). Sparse row updates coalesce their gradients in a fixed order
    too."""
    log, _ = Simulator(SimConfig(num_items=300, num_clusters=8, num_creators=40, num_users=400,
                                 events_per_user=40), seed=0).generate()
    train = leave_one_out(log).train
    cfg = small_config(model=ModelConfig(kind=kind, dim=32, num_layers=1, num_heads=2, dropout=0.1,
                                         max_len=40, cluster_input=True, creator_input=True),
                       loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=256),
                       optim=OptimConfig(lr=3e-3, warmup_steps=3, embeddings=embeddings),
                       batch_size=64, epochs=1, max_steps=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for name in ("a", "b"):
            t = Trainer(cfg, train, tmp_path / name)
            assert t.embedding_update == embeddings
            t.fit()
            runs.append(params(t.model))
    finally:
        torch.set_num_threads(threads)
    a, b = runs
    for name in a:
        assert torch.equal(a[name], b[name]), (name, (a[name] - b[name]).abs().max().item())


def test_sparse_updates_change_only_the_rows_of_the_batch(sim_split, tmp_path, monkeypatch):
    """With optim.embeddings = sparse a step never builds the [V, D] item table nor a dense
    gradient of it, and changes only the item rows its inputs, targets and candidates (the
    softmax's and the NTR rows' own) use (dense AdamW steps every row along its momentum)."""
    model = ModelConfig(kind="sasrec", dim=16, num_layers=1, num_heads=2, dropout=0.0,
                        max_len=12, cluster_input=True, creator_input=True)
    rows_changed = {}
    for update in ("dense", "sparse"):
        t = Trainer(small_config(model=model, optim=OptimConfig(warmup_steps=0,
                                                                embeddings=update)),
                    sim_split.train, tmp_path / update)

        def no_table():
            raise AssertionError("a training step built the whole item table")

        monkeypatch.setattr(t.model, "item_table", no_table)
        table = t.model.embed.item.weight
        for step, window in enumerate((slice(0, 16), slice(16, 32))):
            batch = t.collator(t.window_users[window], ends=torch.from_numpy(t.window_ends[window]))
            before = table.detach().clone()
            t._train_step(batch)
            assert table.grad.is_sparse == (update == "sparse")
        assert batch.ntr_neg_ids is not None  # the NTR rows' own candidates (the default)
        used = torch.unique(torch.cat([batch.input_items[batch.mask],
                                       batch.target_items[batch.target_labels != 0],
                                       batch.neg_ids, batch.ntr_neg_ids]))
        changed = torch.nonzero((table.detach() != before).any(1))[:, 0]
        rows_changed[update] = set(changed.tolist()) - set(used.tolist())
        assert len(changed) > 0
    assert rows_changed["sparse"] == set()
    assert rows_changed["dense"]  # rows of the first batch only, moved by their momentum


def test_auto_embeddings_keep_the_update_a_run_started_with(sim_split, tmp_path, monkeypatch):
    """optim.embeddings = auto resolves once per run: a resumed run keeps its checkpoint's
    update (dense for checkpoints written before the option), whatever auto would pick now."""
    import negrec.train.optim as optim

    monkeypatch.setattr(optim, "SPARSE_FROM_ITEMS", 100)  # the 200-item catalogue is "large"
    cfg = small_config(max_steps=3)
    first = Trainer(cfg, sim_split.train, tmp_path / "r")
    assert first.embedding_update == "sparse"
    first.fit()
    monkeypatch.setattr(optim, "SPARSE_FROM_ITEMS", 10**6)
    resumed = Trainer(small_config(max_steps=5), sim_split.train, tmp_path / "r", resume=True)
    assert resumed.embedding_update == "sparse"
    assert all(t.sparse for t in resumed.model.row_tables())
    resumed.fit()
    assert resumed.step == 5
    monkeypatch.setattr(optim, "SPARSE_FROM_ITEMS", 100)
    before_option = {"train_state": {"optimizer": {}}}  # a checkpoint without the record
    assert resumed._embedding_update(before_option) == "dense"
    assert resumed._embedding_update(None) == "sparse"


def test_nan_loss_stops_with_a_clear_error(sim_split, tmp_path, monkeypatch):
    import negrec.train.trainer as trainer_mod

    calls = {"n": 0}
    real = trainer_mod.batch_loss

    def poisoned(*args, **kw):
        parts = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 3:
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(trainer_mod, "batch_loss", poisoned)
    t = Trainer(small_config(checkpoint_every=1), sim_split.train, tmp_path / "n")
    with pytest.raises(NonFiniteLossError, match="the loss became nan at step 2"):
        t.fit()
    ck = torch.load(tmp_path / "n" / "last.pt", weights_only=True)
    assert ck["train_state"]["step"] == 2  # the last good step's checkpoint is kept
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    from negrec.data import leave_one_out
    from negrec.sim import SimConfig, Simulator
    from negrec.train import TrainConfig, Trainer, LossConfig, OptimConfig
    from negrec.models import ModelConfig
    from negrec.train.objectives import Objective
    out = sys.argv[1]
    log, _ = Simulator(SimConfig(num_items=200, num_clusters=8, num_creators=40, num_users=150,
                                 events_per_user=30), seed=0).generate()
    split = leave_one_out(log)
    cfg = TrainConfig(model=ModelConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0, max_len=12),
                      loss=LossConfig(mode="sampled", sampler="uniform", num_negatives=64),
                      # Adam turns round-off-sized gradients (e.g. of the attention's key bias,
                      # whose true gradient is 0) into steps of size ~lr; eps=1e-6 keeps such
                      # noise from dominating the 1- vs 2-process comparison
                      optim=OptimConfig(lr=3e-3, warmup_steps=2, eps=1e-6), epochs=2,
                      batch_size=32, progress=False, tensorboard=False, eval_every=0, device="cpu",
                      objective=Objective("input_ntr", {"dislike": 20}))
    t = Trainer(cfg, split.train, out)
    t.fit()
    if t.rank == 0:
        torch.save({k: v.detach().clone() for k, v in t.model.state_dict().items()}, out + "/params.pt")
""")


def test_ddp_two_processes_equal_one(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--standalone", str(script), str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "params.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "params.pt", weights_only=True)
    for name in a:
        # summation order differs between 1 and 2 processes: float32 round-off only
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    assert any(not torch.equal(a[n], torch.zeros_like(a[n])) for n in a)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_ntr_candidates_are_drawn_as_loss_ntr_sampler_says(sim_split, tmp_path, kind):
    """loss.ntr_sampler: the not-to-recommend term's K' candidates uniformly or by popularity
    ((count + 1) ** alpha, the softmax sampler's rule); the draws follow that distribution."""
    cfg = small_config(loss=LossConfig(mode="full", ntr_negatives=64, ntr_sampler=kind))
    sampler = Trainer(cfg, sim_split.train, tmp_path / "run").collator.ntr_sampler
    counts = torch.as_tensor(sim_split.train.item_counts(), dtype=torch.float64)
    expected = ((counts + 1) ** cfg.loss.alpha if kind == "popularity"
                else torch.ones_like(counts))
    expected = expected / expected.sum()
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([sampler.sample(None, gen)[0] for _ in range(2000)])  # 128,000 ids
    assert int(draws.min()) >= 0 and int(draws.max()) < sim_split.train.num_items
    seen = torch.bincount(draws, minlength=counts.numel()).double() / draws.numel()
    # 200 items, 128,000 draws: each frequency's standard error is <= 0.0004
    assert torch.allclose(seen, expected, atol=0.002)


def test_an_unknown_ntr_sampler_is_refused_by_name():
    with pytest.raises(UserError, match=r"loss.ntr_sampler must be uniform or popularity; got 'zipf'"):
        LossConfig(ntr_sampler="zipf")
