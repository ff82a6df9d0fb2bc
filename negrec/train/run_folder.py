"""A training run's folder: which files make a run, and the rule that a new run never mixes its
files with another run's (checkpoints replaced, a metrics log appended to)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from negrec.errors import UserError
from negrec.files import stale_temporaries

__all__ = ["RUN_FILES", "RUN_FOLDERS", "check_run_folder", "clear_run", "existing_run_files",
           "remove_stale_temporaries"]

# What a run folder holds: the trainer writes the first four (and tensorboard/), the
# evaluation after training writes metrics.json beside them (negrec.experiments.training).
RUN_FILES = ("last.pt", "best.pt", "config.yaml", "metrics.csv", "metrics.json")
RUN_FOLDERS = ("tensorboard",)


def existing_run_files(out_dir: str | Path) -> list[str]:
    """The names of :data:`RUN_FILES` and :data:`RUN_FOLDERS` present in ``out_dir``."""
    out = Path(out_dir)
    return [n for n in RUN_FILES + RUN_FOLDERS if (out / n).exists()]


def check_run_folder(out_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """UserError when ``out_dir`` already holds a run, unless the run is resumed or is to be
    overwritten (and when both are asked for)."""
    if resume and overwrite:
        raise UserError(f"--resume and --overwrite exclude each other: resume continues the run in "
                        f"{out_dir}, overwrite deletes it")
    existing = [] if resume or overwrite else existing_run_files(out_dir)
    if existing:
        raise UserError(f"{out_dir} already holds a training run ({', '.join(existing)}): continue "
                        "it with --resume, or delete it and start over with --overwrite (or "
                        "choose another --out)")


def clear_run(out_dir: Path) -> None:
    """Deletes the run in ``out_dir`` (its :data:`RUN_FILES` and :data:`RUN_FOLDERS`)."""
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out_dir / name, ignore_errors=True)


def remove_stale_temporaries(out_dir: Path) -> None:
    """Removes (with a warning) the temporary files interrupted atomic writes of run files
    left (a writer that is killed cannot remove its own)."""
    stale = stale_temporaries(out_dir, RUN_FILES)
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        warnings.warn(f"removed {len(stale)} temporary file(s) of interrupted writes in "
                      f"{out_dir}: {', '.join(p.name for p in stale)}", RuntimeWarning,
                      stacklevel=4)
