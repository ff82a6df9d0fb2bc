"""Resuming a run: the configuration stored in a checkpoint, and the rule that a resumed run
changes only what decides when it stops (never which steps it takes)."""

from __future__ import annotations

from pathlib import Path

from negrec.errors import UserError
from negrec.train.checkpoint import LoadedCheckpoint, read_checkpoint
from negrec.train.config import TrainConfig, load_config, resume_adjustable_keys

__all__ = ["check_resume_config", "config_from_checkpoint", "stored_config"]


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
