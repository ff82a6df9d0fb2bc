"""Checkpoints: written atomically, self-contained for inference, resumable for training.

A checkpoint is a ``torch.save`` dict of tensors, lists and plain values only, so it loads
with ``weights_only=True`` (no pickled code). For inference it holds the model weights and
config, the objective (so evaluation and recommendation apply the same input filter), the
raw <-> dense id maps and the item metadata; for training also the optimizer, scheduler,
RNG and progress state.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from negrec.data.log import EventLog, ItemMeta
from negrec.models.base import ModelConfig, SequentialRecommender
from negrec.models.objectives import Objective
from negrec.models.sequential import build_model

__all__ = ["FORMAT", "LoadedCheckpoint", "atomic_torch_save", "load_checkpoint", "meta_to_state",
           "meta_from_state", "checkpoint_payload"]

FORMAT = "negrec-checkpoint-v1"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """Writes ``obj`` to a temporary file in the target folder, fsyncs it and renames it over
    ``path``: a crash at any moment leaves either the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    writer = None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _ErrorRecordingWriter(f)
            torch.save(obj, writer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # torch.save reports a failed write (e.g. a full disk) as an opaque RuntimeError of its
        # zip writer: surface the OSError underneath, with what it means for the checkpoints
        os_error = exc if isinstance(exc, OSError) else getattr(writer, "error", None)
        if os_error is not None and isinstance(exc, Exception):
            keep = "the previous file is unchanged" if path.exists() else "no file was written"
            raise OSError(os_error.errno, f"writing {path} failed ({os_error.strerror or os_error}); "
                          f"{keep}, the partial temporary file was removed", str(path)) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


class _ErrorRecordingWriter:
    """The file object handed to torch.save: remembers the first OSError of a write."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _ids_to_state(ids: np.ndarray) -> dict:
    if ids.dtype.kind in "iu":
        return {"kind": "int", "values": torch.from_numpy(ids.astype(np.int64))}
    return {"kind": "str", "values": [str(x) for x in ids]}


def _ids_from_state(d: dict) -> np.ndarray:
    if d["kind"] == "int":
        return d["values"].numpy()
    return np.asarray(d["values"], dtype=str)


def meta_to_state(meta: ItemMeta) -> dict:
    return {
        "raw_ids": _ids_to_state(np.asarray(meta.raw_ids)),
        "cluster": torch.from_numpy(meta.cluster.astype(np.int64)),
        "cluster_names": list(meta.cluster_names),
        "creator": None if meta.creator is None else torch.from_numpy(meta.creator.astype(np.int64)),
        "creator_names": None if meta.creator_names is None else list(meta.creator_names),
        "titles": None if meta.titles is None else list(meta.titles),
    }


def meta_from_state(d: dict) -> ItemMeta:
    return ItemMeta(raw_ids=_ids_from_state(d["raw_ids"]), cluster=d["cluster"].numpy(),
                    cluster_names=d["cluster_names"],
                    creator=None if d["creator"] is None else d["creator"].numpy(),
                    creator_names=d["creator_names"], titles=d["titles"])


def checkpoint_payload(model: SequentialRecommender, config_dict: dict, objective: Objective,
                       log: EventLog, train_state: dict | None) -> dict:
    return {
        "format": FORMAT,
        "config": config_dict,
        "objective": objective.to_dict(),
        "model_config": model.config.to_dict(),
        "num_items": model.num_items,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "item_meta": meta_to_state(log.item_meta),
        "user_ids": _ids_to_state(np.asarray(log.user_ids)),
        "train_state": train_state,
    }


@dataclass
class LoadedCheckpoint:
    model: SequentialRecommender
    objective: Objective
    item_meta: ItemMeta
    user_ids: np.ndarray
    config: dict
    train_state: dict | None
    path: Path

    def raw_to_dense(self) -> dict:
        """raw item id (as in the source data) -> dense item id."""
        return {(x.item() if hasattr(x, "item") else x): i
                for i, x in enumerate(self.item_meta.raw_ids)}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Loads a checkpoint into a ready-to-use model (in eval mode)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign files
        raise ValueError(f"{path}: not a readable negrec checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a negrec checkpoint (format {state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
    meta = meta_from_state(state["item_meta"])
    mcfg = ModelConfig(**state["model_config"])
    model = build_model(mcfg, state["num_items"], item_cluster=meta.cluster, item_creator=meta.creator)
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedCheckpoint(model=model, objective=Objective.from_dict(state["objective"]),
                            item_meta=meta, user_ids=_ids_from_state(state["user_ids"]),
                            config=state["config"], train_state=state.get("train_state"), path=path)
