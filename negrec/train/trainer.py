"""The trainer: windows of user histories -> AdamW steps on the fused loss (lazy row updates
of the item tables of large catalogues: :mod:`~negrec.train.optim`), with progress bars, a
metrics log, atomic checkpoints, exact resume, early stopping and torchrun/DDP (one machine or
several).

Data order: each epoch shuffles the training windows with a generator seeded by (seed, epoch);
negatives and random crops draw from one data generator whose state is checkpointed; dropout
draws from torch's global RNG, also checkpointed (:mod:`negrec.train.rng`). So a run resumed
from a checkpoint takes exactly the steps the uninterrupted run would have taken.

The pieces live beside it: :mod:`~negrec.train.windows` (the rows of an epoch),
:mod:`~negrec.train.rng`, :mod:`~negrec.train.metrics_log`, :mod:`~negrec.train.run_folder`,
:mod:`~negrec.train.resume` (what a checkpoint holds of the training, and restoring it),
:mod:`~negrec.train.stopping` (the budget, when to validate, which validated model to keep, early
stopping), :mod:`~negrec.train.optim` (with the learning-rate schedule) and
:mod:`~negrec.train.distributed`.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from negrec.data.batch import Batch
from negrec.data.collate import Collator
from negrec.data.feedback import Feedback
from negrec.data.log import EventLog
from negrec.data.samplers import make_sampler
from negrec.errors import UserError
from negrec.files import atomic_torch_save
from negrec.models.base import SequentialRecommender
from negrec.models.registry import build_model
from negrec.progress import Progress, label, log
from negrec.train.checkpoint import checkpoint_payload
from negrec.train.config import TrainConfig
from negrec.train.distributed import Ranks
from negrec.train.loss import LossParts, batch_loss
from negrec.train.metrics_log import MetricsLog
from negrec.train.optim import build_optimizer, build_scheduler, clip_gradients, embedding_update
from negrec.train.resume import (PROGRESS_KEYS, capture_train_state, read_resume_checkpoint,
                                 restore_train_state)
from negrec.train.rng import seed_everything
from negrec.train.run_folder import check_run_folder, clear_run, remove_stale_temporaries
from negrec.train.stopping import budget_reached, judge_validation, validation_due
from negrec.train.windows import training_windows

__all__ = ["NonFiniteLossError", "Trainer", "TrainResult", "resolve_device"]

# Called with the model (eval mode) after each validation interval; returns metrics, of
# which the trainer maximises `validate_metric` (e.g. "ndcg@10").
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

    ``validate(model) -> {metric: value}`` is supplied by the evaluation code (the application
    passes full-ranking NDCG@10 on the validation events); ``validate_metric`` is maximised for
    early stopping and for ``best.pt``. Every ``fit()`` ends with a ``best.pt``: the best
    validated model, or the last model when no validation ran.

    The run folder ``out_dir``: a new run refuses a folder that already holds one
    (:data:`~negrec.train.run_folder.RUN_FILES`) unless ``overwrite=True``, which deletes that
    run's files at the first ``fit()``. ``resume=True`` continues from ``out_dir/last.pt``
    (verified) with the configuration stored in it: ``config`` may differ from it only in
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
        check_run_folder(self.out_dir, resume=resume, overwrite=overwrite)
        self._clear_at_fit = overwrite
        checkpoint = read_resume_checkpoint(config, self.out_dir) if resume else None
        self.objective = config.objective
        self.ranks = Ranks(config.device)
        self.device = self.ranks.device(resolve_device(config.device))
        seed_everything(config.seed)

        meta = train_log.item_meta
        # metadata inputs left automatic are decided here; the checkpoint stores the decision
        self.model = build_model(config.model.for_items(meta.cluster, meta.creator),
                                 train_log.num_items, item_cluster=meta.cluster,
                                 item_creator=meta.creator).to(self.device)
        self.sampler = self._sampler()
        # one generator for every random draw of the data pipeline (crops, negatives)
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.collator = Collator(train_log, self.objective.collate_config(
            config.model.max_len, random_crop=config.random_crop), sampler=self.sampler,
            ntr_sampler=self._ntr_sampler(), threads=config.collate_threads,
            generator=self.data_gen)
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
        opt = config.optim
        self.embedding_update = self._embedding_update(checkpoint)
        self.optimizer = build_optimizer(self.model, opt, self.embedding_update)
        # sparse row tables are averaged over the ranks by Ranks, not by DDP
        self.loss_module = self.ranks.wrap(_LossModule(self.model, config, self.low_precision),
                                           self.device, local=self._sparse_parameters())
        self.steps_per_epoch = math.ceil(len(self.window_users) / config.batch_size)
        self.scheduler = build_scheduler(self.optimizer, opt, self.steps_per_epoch * config.epochs)
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
        self.metrics_log = MetricsLog(self.out_dir, config)
        # set by a resume, done by the next fit(): drop the log rows written after the
        # checkpoint (the resumed run writes them again)
        self._truncate_log_at_fit = False
        if checkpoint is not None:
            self._restore(checkpoint, self.out_dir / "last.pt")

    @property
    def is_main(self) -> bool:
        return self.ranks.is_main

    @property
    def rank(self) -> int:
        return self.ranks.rank

    @property
    def world(self) -> int:
        return self.ranks.world

    # ---- setup ---------------------------------------------------------------------------
    def _sampler(self):
        """The negative sampler the loss mode needs (None for the full softmax)."""
        cfg, log = self.config.loss, self.log
        if cfg.mode == "sampled":
            return make_sampler(cfg.sampler, num_items=log.num_items,
                                num_negatives=cfg.num_negatives, counts=log.item_counts(),
                                alpha=cfg.alpha)
        if cfg.mode == "in_batch":
            return make_sampler("in_batch", num_items=log.num_items, num_negatives=1,
                                counts=log.item_counts([Feedback.POSITIVE]))
        return None

    def _embedding_update(self, checkpoint: dict | None) -> str:
        """``"dense"`` or ``"sparse"`` (:func:`~negrec.train.optim.embedding_update`); a resumed
        run with ``optim.embeddings = auto`` keeps the one its checkpoint was trained with
        (dense for checkpoints written before the option existed)."""
        cfg = self.config
        update = embedding_update(cfg.optim.embeddings, loss_mode=cfg.loss.mode,
                                  num_items=self.log.num_items)
        if checkpoint is not None and cfg.optim.embeddings == "auto":
            update = (checkpoint.get("train_state") or {}).get("embedding_update", "dense")
        return update

    def _sparse_parameters(self) -> list[nn.Parameter]:
        """The parameters whose gradients are sparse (the row tables, with sparse updates)."""
        return [t.weight for t in self.model.row_tables() if t.sparse]

    def _ntr_sampler(self):
        """The not-to-recommend term's own candidates, drawn uniformly or by popularity
        (``loss.ntr_sampler``; None: it shares the softmax term's, or the objective has no
        such term); see :mod:`negrec.train.loss`."""
        cfg = self.config.loss
        if cfg.ntr_negatives == 0 or not self.objective.trains_ntr:
            return None
        counts = self.log.item_counts() if cfg.ntr_sampler == "popularity" else None
        return make_sampler(cfg.ntr_sampler, num_items=self.log.num_items,
                            num_negatives=cfg.ntr_negatives, counts=counts, alpha=cfg.alpha)

    # ---- checkpoints ---------------------------------------------------------------------
    def _train_state(self) -> dict:
        return capture_train_state(optimizer=self.optimizer, scheduler=self.scheduler,
                                   embedding_update=self.embedding_update,
                                   progress={k: getattr(self, k) for k in PROGRESS_KEYS},
                                   log_rows=self.metrics_log.rows, data_gen=self.data_gen)

    def save_checkpoint(self, name: str = "last.pt") -> Path | None:
        if not self.is_main:
            return None
        payload = checkpoint_payload(self.model, self.config.to_dict(), self.objective.to_dict(),
                                     self.log, self._train_state())
        return atomic_torch_save(payload, self.out_dir / name)

    def _restore(self, payload: dict, path: Path) -> None:
        progress, log_rows = restore_train_state(
            payload, path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            data_gen=self.data_gen, num_items=self.log.num_items)
        for k, value in progress.items():
            setattr(self, k, value)
        self.metrics_log.rows = log_rows
        self._truncate_log_at_fit = True
        self.metrics_log.purge_step = self.step + 1

    def _prepare_out_dir(self) -> None:
        """Rank 0, at the start of fit(): clear an overwritten run, remove the temporaries of
        interrupted writes, cut the metrics log back to the resumed checkpoint, and write
        config.yaml."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self._clear_at_fit:
            clear_run(self.out_dir)
            self._clear_at_fit = False
        remove_stale_temporaries(self.out_dir)
        if self._truncate_log_at_fit:
            self.metrics_log.truncate(self.step)
            self._truncate_log_at_fit = False
        self.config.save(self.out_dir / "config.yaml")

    def _log_row(self, row: dict) -> None:
        if self.is_main:
            self.metrics_log.write(row)

    # ---- training ------------------------------------------------------------------------
    def _windows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.config.seed, 7, epoch])
        return training_windows(self.log, self.objective.inputs.events, self.config.model.max_len,
                                rng)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.window_users), generator=g).numpy()

    def _train_step(self, batch: Batch) -> tuple[float, int]:
        self.model.train()
        batch = batch.to(self.device)
        with self.autocast if self.autocast is not None else nullcontext():
            parts: LossParts = self.loss_module(batch)
        world = self.ranks.world
        # the global batch's weight sum, and how many ranks have a non-finite loss (so that
        # every rank stops together instead of the others waiting for it in backward)
        stats = torch.stack([parts.weight.detach().float().reshape(()),
                             (~torch.isfinite(parts.total.detach())).float().reshape(())])
        self.ranks.all_reduce(stats)
        denom, bad_ranks = stats[0], int(stats[1].item())
        if denom.item() <= 0:
            return 0.0, parts.targets  # nothing supervised in this global batch
        # DDP averages gradients over ranks; scaling by the world size makes the result the
        # gradient of (global sum / global weight), exactly as one process on the global batch
        loss = parts.total * (world / denom)
        if bad_ranks or not torch.isfinite(loss):
            self._stop_non_finite(loss.item(), bad_ranks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ranks.average_sparse_gradients(self._sparse_parameters())
        if self.config.optim.grad_clip > 0:
            clip_gradients(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item() / world, parts.targets

    def _stop_non_finite(self, value: float, bad_ranks: int) -> None:
        last = self.out_dir / "last.pt"
        kept = (f"the last good checkpoint is {last}" if last.exists() else
                f"no checkpoint had been written yet (none at {last})")
        what = f"the loss became {value}" if not math.isfinite(value) else \
            "the loss became non-finite on another rank"
        world = self.ranks.world
        where = f" on {bad_ranks} of {world} ranks" if world > 1 else ""
        raise NonFiniteLossError(
            f"{what} at step {self.step} (epoch {self.epoch}){where}; "
            f"training stopped, {kept}. "
            "Lower optim.lr, enable optim.grad_clip or check the data for extreme values.")

    def _validation_due(self, epochs_done: int) -> bool:
        """Whether every rank validates now. Rank 0 decides, from its validation history (the
        only rank that keeps one), and tells the others: ranks that decided on their own would
        validate at different epochs and then wait in different collectives."""
        due = torch.tensor([float(validation_due(self.config, epochs_done=epochs_done,
                                                 step=self.step, history=self.history))])
        self.ranks.broadcast(due)
        return bool(due.item())

    def _validate(self) -> bool:
        """Runs validation (rank 0), records it, returns True when training should stop
        (:mod:`~negrec.train.stopping`)."""
        stop = torch.zeros(1)
        if self.is_main and self.validate is not None:
            self.model.eval()
            with torch.no_grad():
                metrics = self.validate(self.model)
            value = float(metrics[self.validate_metric])
            self.history.append({"epoch": self.epoch, "step": self.step, **metrics})
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._log_row({"kind": "valid", "step": self.step, "epoch": self.epoch,
                                   "metric": k, "value": v})
            verdict = judge_validation(self.config, value, step=self.step,
                                       best_metric=self.best_metric,
                                       bad_validations=self.bad_validations)
            self.bad_validations = verdict.bad_validations
            if verdict.best:
                self.best_metric, self.best_epoch = value, self.epoch
                self.save_checkpoint("best.pt")
            log.info("%s: validation %s %.4f at step %d, %s",
                     label(f"epoch {self.epoch}/{self.config.epochs}"), self.validate_metric,
                     value, self.step, verdict.text)
            if verdict.stop:
                stop[0] = 1
        self.ranks.broadcast(stop)
        return bool(stop.item())

    def _train_epoch(self, epoch: int) -> bool:
        """Trains the rest of ``epoch``; True when the budget ended it early."""
        cfg = self.config
        world = self.ranks.world
        self.epoch = epoch
        self.window_users, self.window_ends = self._windows(epoch)
        self.steps_per_epoch = math.ceil(len(self.window_users) / cfg.batch_size)
        order = self._epoch_order(epoch)
        first_batch = self.batch_in_epoch
        bar = Progress(desc=f"epoch {epoch + 1}/{cfg.epochs}", show=cfg.progress and self.is_main,
                       heartbeat=self.is_main, total=self.steps_per_epoch, initial=first_batch,
                       unit="step")
        t_log, targets_log, seqs_log = time.perf_counter(), 0, 0
        try:
            for b in range(first_batch, self.steps_per_epoch):
                if budget_reached(cfg, train_seconds=self.train_seconds, step=self.step):
                    return True
                idx = self.ranks.share(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
                t0 = time.perf_counter()
                batch = self.collator(self.window_users[idx], ends=torch.from_numpy(self.window_ends[idx]))
                loss, targets = self._train_step(batch)
                self.train_seconds += time.perf_counter() - t0
                self.step += 1
                self.batch_in_epoch = b + 1
                n_targets, n_seqs = targets * world, len(idx) * world
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
            if self._validation_due(epoch + 1):
                stop = self._validate()
            self.save_checkpoint()
            if stop:
                stopped_early = True
                break
        self.metrics_log.close()
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

