"""Checkpoints: written atomically (:func:`negrec.files.atomic_torch_save`), verified on load,
self-contained for inference, resumable for training.

A checkpoint is a ``torch.save`` dict of tensors, lists and plain values only, so it loads
with ``weights_only=True`` (no pickled code). For inference it holds the model weights and
config, the objective (so evaluation and recommendation apply the same input filter), the
raw <-> dense id maps and the item metadata; for training also the optimizer, scheduler,
RNG and progress state. The stored objective and configuration of earlier layouts are migrated
on load (:mod:`negrec.train.migrate`).

Integrity: ``checksum`` holds the SHA-256 of every other field (tensor bytes, dtypes and
shapes, and the plain values; see :func:`payload_checksum`). :func:`read_checkpoint`, which
every loader goes through (evaluation, recommendation, responsiveness, and the trainer's
resume), refuses a file whose contents no longer hash to it, and checks that the stored
weights have the shapes the stored model configuration implies before anything is built.
Checkpoints of format ``negrec-checkpoint-v1`` predate the checksum: they still load, with an
:class:`UnverifiedCheckpointWarning` naming the file.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from negrec.data.log import EventLog, ItemMeta
from negrec.errors import UserError
from negrec.models.base import SequentialRecommender
from negrec.models.config import ModelConfig
from negrec.models.registry import build_model
from negrec.train.migrate import migrate_model, migrate_objective
from negrec.train.objectives import Objective

__all__ = ["FORMAT", "LoadedCheckpoint", "UnverifiedCheckpointWarning", "check_weights_match",
           "checkpoint_payload", "load_checkpoint", "meta_from_state", "meta_to_state",
           "payload_checksum", "read_checkpoint"]

FORMAT = "negrec-checkpoint-v2"  # v1 + the content checksum
UNVERIFIED_FORMATS = ("negrec-checkpoint-v1",)  # written before checksums existed
CHECKSUM_PREFIX = "sha256:"


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint written before checkpoints carried a checksum was loaded unverified."""


# ---- the content checksum -------------------------------------------------------------------

def payload_checksum(payload: Mapping) -> str:
    """``"sha256:<hex>"`` of every field of ``payload`` but ``checksum``.

    The hash covers each value with a type tag and its length, so that no two different
    payloads serialise to the same bytes: tensors by dtype, shape and raw bytes (in row-major
    order, whatever their strides), floats exactly (``float.hex``), dicts in their order
    (``torch.load`` restores the order ``torch.save`` wrote)."""
    h = hashlib.sha256()
    _hash_value(h, {k: v for k, v in payload.items() if k != "checksum"}, "")
    return CHECKSUM_PREFIX + h.hexdigest()


def _hash_value(h, value: Any, where: str) -> None:
    def tag(t: bytes, text: str = "") -> None:
        b = text.encode("utf-8")
        h.update(t + str(len(b)).encode() + b":" + b)

    if value is None:
        tag(b"N")
    elif isinstance(value, bool):
        tag(b"B", str(int(value)))
    elif isinstance(value, int):
        tag(b"I", str(value))
    elif isinstance(value, float):
        tag(b"F", value.hex())
    elif isinstance(value, str):
        tag(b"S", value)
    elif isinstance(value, (bytes, bytearray)):
        tag(b"Y", str(len(value)))
        h.update(value)
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        tag(b"X", f"{t.dtype}{list(t.shape)}")
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, (torch.dtype, torch.device)):
        tag(b"Z", str(value))
    elif isinstance(value, Mapping):
        tag(b"D", str(len(value)))
        for k, v in value.items():
            _hash_value(h, k, where)
            _hash_value(h, v, f"{where}{k}.")
    elif isinstance(value, (list, tuple)):
        tag(b"L" if isinstance(value, list) else b"T", str(len(value)))
        for i, v in enumerate(value):
            _hash_value(h, v, f"{where}{i}.")
    else:
        raise TypeError(f"field {where.rstrip('.') or '<root>'} holds a {type(value).__name__}, "
                        "which checkpoints do not contain")


# ---- payload <-> objects --------------------------------------------------------------------

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


def checkpoint_payload(model: SequentialRecommender, config_dict: dict, objective_dict: dict,
                       log: EventLog, train_state: dict | None) -> dict:
    """The dict a checkpoint file holds, with its ``checksum``."""
    payload = {
        "format": FORMAT,
        "config": config_dict,
        "objective": objective_dict,
        "model_config": model.config.to_dict(),
        "num_items": model.num_items,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "item_meta": meta_to_state(log.item_meta),
        "user_ids": _ids_to_state(np.asarray(log.user_ids)),
        # events per feedback type the model was trained on (what a responsiveness report may
        # ask it about: an action absent from training is not measured)
        "train_feedback": log.feedback_counts(),
        "train_state": train_state,
    }
    payload["checksum"] = payload_checksum(payload)
    return payload


# ---- reading and verifying ------------------------------------------------------------------

def read_checkpoint(path: str | Path) -> dict:
    """The verified payload of the checkpoint at ``path`` (tensors on the CPU).

    Raises FileNotFoundError when there is no file, and :class:`UserError` naming the file
    when it is not a readable checkpoint, its checksum does not match its contents, a field
    is missing or has the wrong type, or the stored weights do not have the shapes the stored
    model configuration implies (checked on the meta device: nothing is allocated)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or unreadable files
        raise UserError(f"{path}: not a readable negrec checkpoint ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from None
    tag = state.get("format") if isinstance(state, dict) else type(state).__name__
    if not isinstance(state, dict) or tag not in (FORMAT, *UNVERIFIED_FORMATS):
        raise UserError(f"{path}: not a negrec checkpoint (format {tag!r}; expected {FORMAT!r})")
    _verify_checksum(state, path)
    _check_fields(state, path)
    skeleton = _build(state, path, device="meta")
    check_weights_match(skeleton.state_dict(), state["model"], path)
    return state


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."


def _verify_checksum(state: dict, path: Path) -> None:
    stored = state.get("checksum")
    if stored is None and state["format"] in UNVERIFIED_FORMATS:
        warnings.warn(f"{path}: written before checkpoints carried a checksum (format "
                      f"{state['format']}); its contents are not verified", UnverifiedCheckpointWarning,
                      stacklevel=3)
        return
    if not isinstance(stored, str) or not stored.startswith(CHECKSUM_PREFIX):
        raise UserError(f"{path}: checkpoint field checksum must be '{CHECKSUM_PREFIX}<hex>'; got "
                        f"{_short(stored)}")
    try:
        actual = payload_checksum(state)
    except TypeError as exc:
        raise UserError(f"{path}: not a negrec checkpoint ({exc})") from None
    if actual != stored:
        raise UserError(f"{path}: checksum mismatch: the contents hash to {actual[:19]}..., the "
                        f"file recorded {stored[:19]}... when it was written; the file is corrupt "
                        "(use another checkpoint of the run, or retrain)")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _require(d: Mapping, key: str, types: type | tuple, what: str, path: Path, where: str = ""):
    if key not in d:
        raise UserError(f"{path}: checkpoint field {where}{key} is missing")
    value = d[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,))):
        raise UserError(f"{path}: checkpoint field {where}{key} must be {what}; got "
                        f"{type(value).__name__} {_short(value)}")
    return value


def _check_fields(state: dict, path: Path) -> None:
    """Types and sizes of every field the loaders read; UserError naming the first bad one."""
    config = _require(state, "config", dict, "a mapping", path)
    _require(config, "data", dict, "a mapping", path, "config.")
    _require(state, "objective", dict, "a mapping", path)
    _require(state, "model_config", dict, "a mapping", path)
    num_items = _require(state, "num_items", int, "an int", path)
    if num_items <= 0:
        raise UserError(f"{path}: checkpoint field num_items must be > 0; got {num_items}")
    weights = _require(state, "model", dict, "a mapping of names to tensors", path)
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: checkpoint field model.{name} must be a tensor; got "
                            f"{type(value).__name__}")
    meta = _require(state, "item_meta", dict, "a mapping", path)
    _check_ids(meta, "raw_ids", num_items, path, "item_meta.")
    for key in ("cluster", "creator"):
        value = _require(meta, key, (torch.Tensor, type(None)), "an int64 tensor", path, "item_meta.")
        if key == "cluster" and value is None:
            raise UserError(f"{path}: checkpoint field item_meta.cluster must be an int64 tensor; "
                            "got None")
        if value is not None and (value.dtype != torch.int64 or tuple(value.shape) != (num_items,)):
            raise UserError(f"{path}: checkpoint field item_meta.{key} must be an int64 tensor of "
                            f"shape [{num_items}] (num_items); got {value.dtype} "
                            f"{list(value.shape)}")
    _require(meta, "cluster_names", list, "a list", path, "item_meta.")
    for key in ("creator_names", "titles"):
        _require(meta, key, (list, type(None)), "a list or None", path, "item_meta.")
    if meta["titles"] is not None and len(meta["titles"]) != num_items:
        raise UserError(f"{path}: checkpoint field item_meta.titles has {len(meta['titles'])} "
                        f"entries for {num_items} items (num_items)")
    _check_ids(state, "user_ids", None, path, "")
    _require(state, "train_state", (dict, type(None)), "a mapping or None", path)
    counts = state.get("train_feedback")  # absent from checkpoints written before it existed
    if counts is not None and (not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in counts.items())):
        raise UserError(f"{path}: checkpoint field train_feedback must map feedback names to "
                        f"event counts; got {counts!r}"[:300])


def _check_ids(d: Mapping, key: str, length: int | None, path: Path, where: str) -> None:
    ids = _require(d, key, dict, "a mapping", path, where)
    kind = _require(ids, "kind", str, "'int' or 'str'", path, f"{where}{key}.")
    values = ids.get("values")
    ok = ((kind == "int" and isinstance(values, torch.Tensor) and values.dim() == 1
           and values.dtype == torch.int64) or (kind == "str" and isinstance(values, list)))
    if not ok:
        raise UserError(f"{path}: checkpoint field {where}{key} must hold int64 ids (kind 'int') or "
                        f"a list of strings (kind 'str'); got kind {kind!r} with "
                        f"{type(values).__name__} values")
    if length is not None and len(values) != length:
        raise UserError(f"{path}: checkpoint field {where}{key} has {len(values)} entries for "
                        f"{length} items (num_items)")


def _build(state: dict, path: Path, device: str | torch.device = "cpu") -> SequentialRecommender:
    """The model the stored configuration describes, untrained, on ``device`` (``"meta"``:
    shapes only, no memory)."""
    try:
        mcfg = ModelConfig(**migrate_model(state["model_config"]))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: checkpoint field model_config is invalid ({exc})") from None
    meta = state["item_meta"]
    creator = meta["creator"]
    try:
        with torch.device(device):
            return build_model(mcfg, state["num_items"], item_cluster=meta["cluster"].numpy(),
                               item_creator=None if creator is None else creator.numpy())
    except ValueError as exc:
        raise UserError(f"{path}: the checkpoint's model cannot be built ({exc})") from None


def check_weights_match(expected: Mapping[str, torch.Tensor], stored: Mapping[str, torch.Tensor],
                        path: str | Path) -> None:
    """UserError naming ``path`` unless ``stored`` has exactly the names, shapes and dtypes of
    ``expected`` (a model's ``state_dict()``, possibly on the meta device)."""
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    if missing or unexpected:
        raise UserError(f"{path}: the stored weights do not fit the stored model configuration "
                        f"(missing: {', '.join(missing) or 'none'}; unexpected: "
                        f"{', '.join(unexpected) or 'none'})")
    for name, want in expected.items():
        got = stored[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise UserError(f"{path}: weight {name} is {got.dtype} {list(got.shape)} but the "
                            f"stored model configuration implies {want.dtype} "
                            f"{list(want.shape)}")


@dataclass
class LoadedCheckpoint:
    model: SequentialRecommender
    objective: Objective
    item_meta: ItemMeta
    user_ids: np.ndarray
    config: dict
    train_state: dict | None
    path: Path
    # training events per feedback type (None: a checkpoint written before this was stored)
    train_feedback: dict[str, int] | None = None

    def raw_to_dense(self) -> dict:
        """raw item id (as in the source data) -> dense item id."""
        return {(x.item() if hasattr(x, "item") else x): i
                for i, x in enumerate(self.item_meta.raw_ids)}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Loads and verifies a checkpoint (:func:`read_checkpoint`) into a ready-to-use model (in
    eval mode, on ``map_location``)."""
    path = Path(path)
    state = read_checkpoint(path)
    try:
        meta = meta_from_state(state["item_meta"])
        objective = Objective(**migrate_objective(state["objective"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: checkpoint field item_meta or objective is invalid "
                        f"({type(exc).__name__}: {_first_line(exc)})") from None
    model = _build(state, path)
    _check_derived_buffers(model, state["model"], path)
    model.load_state_dict(state["model"])
    model.to(map_location).eval()
    return LoadedCheckpoint(model=model, objective=objective, item_meta=meta,
                            user_ids=_ids_from_state(state["user_ids"]), config=state["config"],
                            train_state=state.get("train_state"), path=path,
                            train_feedback=state.get("train_feedback"))


def _check_derived_buffers(model: SequentialRecommender, stored: Mapping, path: Path) -> None:
    """Integer buffers are derived from the item metadata when the model is built (item ->
    cluster / creator rows): the stored ones must equal them, else the weights belong to
    other metadata (and would index rows that do not exist)."""
    for name, built in model.state_dict().items():
        if not built.is_floating_point() and not torch.equal(built, stored[name]):
            raise UserError(f"{path}: weight {name} does not match the stored item_meta (it maps "
                            "items to other cluster / creator rows)")
