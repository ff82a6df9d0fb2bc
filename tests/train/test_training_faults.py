"""Training under faults: SIGKILL during a checkpoint write and between checkpoints (then resume
equals the uninterrupted run), NaN losses, a full disk while writing a checkpoint, and with
DDP a rank that dies, hangs or alone sees a NaN loss (the job must end with a clear error
within a bound, never hang).

The killed runs are subprocesses; everything they need is in FAULT_SCRIPT below.
"""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from helpers import one_model_objective
from negrec.data import leave_one_out
from negrec.models import ModelConfig
from negrec.train.checkpoint import load_checkpoint
from negrec.sim import SimConfig, Simulator
from negrec.train import LossConfig, NonFiniteLossError, OptimConfig, TrainConfig, Trainer

SIM = dict(num_items=120, num_clusters=6, num_creators=20, num_users=80, events_per_user=25)
# log_every=1: a metrics.csv row per step, so that rows written after the last checkpoint of a
# killed run exist (a resumed run must not write them twice)
CONFIG = dict(random_crop=True, epochs=2, batch_size=32, progress=False, tensorboard=False,
              eval_every=0, checkpoint_every=3, log_every=1, device="cpu")


def make_config(**kw) -> TrainConfig:
    base = dict(objective=one_model_objective(), model=ModelConfig(kind="sasrec", dim=16, num_layers=1, num_heads=2, dropout=0.1,
                                  max_len=10),
                loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=32),
                optim=OptimConfig(lr=3e-3, warmup_steps=2), **CONFIG)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def train_log():
    log, _ = Simulator(SimConfig(**SIM), seed=0).generate()
    return leave_one_out(log).train


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# Runs the same training as make_config() in a subprocess, with one fault injected:
#   stall_save=N : the N-th checkpoint write writes half its bytes, signals, then blocks
#   stall_step=N : after step N, signals, then blocks (a kill between checkpoints)
#   ddp_kill=N / ddp_hang=N / ddp_nan=N : under torchrun, rank 1 SIGKILLs itself / blocks /
#                  gets a NaN loss at step N
FAULT_SCRIPT = textwrap.dedent("""
    import io, os, signal, sys, time
    import torch
    torch.set_num_threads(int(os.environ["FAULT_THREADS"]))
    sys.path.insert(0, os.environ["FAULT_TESTS_DIR"])
    sys.path.insert(0, os.path.dirname(os.environ["FAULT_TESTS_DIR"]))  # helpers.py
    import test_training_faults as T
    import negrec.train.trainer as tr
    from negrec.data import leave_one_out
    from negrec.sim import SimConfig, Simulator

    out, fault, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    marker = os.path.join(out, "..", "marker-" + os.path.basename(out))
    rank = int(os.environ.get("RANK", "0"))

    def signal_and_block():
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)

    if fault == "stall_save":
        real, calls = torch.save, [0]
        def stalling(obj, f, *a, **kw):
            calls[0] += 1
            if calls[0] != n:
                return real(obj, f, *a, **kw)
            buf = io.BytesIO()
            real(obj, buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            signal_and_block()
        torch.save = stalling  # what negrec.files' atomic writer calls
    else:
        real_step = tr.Trainer._train_step
        def step(self, batch):
            if fault == "ddp_nan" and self.step + 1 == n and rank == 1:
                real_loss = tr.batch_loss
                def nan_loss(*a, **kw):
                    parts = real_loss(*a, **kw)
                    parts.total = parts.total * float("nan")
                    return parts
                tr.batch_loss = nan_loss
            out_ = real_step(self, batch)
            if self.step + 1 == n:
                if fault == "stall_step":
                    signal_and_block()
                if fault == "ddp_kill" and rank == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault == "ddp_hang" and rank == 1:
                    time.sleep(3600)
            return out_
        tr.Trainer._train_step = step

    log, _ = Simulator(SimConfig(**T.SIM), seed=0).generate()
    t = tr.Trainer(T.make_config(), leave_one_out(log).train, out)
    t.fit()
    print("finished", t.step)
""")


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(FAULT_THREADS=str(torch.get_num_threads()), FAULT_TESTS_DIR=str(Path(__file__).parent))
    return env


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "fault_train.py"
    script.write_text(FAULT_SCRIPT)
    return script


def _run_until_marker_then_kill(tmp_path: Path, out: Path, fault: str, n: int) -> None:
    marker = tmp_path / f"marker-{out.name}"
    proc = subprocess.Popen([sys.executable, str(_script(tmp_path)), str(out), fault, str(n)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the fault point: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the fault point was never reached"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(train_log, tmp_path_factory):
    t = Trainer(make_config(), train_log, tmp_path_factory.mktemp("straight"))
    t.fit()
    return t


# 8 steps per epoch; checkpoints (torch.save calls) at steps 3, 6, 8 (epoch end), 9, 12, ...
@pytest.mark.parametrize("fault,n,previous", [("stall_save", 4, 8), ("stall_step", 7, 6)],
                         ids=["kill-during-checkpoint-write", "kill-between-checkpoints"])
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(train_log, uninterrupted, tmp_path,
                                                              fault, n, previous):
    out = tmp_path / "run"
    _run_until_marker_then_kill(tmp_path, out, fault, n)
    # the previous checkpoint is intact and loadable
    ck = load_checkpoint(out / "last.pt")
    step = ck.train_state["step"]
    assert step == previous, step  # the checkpoint before the one being written / due
    leftovers = list(out.glob(".last.pt.*.tmp"))
    if fault == "stall_save":
        # the torn write is a temporary file, never last.pt; it does not load
        assert len(leftovers) == 1
        with pytest.raises(Exception):
            torch.load(leftovers[0], weights_only=True)
    else:
        assert leftovers == []
    resumed = Trainer(make_config(), train_log, out, resume=True)
    assert resumed.step == step
    resumed.fit()
    assert resumed.step == uninterrupted.step
    a, b = params(uninterrupted.model), params(resumed.model)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # the resumed run's metrics log holds each step once, with the uninterrupted run's values
    # (the kill during the write at step 9 came after step 9's row), and the killed write's
    # temporary file is gone
    assert _metric_rows(out) == _metric_rows(uninterrupted.out_dir)
    assert list(out.glob(".*.tmp")) == []


def _metric_rows(out: Path) -> list[tuple]:
    """(kind, step, epoch, loss, lr) of each metrics.csv row (timings differ between runs)."""
    with (out / "metrics.csv").open(newline="") as f:
        return [(r["kind"], r["step"], r["epoch"], r["loss"], r["lr"]) for r in csv.DictReader(f)]


# ---- NaN losses -----------------------------------------------------------------------------

def _poison(monkeypatch, at_call: int):
    import negrec.train.trainer as trainer_mod

    calls = {"n": 0}
    real = trainer_mod.batch_loss

    def poisoned(*args, **kw):
        parts = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == at_call:
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(trainer_mod, "batch_loss", poisoned)


def test_nan_loss_before_any_checkpoint_says_so(train_log, tmp_path, monkeypatch):
    _poison(monkeypatch, 1)
    t = Trainer(make_config(), train_log, tmp_path / "n")
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at step 0 .*no checkpoint "
                                                 r"had been written yet"):
        t.fit()
    assert not (tmp_path / "n" / "last.pt").exists()


def test_nan_loss_keeps_the_last_good_checkpoint(train_log, tmp_path, monkeypatch):
    _poison(monkeypatch, 5)
    t = Trainer(make_config(), train_log, tmp_path / "n")
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at step 4 .*the last good "
                                                 r"checkpoint is .*last\.pt"):
        t.fit()
    ck = load_checkpoint(tmp_path / "n" / "last.pt")
    assert ck.train_state["step"] == 3
    assert all(torch.isfinite(v).all() for v in ck.model.state_dict().values() if v.is_floating_point())


def test_inf_weights_from_diverged_parameters(train_log, tmp_path):
    """A parameter that has blown up (not an injected loss) stops the run the same way."""
    t = Trainer(make_config(), train_log, tmp_path / "n")
    with torch.no_grad():
        next(t.model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteLossError, match="the loss became (nan|inf) at step 0"):
        t.fit()


# ---- full disk ----------------------------------------------------------------------------------

class _FullDisk:
    """A file whose writes fail with ENOSPC once ``budget`` bytes have been written."""

    def __init__(self, f, budget):
        self._f, self.budget = f, budget

    def write(self, data):
        if len(data) > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


@pytest.mark.parametrize("where", ["write-early", "write-late", "fsync", "rename"])
def test_out_of_disk_while_writing_a_checkpoint(train_log, tmp_path, monkeypatch, where):
    import negrec.files as ck_mod

    out = tmp_path / "d"
    t = Trainer(make_config(epochs=1, checkpoint_every=0), train_log, out)
    t.save_checkpoint()
    before = (out / "last.pt").read_bytes()
    size = len(before)
    if where.startswith("write"):
        real_fdopen = os.fdopen
        budget = 100 if where == "write-early" else size - 1000
        monkeypatch.setattr(ck_mod.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), budget))
    elif where == "fsync":  # delayed allocation: the error surfaces when the data is flushed
        def fsync(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(ck_mod.os, "fsync", fsync)
    else:
        def replace(a, b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(ck_mod.os, "replace", replace)
    t.step += 1  # a different payload than the file on disk
    with pytest.raises(OSError, match=r"writing .*last\.pt failed \(No space left on device\); the "
                                      r"previous file is unchanged, the partial temporary file was "
                                      r"removed") as info:
        t.save_checkpoint()
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert (out / "last.pt").read_bytes() == before
    assert list(out.glob(".last.pt.*")) == []
    assert load_checkpoint(out / "last.pt").train_state["step"] == 0
    with pytest.raises(OSError, match="No space left on device"):
        if where.startswith("write"):
            monkeypatch.setattr(ck_mod.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), 0))
        else:
            monkeypatch.setattr(ck_mod.os, "fsync", fsync if where == "fsync" else os.fsync)
            if where == "rename":
                monkeypatch.setattr(ck_mod.os, "replace", replace)
        t.save_checkpoint("best.pt")  # a first write fails cleanly too
    assert not (out / "best.pt").exists() and list(out.glob(".best.pt.*")) == []


def test_out_of_disk_in_fit_stops_the_run(train_log, tmp_path, monkeypatch):
    import negrec.files as ck_mod

    real_fdopen = os.fdopen
    monkeypatch.setattr(ck_mod.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), 5000))
    t = Trainer(make_config(), train_log, tmp_path / "f")
    with pytest.raises(OSError, match=r"writing .*last\.pt failed \(No space left on device\); no "
                                      r"file was written"):
        t.fit()
    assert t.step == 3  # stopped at the first checkpoint


# ---- DDP: a rank that dies, hangs or alone sees NaN -------------------------------------------

def _torchrun(tmp_path, fault, n, timeout_s):
    env = _env(tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    env["FAULT_THREADS"] = "1"
    env["NEGREC_DIST_TIMEOUT_S"] = str(timeout_s)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           "--standalone", "--max-restarts=0", str(_script(tmp_path)),
                           str(tmp_path / "ddp"), fault, str(n)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("fault", ["ddp_kill", pytest.param("ddp_hang", marks=pytest.mark.slow),
                                   "ddp_nan"])
def test_ddp_rank_failure_ends_the_job(tmp_path, fault):
    # only the hang needs the collective timeout; the others must end without it
    proc, took = _torchrun(tmp_path, fault, 4, timeout_s=15 if fault == "ddp_hang" else 300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "finished" not in proc.stdout
    if fault == "ddp_kill":
        assert "Signal 9 (SIGKILL)" in out or "exitcode  : -9" in out, out[-3000:]
    elif fault == "ddp_hang":
        assert "timed out" in out.lower() or "timeout" in out.lower(), out[-3000:]
    else:
        assert "NonFiniteLossError" in out and "on 1 of 2 ranks" in out, out[-3000:]
    # bounded: startup plus, for the hang, one NEGREC_DIST_TIMEOUT_S (the others do not wait
    # for the 300 s timeout they were given)
    assert took < (150 if fault == "ddp_hang" else 120), took
    print(f"{fault}: job ended with exit code {proc.returncode} after {took:.1f} s")
    print("\n".join(line for line in out.splitlines()
                    if any(k in line for k in ("Error", "error", "exitcode", "Signal", "imed out")))[-2000:])
