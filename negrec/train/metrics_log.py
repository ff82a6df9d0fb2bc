"""A run's metrics log: ``metrics.csv`` (every training and validation row of every session of
the run, each once) and, when enabled, TensorBoard event files under ``tensorboard/``."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from negrec.files import atomic_write_bytes

__all__ = ["METRICS_FIELDS", "MetricsLog"]

METRICS_FIELDS = ["kind", "step", "epoch", "loss", "lr", "targets_per_s", "sequences_per_s",
                  "elapsed_s", "metric", "value"]


class MetricsLog:
    """Appends rows to ``out_dir/metrics.csv`` (and TensorBoard when ``config.tensorboard``).

    ``rows``: data rows the CSV holds (all sessions of the run; ``None`` when unknown, for a
    checkpoint written before it was recorded); a checkpoint stores it so that a resumed run can
    cut the log back to the checkpoint (:meth:`truncate`). Without tensorboard installed the log
    warns once and sets ``config.tensorboard`` to false (the run's saved configuration then says
    what was done)."""

    def __init__(self, out_dir: Path, config) -> None:
        self.path = Path(out_dir) / "metrics.csv"
        self.config = config
        self.rows: int | None = 0
        self.purge_step: int | None = None  # a resumed run hides TensorBoard events after it
        self._writer = None

    def write(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.rows is not None:
            self.rows += 1
        if self.config.tensorboard:
            writer = self._tensorboard()
            if writer is None:
                return
            if row["kind"] == "train":
                for k in ("loss", "lr", "targets_per_s", "sequences_per_s"):
                    writer.add_scalar(f"train/{k}", row[k], row["step"])
            else:
                writer.add_scalar(f"valid/{row['metric']}", row["value"], row["step"])

    def truncate(self, step: int) -> None:
        """Drops the rows written after the checkpoint the run resumed from (at ``step``, with
        :attr:`rows` rows when known): the resumed run writes them again, so the log holds each
        row once."""
        if not self.path.exists():
            self.rows = 0
            return
        lines = self.path.read_bytes().splitlines(keepends=True)
        header, rows = lines[:1], lines[1:]
        if self.rows is not None:
            keep = rows[:self.rows]
        else:  # an older checkpoint: keep the rows up to its step
            parsed = csv.DictReader(line.decode() for line in lines)
            keep = [row for row, rec in zip(rows, parsed) if _int_or_none(rec.get("step")) is not None
                    and int(rec["step"]) <= step]
        if keep and not keep[-1].endswith(b"\n"):  # a row torn by a kill
            keep = keep[:-1]
        self.rows = len(keep)
        if len(keep) != len(rows):
            atomic_write_bytes(self.path, b"".join(header + keep))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed; metrics go to metrics.csv only "
                              "(pip install tensorboard)", RuntimeWarning, stacklevel=4)
                self.config.tensorboard = False
                return None
            self._writer = SummaryWriter(str(self.path.parent / "tensorboard"),
                                         purge_step=self.purge_step)
            self.purge_step = None
        return self._writer


def _int_or_none(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
