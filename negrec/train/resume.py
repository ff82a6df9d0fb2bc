"""Resuming a run: what a checkpoint holds of the training (its ``train_state``) and how a
resumed trainer takes it back, the configuration stored in a checkpoint, and the rule that a
resumed run changes only what decides when it stops (never which steps it takes)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from negrec.errors import UserError
from negrec.train.checkpoint import LoadedCheckpoint, check_weights_match, read_checkpoint
from negrec.train.config import TrainConfig, load_config, resume_adjustable_keys
from negrec.train.rng import capture_rng_state, restore_rng_state

__all__ = ["PROGRESS_KEYS", "capture_train_state", "check_resume_config", "config_from_checkpoint",
           "read_resume_checkpoint", "restore_train_state", "stored_config"]

#: What a checkpoint's train_state holds besides the optimizer, scheduler and RNG states (the
#: trainer's attributes of these names).
PROGRESS_KEYS = ("step", "epoch", "batch_in_epoch", "best_metric", "best_epoch",
                 "bad_validations", "history", "train_seconds", "targets_seen", "sequences_seen")


# ---- the training state ---------------------------------------------------------------------

def capture_train_state(*, optimizer: torch.optim.Optimizer, scheduler, embedding_update: str,
                        progress: dict, log_rows: int | None,
                        data_gen: torch.Generator) -> dict:
    """A checkpoint's ``train_state``: the optimizer's and the scheduler's states, how the row
    tables are updated (``"dense"`` / ``"sparse"``), ``progress`` (the values of
    :data:`PROGRESS_KEYS`), the data rows the metrics log holds and every generator's state."""
    return {
        "optimizer": optimizer.state_dict(),
        "embedding_update": embedding_update,
        "scheduler": scheduler.state_dict(),
        **{k: progress[k] for k in PROGRESS_KEYS},
        "log_rows": log_rows,
        "rng": capture_rng_state(data_gen),
    }


def read_resume_checkpoint(config: TrainConfig, out_dir: Path) -> dict:
    """The verified payload of ``out_dir/last.pt``, after checking that ``config`` and the
    run's saved ``config.yaml`` agree with the configuration stored in it."""
    path = out_dir / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {path} (nothing to resume)")
    payload = read_checkpoint(path)
    check_resume_config(config, stored_config(payload, path), path, out_dir / "config.yaml")
    return payload


def restore_train_state(payload: dict, path: Path, *, model: nn.Module,
                        optimizer: torch.optim.Optimizer, scheduler, data_gen: torch.Generator,
                        num_items: int) -> tuple[dict, int | None]:
    """Puts the training state of the verified checkpoint ``payload`` (read from ``path``) back
    into ``model``, ``optimizer``, ``scheduler`` and the generators (``data_gen`` and the
    global ones); returns (the values of :data:`PROGRESS_KEYS`, the data rows the metrics log
    held). UserError naming ``path`` when it was trained on another number of items than
    ``num_items`` or for another model, holds no training state, or its training state cannot
    be restored."""
    if payload["num_items"] != num_items:
        raise UserError(f"resume: {path} was trained on {payload['num_items']} items but the "
                        f"data has {num_items}: resume on the data it was trained on")
    check_weights_match(model.state_dict(), payload["model"], path)
    ts = payload["train_state"]
    if ts is None:
        raise UserError(f"resume: {path} has no training state (it is not a last.pt)")
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        progress = {k: ts[k] for k in PROGRESS_KEYS}
        log_rows = ts.get("log_rows")
        restore_rng_state(ts["rng"], data_gen)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise UserError(f"resume: {path}: the training state cannot be restored "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    return progress, log_rows


# ---- the configuration ----------------------------------------------------------------------

def stored_config(checkpoint: LoadedCheckpoint | dict, path: str | Path | None = None) -> TrainConfig:
    """The training configuration stored in a loaded checkpoint (or a verified payload read
    from ``path``), validated (old layouts migrated)."""
    if isinstance(checkpoint, LoadedCheckpoint):
        config, path = checkpoint.config, checkpoint.path
    else:
        config = checkpoint["config"]
    try:
        return TrainConfig.from_dict(config)
    except UserError as exc:
        raise UserError(f"{path}: the stored configuration is invalid ({exc})") from None


def config_from_checkpoint(path: str | Path) -> TrainConfig:
    """The training configuration stored in the (verified) checkpoint at ``path``."""
    return stored_config(read_checkpoint(path), Path(path))


def check_resume_config(config: TrainConfig, stored: TrainConfig, path: Path,
                        saved_yaml: Path) -> None:
    """Refuses (UserError) a ``config`` that differs from the ``stored`` one of checkpoint
    ``path`` in anything but :func:`~negrec.train.config.resume_adjustable_keys`, and a
    ``saved_yaml`` (the run's config.yaml) that disagrees with ``stored``: it was edited or
    damaged, and is refused rather than trusted or silently replaced."""
    adjustable = resume_adjustable_keys(stored)
    changed = {k: v for k, v in config.differences(stored).items() if k not in adjustable}
    if changed:
        raise UserError(f"resume: the configuration differs from the one {path} was trained "
                        f"with in {describe_differences(changed, 'given', 'checkpoint')}; a "
                        f"resumed run can change only {', '.join(adjustable)}")
    if saved_yaml.exists():
        fix = ("the run continues with the configuration stored in last.pt: delete config.yaml "
               "to have it rewritten from the checkpoint")
        try:
            saved = load_config(saved_yaml)
        except UserError as exc:
            raise UserError(f"resume: {saved_yaml} is not a valid configuration ({exc}); {fix}") from None
        changed = {k: v for k, v in saved.differences(stored).items() if k not in adjustable}
        if changed:
            raise UserError(f"resume: {saved_yaml} disagrees with the configuration stored in "
                            f"last.pt in {describe_differences(changed, 'config.yaml', 'last.pt')}; "
                            f"{fix}")


def describe_differences(changed: dict, first: str, second: str, limit: int = 4) -> str:
    items = [f"{k} ({a!r} {first}, {b!r} {second})" for k, (a, b) in sorted(changed.items())]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
