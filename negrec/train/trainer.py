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
import shutil
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
from negrec.errors import UserError
from negrec.models.base import SequentialRecommender
from negrec.models.checkpoint import (atomic_torch_save, atomic_write_bytes, check_weights_match,
                                      checkpoint_payload, read_checkpoint, stale_temporaries)
from negrec.models.sequential import build_model
from negrec.train.config import TrainConfig, load_config, resume_adjustable_keys
from negrec.train.loss import LossParts, batch_loss

__all__ = ["RUN_FILES", "Trainer", "TrainResult", "check_run_folder", "config_from_checkpoint",
           "existing_run_files", "training_windows", "resolve_device"]

# What a run folder holds: the trainer writes the first four (and tensorboard/), the
# evaluation after training writes metrics.json beside them (negrec.cli.pipeline).
RUN_FILES = ("last.pt", "best.pt", "config.yaml", "metrics.csv", "metrics.json")
RUN_FOLDERS = ("tensorboard",)
METRICS_FIELDS = ["kind", "step", "epoch", "loss", "lr", "targets_per_s", "sequences_per_s",
                  "elapsed_s", "metric", "value"]

# Called with the model (eval mode) after each validation interval; returns metrics, of
# which the trainer maximises `validate.metric` (e.g. "ndcg@10").
ValidateFn = Callable[[SequentialRecommender], dict]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available")
    return dev


def existing_run_files(out_dir: str | Path) -> list[str]:
    """The names of :data:`RUN_FILES` and :data:`RUN_FOLDERS` present in ``out_dir``."""
    out = Path(out_dir)
    return [n for n in RUN_FILES + RUN_FOLDERS if (out / n).exists()]


def check_run_folder(out_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """A new run never mixes its files with another run's (checkpoints replaced, a metrics log
    appended to): UserError when ``out_dir`` already holds a run, unless the run is resumed or
    is to be overwritten."""
    if resume and overwrite:
        raise UserError(f"--resume and --overwrite exclude each other: resume continues the run in "
                        f"{out_dir}, overwrite deletes it")
    existing = [] if resume or overwrite else existing_run_files(out_dir)
    if existing:
        raise UserError(f"{out_dir} already holds a training run ({', '.join(existing)}): continue "
                        "it with --resume, or delete it and start over with --overwrite (or "
                        "choose another --out)")


def config_from_checkpoint(path: str | Path) -> TrainConfig:
    """The training configuration stored in the (verified) checkpoint at ``path``."""
    return _stored_config(read_checkpoint(path), Path(path))


def _stored_config(payload: dict, path: Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(payload["config"])
    except UserError as exc:
        raise UserError(f"{path}: the stored configuration is invalid ({exc})") from None


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
    # what best.pt holds: "validation" (the best validated model) or "last" (no validation
    # ran: eval_every = 0, no validate function, or training stopped before the first one)
    best_checkpoint: str = "validation"


class Trainer:
    """Trains ``config.model`` with ``config.objective`` on ``train_log``.

    ``validate(model) -> {metric: value}`` is supplied by the evaluation code (the CLI passes
    full-ranking NDCG@10 on the validation events); ``validate_metric`` is maximised for early
    stopping and for ``best.pt``. Every ``fit()`` ends with a ``best.pt``: the best validated
    model, or the last model when no validation ran.

    The run folder ``out_dir``: a new run refuses a folder that already holds one
    (:data:`RUN_FILES`) unless ``overwrite=True``, which deletes that run's files at the first
    ``fit()``. ``resume=True`` continues from ``out_dir/last.pt`` (verified) with the
    configuration stored in it: ``config`` may differ from it only in
    :func:`~negrec.train.config.resume_adjustable_keys` (e.g. more epochs), and a
    ``config.yaml`` that disagrees with it is refused. Under torchrun (WORLD_SIZE > 1) each
    rank processes its share of every global batch; only rank 0 validates and writes.
    """

    def __init__(self, config: TrainConfig, train_log: EventLog, out_dir: str | Path, *,
                 validate: ValidateFn | None = None, validate_metric: str = "ndcg@10",
                 resume: bool = False, overwrite: bool = False):
        self.config, self.log = config, train_log
        self.out_dir = Path(out_dir)
        self.validate, self.validate_metric = validate, validate_metric
        self._check_out_dir(resume, overwrite)
        self._clear_at_fit = overwrite
        checkpoint = self._read_resume_checkpoint() if resume else None
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
            raise UserError("no training rows: every user has fewer than 2 usable events for "
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
        # data rows in metrics.csv (all sessions of the run); None: unknown (a checkpoint
        # written before it was recorded)
        self.log_rows: int | None = 0
        # set by a resume, done by the next fit(): drop the log rows written after the
        # checkpoint; re-save last.pt when the resumed run changed a limit (e.g. epochs)
        self._truncate_log_at_fit = False
        self._resave_at_fit = False
        self._purge_step: int | None = None
        if checkpoint is not None:
            self._restore(checkpoint, self.out_dir / "last.pt")
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

    def _check_out_dir(self, resume: bool, overwrite: bool) -> None:
        check_run_folder(self.out_dir, resume=resume, overwrite=overwrite)

    def _clear_run(self) -> None:
        for name in RUN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.out_dir / name, ignore_errors=True)

    # ---- checkpoints ---------------------------------------------------------------------
    def _train_state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best_metric": self.best_metric, "best_epoch": self.best_epoch,
            "bad_validations": self.bad_validations, "history": self.history,
            "train_seconds": self.train_seconds, "targets_seen": self.targets_seen,
            "sequences_seen": self.sequences_seen, "log_rows": self.log_rows,
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

    def _read_resume_checkpoint(self) -> dict:
        """The verified payload of ``last.pt``, after checking that ``self.config`` and the
        saved ``config.yaml`` agree with the configuration stored in it."""
        path = self.out_dir / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"resume: no checkpoint at {path} (nothing to resume)")
        payload = read_checkpoint(path)
        stored = _stored_config(payload, path)
        adjustable = resume_adjustable_keys(stored)
        changed = {k: v for k, v in self.config.differences(stored).items() if k not in adjustable}
        if changed:
            raise UserError(f"resume: the configuration differs from the one {path} was trained "
                            f"with in {_describe_differences(changed, 'given', 'checkpoint')}; a "
                            f"resumed run can change only {', '.join(adjustable)}")
        self._check_saved_config(stored, adjustable)
        self._resave_at_fit = any(self.config.differences(stored))
        return payload

    def _check_saved_config(self, stored: TrainConfig, adjustable: tuple[str, ...]) -> None:
        """config.yaml is rewritten from the checkpoint's configuration at every fit(); one
        that disagrees with it was edited or damaged, and is refused rather than trusted or
        silently replaced."""
        path = self.out_dir / "config.yaml"
        if not path.exists():
            return
        fix = ("the run continues with the configuration stored in last.pt: delete config.yaml "
               "to have it rewritten from the checkpoint")
        try:
            saved = load_config(path)
        except UserError as exc:
            raise UserError(f"resume: {path} is not a valid configuration ({exc}); {fix}") from None
        changed = {k: v for k, v in saved.differences(stored).items() if k not in adjustable}
        if changed:
            raise UserError(f"resume: {path} disagrees with the configuration stored in last.pt in "
                            f"{_describe_differences(changed, 'config.yaml', 'last.pt')}; {fix}")

    def _restore(self, payload: dict, path: Path) -> None:
        if payload["num_items"] != self.log.num_items:
            raise UserError(f"resume: {path} was trained on {payload['num_items']} items but the "
                            f"data has {self.log.num_items}: resume on the data it was trained on")
        check_weights_match(self.model.state_dict(), payload["model"], path)
        ts = payload["train_state"]
        if ts is None:
            raise UserError(f"resume: {path} has no training state (it is not a last.pt)")
        try:
            self._restore_train_state(payload["model"], ts)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise UserError(f"resume: {path}: the training state cannot be restored "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        self._truncate_log_at_fit = True
        self._purge_step = self.step + 1

    def _restore_train_state(self, weights: dict, ts: dict) -> None:
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        for k in ("step", "epoch", "batch_in_epoch", "best_metric", "best_epoch", "bad_validations",
                  "history", "train_seconds", "targets_seen", "sequences_seen"):
            setattr(self, k, ts[k])
        self.log_rows = ts.get("log_rows")
        torch.set_rng_state(ts["rng"]["torch"])
        self.data_gen.set_state(ts["rng"]["data"])
        _numpy_state_from_tensor(ts["rng"]["numpy"])
        py = random.getstate()
        random.setstate((py[0], tuple(ts["rng"]["python"]), py[2]))
        if ts["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ts["rng"]["cuda"])

    # ---- the run folder --------------------------------------------------------------------
    def _prepare_out_dir(self) -> None:
        """Rank 0, at the start of fit(): clear an overwritten run, remove the temporaries of
        interrupted writes, cut the metrics log back to the resumed checkpoint, and write
        config.yaml."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self._clear_at_fit:
            self._clear_run()
            self._clear_at_fit = False
        stale = stale_temporaries(self.out_dir, RUN_FILES)
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            warnings.warn(f"removed {len(stale)} temporary file(s) of interrupted writes in "
                          f"{self.out_dir}: {', '.join(p.name for p in stale)}", RuntimeWarning,
                          stacklevel=3)
        if self._truncate_log_at_fit:
            self._truncate_metrics_log()
            self._truncate_log_at_fit = False
        if self._resave_at_fit:  # the new limits are the run's from now on
            self.save_checkpoint()
            self._resave_at_fit = False
        self.config.save(self.out_dir / "config.yaml")

    def _truncate_metrics_log(self) -> None:
        """Drops the metrics.csv rows written after the checkpoint the run resumed from: the
        resumed run writes them again, so the log holds each row once."""
        path = self._csv_path
        if not path.exists():
            self.log_rows = 0
            return
        lines = path.read_bytes().splitlines(keepends=True)
        header, rows = lines[:1], lines[1:]
        if self.log_rows is not None:
            keep = rows[:self.log_rows]
        else:  # an older checkpoint: keep the rows up to its step
            parsed = csv.DictReader(line.decode() for line in lines)
            keep = [row for row, rec in zip(rows, parsed) if _int_or_none(rec.get("step")) is not None
                    and int(rec["step"]) <= self.step]
        if keep and not keep[-1].endswith(b"\n"):  # a row torn by a kill
            keep = keep[:-1]
        self.log_rows = len(keep)
        if len(keep) != len(rows):
            atomic_write_bytes(path, b"".join(header + keep))

    # ---- logging -------------------------------------------------------------------------
    def _log_row(self, row: dict) -> None:
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        new = not self._csv_path.exists()
        with self._csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.log_rows is not None:
            self.log_rows += 1
        if self.config.tensorboard:
            writer = self._tensorboard()
            if writer is None:
                return
            if row["kind"] == "train":
                for k in ("loss", "lr", "targets_per_s", "sequences_per_s"):
                    writer.add_scalar(f"train/{k}", row[k], row["step"])
            else:
                writer.add_scalar(f"valid/{row['metric']}", row["value"], row["step"])

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed; metrics go to metrics.csv only "
                              "(pip install tensorboard)", RuntimeWarning, stacklevel=3)
                self.config.tensorboard = False
                return None
            # a resumed run hides the events logged after its checkpoint (written again)
            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self._purge_step)
            self._purge_step = None
        return self._writer

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

    def _budget_reached(self) -> bool:
        """max_minutes of training time or max_steps optimizer steps (in total, the sessions
        before a resume included) are used up."""
        cfg = self.config
        return ((cfg.max_minutes is not None and self.train_seconds >= cfg.max_minutes * 60)
                or (cfg.max_steps is not None and self.step >= cfg.max_steps))

    def _train_epoch(self, epoch: int) -> bool:
        """Trains the rest of ``epoch``; True when the budget ended it early."""
        cfg = self.config
        self.epoch = epoch
        self.window_users, self.window_ends = self._windows(epoch)
        self.steps_per_epoch = math.ceil(len(self.window_users) / cfg.batch_size)
        order = self._epoch_order(epoch)
        first_batch = self.batch_in_epoch
        bar = tqdm(total=self.steps_per_epoch, initial=first_batch, disable=not (cfg.progress and self.is_main),
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="step")
        t_log, targets_log, seqs_log = time.perf_counter(), 0, 0
        try:
            for b in range(first_batch, self.steps_per_epoch):
                if self._budget_reached():
                    return True
                idx = self._rank_slice(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
                t0 = time.perf_counter()
                batch = self.collator(self.window_users[idx], ends=torch.from_numpy(self.window_ends[idx]))
                loss, targets = self._train_step(batch)
                self.train_seconds += time.perf_counter() - t0
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
            return False
        finally:
            bar.close()

    def fit(self) -> TrainResult:
        cfg = self.config
        if self.is_main:
            self._prepare_out_dir()
        stopped_early = stopped_by_time = False
        for epoch in range(self.epoch, cfg.epochs):
            if self._train_epoch(epoch):
                stopped_by_time = True
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
            self._writer = None
        if self.best_metric is None:
            # no validation ran (eval_every = 0, no validate function, or stopped before the
            # first one): the last model is the one to use, so that every run can be evaluated
            self.save_checkpoint("best.pt")
        return TrainResult(out_dir=self.out_dir, steps=self.step, epochs_completed=self.epoch,
                           best_metric=self.best_metric, best_epoch=self.best_epoch,
                           stopped_early=stopped_early, stopped_by_time=stopped_by_time,
                           history=self.history,
                           targets_per_s=self.targets_seen / max(self.train_seconds, 1e-9),
                           sequences_per_s=self.sequences_seen / max(self.train_seconds, 1e-9),
                           train_seconds=self.train_seconds,
                           best_checkpoint="validation" if self.best_metric is not None else "last")


def _describe_differences(changed: dict, first: str, second: str, limit: int = 4) -> str:
    items = [f"{k} ({a!r} {first}, {b!r} {second})" for k, (a, b) in sorted(changed.items())]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _int_or_none(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


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
