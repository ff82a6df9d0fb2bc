"""The trainer: windows of user histories -> AdamW steps on the fused loss, with progress
bars, CSV/TensorBoard metrics, atomic checkpoints, exact resume, early stopping and
torchrun/DDP.

Data order: each epoch shuffles the training windows with a generator seeded by (seed, epoch);
negatives and random crops draw from one data generator whose state is checkpointed; dropout
draws from torch's global RNG, also checkpointed. So a run resumed from a checkpoint takes
exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from negrec.data.collate import Batch, Collator
from negrec.data.feedback import Feedback
from negrec.data.log import EventLog
from negrec.data.samplers import make_sampler
from negrec.models.base import SequentialRecommender
from negrec.models.checkpoint import atomic_torch_save, checkpoint_payload
from negrec.models.sequential import build_model
from negrec.train.config import TrainConfig
from negrec.train.loss import LossParts, batch_loss

__all__ = ["Trainer", "TrainResult", "training_windows", "resolve_device"]

# Called with the model (eval mode) after each validation interval; returns metrics, of
# which the trainer maximises `validate.metric` (e.g. "ndcg@10").
ValidateFn = Callable[[SequentialRecommender], dict]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


def training_windows(log: EventLog, input_feedback, max_len: int,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(users, ends) of the training rows: each user's kept events tiled by windows of
    ``max_len`` targets from the most recent backwards, so every kept event after the first
    is a target once per epoch (``ends`` counts kept events: the collator's ``ends``).

    With ``rng``, the windows below the most recent one are shifted by a random offset per user
    and epoch: they end at n - off, n - off - L, ... with off uniform in [1, L], so the first
    two windows overlap by L - off targets (still every target at least once). Without it a
    model sees the very same windows every epoch and can memorise them (on data with many
    users and long histories it then learns little that transfers to other windows, such as
    the evaluation histories)."""
    allowed = np.zeros(len(Feedback), dtype=bool)
    for f in input_feedback:
        allowed[int(f)] = True
    kept = allowed[log.feedback].astype(np.int64)
    prefix = np.concatenate([[0], np.cumsum(kept)])
    n = prefix[log.offsets[1:]] - prefix[log.offsets[:-1]]
    eligible = np.flatnonzero(n >= 2)
    offsets = (rng.integers(1, max_len + 1, len(eligible)) if rng is not None
               else np.full(len(eligible), max_len, np.int64))
    users, ends = [], []
    for u, off in zip(eligible, offsets):
        e = np.concatenate([[n[u]], np.arange(n[u] - off, 1, -max_len)])
        users.append(np.full(len(e), u))
        ends.append(e)
    if not users:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(users).astype(np.int64), np.concatenate(ends).astype(np.int64)


class _LossModule(nn.Module):
    """Wraps model + loss so DistributedDataParallel sees the whole computation as forward."""

    def __init__(self, model: SequentialRecommender, config: TrainConfig, low_precision):
        super().__init__()
        self.model, self.loss_config, self.low_precision = model, config.loss, low_precision

    def forward(self, batch: Batch) -> LossParts:
        return batch_loss(self.model, batch, self.loss_config, self.low_precision)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    epochs_completed: int
    best_metric: float | None
    best_epoch: int | None
    stopped_early: bool
    stopped_by_time: bool  # by max_minutes or max_steps
    history: list[dict] = field(default_factory=list)
    targets_per_s: float = 0.0
    sequences_per_s: float = 0.0
    train_seconds: float = 0.0


class Trainer:
    """Trains ``config.model`` with ``config.objective`` on ``train_log``.

    ``validate(model) -> {metric: value}`` is supplied by the evaluation code (the CLI passes
    full-ranking NDCG@10 on the validation events); ``validate_metric`` is maximised for early
    stopping and for ``best.pt``. With ``resume=True`` training continues from
    ``out_dir/last.pt``. Under torchrun (WORLD_SIZE > 1) each rank processes its share of every
    global batch; only rank 0 validates and writes.
    """

    def __init__(self, config: TrainConfig, train_log: EventLog, out_dir: str | Path, *,
                 validate: ValidateFn | None = None, validate_metric: str = "ndcg@10",
                 resume: bool = False):
        self.config, self.log = config, train_log
        self.out_dir = Path(out_dir)
        self.validate, self.validate_metric = validate, validate_metric
        self.objective = config.get_objective()
        self._init_distributed()
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self._seed_everything(config.seed)

        meta = train_log.item_meta
        self.model = build_model(config.model, train_log.num_items, item_cluster=meta.cluster,
                                 item_creator=meta.creator).to(self.device)
        counts = train_log.item_counts([Feedback.POSITIVE])
        self.sampler = None
        if config.loss.mode == "sampled":
            self.sampler = make_sampler(config.loss.sampler, num_items=train_log.num_items,
                                        num_negatives=config.loss.num_negatives,
                                        counts=train_log.item_counts(), alpha=config.loss.alpha)
        elif config.loss.mode == "in_batch":
            self.sampler = make_sampler("in_batch", num_items=train_log.num_items, num_negatives=1,
                                        counts=counts)
        # one generator for every random draw of the data pipeline (crops, negatives)
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.collator = Collator(train_log, self.objective.collate_config(
            config.model.max_len, random_crop=config.random_crop), sampler=self.sampler,
            threads=config.collate_threads, generator=self.data_gen)
        self.window_users, self.window_ends = self._windows(0)
        if len(self.window_users) == 0:
            raise ValueError("no training rows: every user has fewer than 2 usable events for "
                             f"objective {self.objective.name}")

        self.low_precision = None
        self.autocast = None
        if config.bf16:
            self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.device.type == "cuda":
                self.low_precision = torch.bfloat16
        self.loss_module = _LossModule(self.model, config, self.low_precision)
        if self.world > 1:
            self.loss_module = nn.parallel.DistributedDataParallel(
                self.loss_module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        opt = config.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, betas=opt.betas,
                                           eps=opt.eps, weight_decay=opt.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.window_users) / config.batch_size)
        total = self.steps_per_epoch * config.epochs

        def lr_factor(step: int) -> float:
            if opt.warmup_steps and step < opt.warmup_steps:
                return (step + 1) / opt.warmup_steps
            if opt.schedule == "cosine":
                progress = (step - opt.warmup_steps) / max(1, total - opt.warmup_steps)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            return 1.0

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.bad_validations = 0
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.targets_seen = 0
        self.sequences_seen = 0
        if resume:
            self._load_state(self.out_dir / "last.pt")
        self._writer = None
        self._csv_path = self.out_dir / "metrics.csv"

    # ---- setup ---------------------------------------------------------------------------
    def _init_distributed(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.config.device != "cpu" else "gloo"
            # a dead rank must end the job with an error, not a hang
            dist.init_process_group(backend, timeout=timedelta(seconds=int(
                os.environ.get("NEGREC_DIST_TIMEOUT_S", "300"))))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # ---- checkpoints ---------------------------------------------------------------------
    def _train_state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best_metric": self.best_metric, "best_epoch": self.best_epoch,
            "bad_validations": self.bad_validations, "history": self.history,
            "train_seconds": self.train_seconds, "targets_seen": self.targets_seen,
            "sequences_seen": self.sequences_seen,
            "rng": {"torch": torch.get_rng_state(), "data": self.data_gen.get_state(),
                    "numpy": _numpy_state_to_tensor(), "python": list(random.getstate()[1]),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def save_checkpoint(self, name: str = "last.pt") -> Path | None:
        if not self.is_main:
            return None
        payload = checkpoint_payload(self.model, self.config.to_dict(), self.objective, self.log,
                                     self._train_state())
        return atomic_torch_save(payload, self.out_dir / name)

    def _load_state(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        ts = state["train_state"]
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        for k in ("step", "epoch", "batch_in_epoch", "best_metric", "best_epoch", "bad_validations",
                  "history", "train_seconds", "targets_seen", "sequences_seen"):
            setattr(self, k, ts[k])
        torch.set_rng_state(ts["rng"]["torch"])
        self.data_gen.set_state(ts["rng"]["data"])
        _numpy_state_from_tensor(ts["rng"]["numpy"])
        py = random.getstate()
        random.setstate((py[0], tuple(ts["rng"]["python"]), py[2]))
        if ts["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ts["rng"]["cuda"])

    # ---- logging -------------------------------------------------------------------------
    def _log_row(self, row: dict) -> None:
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fields = ["kind", "step", "epoch", "loss", "lr", "targets_per_s", "sequences_per_s",
                  "elapsed_s", "metric", "value"]
        new = not self._csv_path.exists()
        with self._csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.config.tensorboard:
            if self._writer is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
                except ImportError:
                    warnings.warn("tensorboard is not installed; metrics go to metrics.csv only "
                                  "(pip install tensorboard)", RuntimeWarning, stacklevel=2)
                    self.config.tensorboard = False
                    return
            if row["kind"] == "train":
                for k in ("loss", "lr", "targets_per_s", "sequences_per_s"):
                    self._writer.add_scalar(f"train/{k}", row[k], row["step"])
            else:
                self._writer.add_scalar(f"valid/{row['metric']}", row["value"], row["step"])

    # ---- training ------------------------------------------------------------------------
    def _windows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.config.seed, 7, epoch])
        return training_windows(self.log, self.objective.input_feedback, self.config.model.max_len, rng)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.window_users), generator=g).numpy()

    def _rank_slice(self, idx: np.ndarray) -> np.ndarray:
        return idx[self.rank::self.world] if self.world > 1 else idx

    def _train_step(self, batch: Batch) -> tuple[float, int]:
        self.model.train()
        batch = batch.to(self.device)
        ctx = self.autocast if self.autocast is not None else _nullcontext()
        with ctx:
            parts: LossParts = self.loss_module(batch)
        # the global batch's weight sum, and how many ranks have a non-finite loss (so that
        # every rank stops together instead of the others waiting for it in backward)
        stats = torch.stack([parts.weight.detach().float().reshape(()),
                             (~torch.isfinite(parts.total.detach())).float().reshape(())])
        if self.world > 1:
            dist.all_reduce(stats)
        denom, bad_ranks = stats[0], int(stats[1].item())
        if denom.item() <= 0:
            return 0.0, parts.targets  # nothing supervised in this global batch
        # DDP averages gradients over ranks; scaling by the world size makes the result the
        # gradient of (global sum / global weight), exactly as one process on the global batch
        loss = parts.total * (self.world / denom)
        if bad_ranks or not torch.isfinite(loss):
            last = self.out_dir / "last.pt"
            kept = (f"the last good checkpoint is {last}" if last.exists() else
                    f"no checkpoint had been written yet (none at {last})")
            value = loss.item()
            what = f"the loss became {value}" if not math.isfinite(value) else \
                "the loss became non-finite on another rank"
            where = f" on {bad_ranks} of {self.world} ranks" if self.world > 1 else ""
            raise NonFiniteLossError(
                f"{what} at step {self.step} (epoch {self.epoch}){where}; "
                f"training stopped, {kept}. "
                "Lower optim.lr, enable optim.grad_clip or check the data for extreme values.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item() / self.world, parts.targets

    def _validate(self) -> bool:
        """Runs validation (rank 0), records it, returns True when training should stop."""
        stop = torch.zeros(1)
        if self.is_main and self.validate is not None:
            self.model.eval()
            with torch.no_grad():
                metrics = self.validate(self.model)
            value = float(metrics[self.validate_metric])
            record = {"epoch": self.epoch, "step": self.step, **metrics}
            self.history.append(record)
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._log_row({"kind": "valid", "step": self.step, "epoch": self.epoch,
                                   "metric": k, "value": v})
            if self.best_metric is None or value > self.best_metric:
                self.best_metric, self.best_epoch, self.bad_validations = value, self.epoch, 0
                self.save_checkpoint("best.pt")
            else:
                self.bad_validations += 1
            patience = self.config.early_stopping_patience
            if patience and self.bad_validations >= patience:
                stop[0] = 1
        if self.world > 1:
            dist.broadcast(stop, 0)
        return bool(stop.item())

    def fit(self) -> TrainResult:
        cfg = self.config
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out_dir / "config.yaml")
        budget = cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped_early = stopped_by_time = False
        start_epoch = self.epoch
        for epoch in range(start_epoch, cfg.epochs):
            self.epoch = epoch
            self.window_users, self.window_ends = self._windows(epoch)
            self.steps_per_epoch = math.ceil(len(self.window_users) / cfg.batch_size)
            order = self._epoch_order(epoch)
            first_batch = self.batch_in_epoch
            bar = tqdm(total=self.steps_per_epoch, initial=first_batch, disable=not (cfg.progress and self.is_main),
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="step")
            t_log, targets_log, seqs_log = time.perf_counter(), 0, 0
            for b in range(first_batch, self.steps_per_epoch):
                idx = self._rank_slice(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
                t0 = time.perf_counter()
                batch = self.collator(self.window_users[idx], ends=torch.from_numpy(self.window_ends[idx]))
                loss, targets = self._train_step(batch)
                dt = time.perf_counter() - t0
                self.train_seconds += dt
                self.step += 1
                self.batch_in_epoch = b + 1
                n_targets, n_seqs = targets * self.world, len(idx) * self.world
                self.targets_seen += n_targets
                self.sequences_seen += n_seqs
                targets_log += n_targets
                seqs_log += n_seqs
                bar.update(1)
                if self.step % cfg.log_every == 0 or b + 1 == self.steps_per_epoch:
                    el = time.perf_counter() - t_log
                    row = {"kind": "train", "step": self.step, "epoch": epoch, "loss": loss,
                           "lr": self.scheduler.get_last_lr()[0], "targets_per_s": targets_log / el,
                           "sequences_per_s": seqs_log / el, "elapsed_s": self.train_seconds}
                    self._log_row(row)
                    bar.set_postfix(loss=f"{loss:.4f}", tgt_s=f"{targets_log / el:,.0f}")
                    t_log, targets_log, seqs_log = time.perf_counter(), 0, 0
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if (budget is not None and self.train_seconds >= budget) or \
                        (cfg.max_steps is not None and self.step >= cfg.max_steps):
                    stopped_by_time = True
                    break
            bar.close()
            if stopped_by_time:
                self.save_checkpoint()
                break
            self.epoch, self.batch_in_epoch = epoch + 1, 0
            stop = False
            if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0:
                stop = self._validate()
            self.save_checkpoint()
            if stop:
                stopped_early = True
                break
        if self._writer is not None:
            self._writer.close()
        if self.is_main and self.validate is None:
            # without validation the last model is the one to use
            self.save_checkpoint("best.pt")
        return TrainResult(out_dir=self.out_dir, steps=self.step, epochs_completed=self.epoch,
                           best_metric=self.best_metric, best_epoch=self.best_epoch,
                           stopped_early=stopped_early, stopped_by_time=stopped_by_time,
                           history=self.history,
                           targets_per_s=self.targets_seen / max(self.train_seconds, 1e-9),
                           sequences_per_s=self.sequences_seen / max(self.train_seconds, 1e-9),
                           train_seconds=self.train_seconds)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _numpy_state_to_tensor() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_tensor(d: dict) -> None:
    np.random.set_state(("MT19937", d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"],
                         d["cached"]))
