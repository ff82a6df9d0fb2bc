"""Training configuration: one dataclass tree, loadable from YAML, overridable from the
command line (``--set optim.lr=3e-3``), saved fully resolved with every run."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from negrec.data.spec import DataSpec
from negrec.models.base import ModelConfig
from negrec.models.objectives import (DEFAULT_R, DEFAULT_W_DISLIKE, DEFAULT_W_SKIP, OBJECTIVES,
                                      Objective, get_objective)

__all__ = ["LossConfig", "OptimConfig", "TrainConfig", "apply_overrides", "load_config"]


@dataclass
class LossConfig:
    """How candidates are formed for the fused loss.

    - ``mode``: ``full`` (softmax over all items), ``sampled`` (``num_negatives`` shared
      negatives from ``sampler`` with logQ correction) or ``in_batch`` (the batch's positive
      targets as negatives, with logQ correction);
    - ``sampler``: ``uniform`` or ``popularity`` (∝ count^alpha);
    - ``temperature``: logits are divided by it.
    """

    mode: str = "full"
    sampler: str = "popularity"
    num_negatives: int = 1024
    alpha: float = 0.75
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("full", "sampled", "in_batch"):
            raise ValueError(f"loss.mode must be full, sampled or in_batch; got {self.mode!r}")
        if self.sampler not in ("uniform", "popularity"):
            raise ValueError(f"loss.sampler must be uniform or popularity; got {self.sampler!r}")
        if self.mode == "sampled" and self.num_negatives <= 0:
            raise ValueError(f"loss.num_negatives must be > 0; got {self.num_negatives}")
        if not self.temperature > 0:
            raise ValueError(f"loss.temperature must be > 0; got {self.temperature}")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then constant or cosine-decayed learning rate."""

    # lr 2e-3 with batch 64 (TrainConfig.batch_size): on ml-100k SASRec (dim 64, 2 layers) this
    # reached RecBole SASRec's 25-minute test NDCG@10 in 87 s of training, batch 256 / lr 1e-3 in
    # 575 s (benches/compare_recbole.py, one run each, same split and load)
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    grad_clip: float = 1.0
    warmup_steps: int = 50
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0; got {self.lr}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"optim.schedule must be constant or cosine; got {self.schedule!r}")
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("optim.warmup_steps and optim.grad_clip must be >= 0")
        self.betas = tuple(self.betas)


@dataclass
class TrainConfig:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str = "input_ntr"
    r: float = DEFAULT_R
    w_dislike: float = DEFAULT_W_DISLIKE
    w_skip: float = DEFAULT_W_SKIP
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 30
    batch_size: int = 64  # sequences (windows of model.max_len targets) per step; see OptimConfig.lr
    random_crop: bool = False  # windows end at a random event instead of tiling the history
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast (CUDA or CPU)
    num_workers: int = 0  # DataLoader worker processes
    collate_threads: int = 1
    eval_every: int = 1  # epochs between validations (0: never)
    eval_k: int = 10
    early_stopping_patience: int = 5  # validations without improvement (0: off)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at epoch ends)
    max_minutes: float | None = None  # stop (with a checkpoint) after this much training time
    max_steps: int | None = None  # stop (with a checkpoint) after this many optimizer steps
    log_every: int = 20  # steps between metric-log rows
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; got {self.objective!r}")
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ValueError(f"epochs and batch_size must be > 0; got {self.epochs}, {self.batch_size}")
        # the objective decides whether the model sees feedback codes
        self.model.feedback_input = self.get_objective().feedback_input

    def get_objective(self) -> Objective:
        return get_objective(self.objective, r=self.r, w_dislike=self.w_dislike, w_skip=self.w_skip)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optim"]["betas"] = list(self.optim.betas)
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _build(cls, d, "")


def _build(cls, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise ValueError(f"config section {prefix or '<root>'} must be a mapping; got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown config key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(prefix + k for k in sorted(unknown))}; known: "
                         f"{', '.join(sorted(names))}")
    kwargs = {}
    for k, v in values.items():
        t = hints[k]
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            kwargs[k] = _build(t, v, f"{prefix}{k}.")
        else:
            kwargs[k] = _coerce_to(t, v, prefix + k)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad config section {prefix or '<root>'}: {exc}") from None


def load_config(path: str | Path | None) -> TrainConfig:
    """A TrainConfig from a YAML file (defaults for everything it does not set)."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return TrainConfig.from_dict(data)


def _coerce(value: str) -> Any:
    return yaml.safe_load(value)


def _coerce_to(hint, value, name: str):
    """YAML 1.1 reads "3e-4" as a string: numbers given as strings become the annotated
    numeric type; anything else is passed through for the dataclass to validate."""
    args = typing.get_args(hint)
    numeric = [t for t in ((hint,) + args) if t in (int, float)]
    if isinstance(value, str) and numeric:
        try:
            return numeric[0](float(value)) if numeric[0] is int and float(value).is_integer() \
                else float(value)
        except ValueError:
            raise ValueError(f"config key {name} must be a number; got {value!r}") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """``["optim.lr=3e-3", "model.kind=gru"]`` -> a new, re-validated TrainConfig."""
    d = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must look like key.path=value; got {item!r}")
        key, value = item.split("=", 1)
        node = d
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ValueError(f"unknown config section {p!r} in override {item!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key {key!r} in override {item!r}")
        node[parts[-1]] = _coerce(value)
    return TrainConfig.from_dict(d)
