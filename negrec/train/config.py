"""Training configuration: one dataclass tree, loadable from YAML, overridable from the
command line (``--set optim.lr=3e-3``), saved fully resolved with every run.

Every value is checked when a configuration is built (types, then ranges): a bad value raises
:class:`~negrec.errors.UserError` naming the key, what was expected and what was given.
Configurations of earlier layouts (files, checkpoints, overrides) are migrated in one place,
:mod:`negrec.train.migrate`. Fields with a ``help`` in their metadata are what the command line
offers as flags (:mod:`negrec.cli.flags`)."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from negrec.errors import UserError
from negrec.files import atomic_write_text
from negrec.data.split import SPLITS
from negrec.models.config import ModelConfig
from negrec.train.data_spec import DataSpec
from negrec.train.migrate import migrate_config, migrate_override
from negrec.train.objectives import Objective
from negrec.train.optim import EMBEDDING_UPDATES

__all__ = ["LossConfig", "OptimConfig", "TrainConfig", "apply_overrides", "load_config",
           "resume_adjustable_keys"]


CANDIDATE_SAMPLERS = ("uniform", "popularity")  # loss.sampler, loss.ntr_sampler


@dataclass
class LossConfig:
    """How candidates are formed for the fused loss; each field's meaning is on its line
    (``negrec config loss``). ``ntr_negatives``: the not-to-recommend term's ``p`` is the
    disliked (skipped) item's probability among itself and K' items drawn for the batch
    (uniformly, or by popularity: ``ntr_sampler``), without logQ correction, so its pull does
    not vanish as the catalogue grows; those
    K' items' embeddings are trained by the term too (``ntr_trains_candidates``; false: they
    are a fixed reference) (docs/objectives.md, docs/generalization.md)."""

    mode: str = "full"  # full (softmax over all items), sampled (num_negatives shared negatives, logQ) or in_batch
    sampler: str = "popularity"  # sampled mode: uniform or popularity (count^alpha)
    num_negatives: int = 1024  # sampled mode: negatives per batch
    alpha: float = 0.75  # popularity samplers (sampler, ntr_sampler): exponent of the counts
    temperature: float = 1.0  # logits are divided by it
    ntr_negatives: int = 128  # K': the not-to-recommend term's own candidates per batch (0: the softmax term's)
    ntr_trains_candidates: bool = True  # the not-to-recommend term's gradient reaches its own K' candidates' embeddings (false: only the disliked item's and the state's)
    ntr_sampler: str = "popularity"  # how the K' candidates are drawn: popularity (count^alpha) or uniform; either way uncorrected

    def __post_init__(self) -> None:
        if self.mode not in ("full", "sampled", "in_batch"):
            raise UserError(f"loss.mode must be full, sampled or in_batch; got {self.mode!r}")
        for name in ("sampler", "ntr_sampler"):
            if getattr(self, name) not in CANDIDATE_SAMPLERS:
                raise UserError(f"loss.{name} must be {' or '.join(CANDIDATE_SAMPLERS)}; got "
                                f"{getattr(self, name)!r}")
        _check_range("loss.num_negatives", self.num_negatives, "> 0", self.num_negatives > 0)
        _check_range("loss.alpha", self.alpha, ">= 0", math.isfinite(self.alpha) and self.alpha >= 0)
        _check_range("loss.temperature", self.temperature, "> 0",
                     math.isfinite(self.temperature) and self.temperature > 0)
        _check_range("loss.ntr_negatives", self.ntr_negatives, ">= 0 (0: the softmax term's "
                     "candidates)", self.ntr_negatives >= 0)


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then constant or cosine-decayed learning rate. Why lr 2e-3
    with batch 64: docs/training.md. ``embeddings``: how the item, cluster and creator tables
    are updated (``dense``: every row every step; ``sparse``: only the batch's rows, lazily;
    ``auto``: sparse from 50,000 items with a sampled or in-batch loss):
    :mod:`negrec.train.optim`, docs/training_scale.md."""

    lr: float = 2e-3  # AdamW learning rate (after warm-up)
    weight_decay: float = 0.0  # AdamW weight decay of the network's weights (never of biases, norm gains or the feedback-code gains)
    row_weight_decay: float | None = None  # AdamW weight decay of the item, cluster and creator tables (and an untied output table); null: weight_decay
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # clip the gradient norm to this (0: off)
    warmup_steps: int = 50  # steps of linear learning-rate warm-up
    schedule: str = "constant"  # constant or cosine (decay to 0 over the run's epochs)
    embeddings: str = "auto"  # dense, sparse (lazy updates of the batch's rows) or auto

    def __post_init__(self) -> None:
        _check_range("optim.lr", self.lr, "> 0", math.isfinite(self.lr) and self.lr > 0)
        if self.embeddings not in EMBEDDING_UPDATES:
            raise UserError(f"optim.embeddings must be one of {', '.join(EMBEDDING_UPDATES)}; got "
                            f"{self.embeddings!r}")
        if self.schedule not in ("constant", "cosine"):
            raise UserError(f"optim.schedule must be constant or cosine; got {self.schedule!r}")
        _check_range("optim.weight_decay", self.weight_decay, ">= 0",
                     math.isfinite(self.weight_decay) and self.weight_decay >= 0)
        if self.row_weight_decay is not None:
            _check_range("optim.row_weight_decay", self.row_weight_decay, ">= 0 or null",
                         math.isfinite(self.row_weight_decay) and self.row_weight_decay >= 0)
        self.betas = tuple(self.betas)
        _check_range("optim.betas", list(self.betas), "two numbers in [0, 1)",
                     len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas))
        _check_range("optim.eps", self.eps, "> 0", math.isfinite(self.eps) and self.eps > 0)
        _check_range("optim.grad_clip", self.grad_clip, ">= 0 (0: off)",
                     math.isfinite(self.grad_clip) and self.grad_clip >= 0)
        _check_range("optim.warmup_steps", self.warmup_steps, ">= 0", self.warmup_steps >= 0)


@dataclass
class TrainConfig:
    """A training run. ``objective`` may be given as a name (its weights then default)."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Objective = field(default_factory=Objective)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = field(default=100, metadata={"help": "epochs (the most: early stopping "
                                                       "usually ends training sooner)"})
    batch_size: int = 64  # sequences (windows of model.max_len targets) per step; see OptimConfig
    random_crop: bool = False  # windows end at a random event instead of tiling the history
    placebo: bool = field(default=False, metadata={
        "help": "train a placebo control: the training events' feedback codes shuffled across "
                "events (the control of responsiveness reports; docs/generalization.md)"})
    split: str = field(default="loo", metadata={
        "help": "held-out events: loo (per user, the last event is a test event, the one before "
                "a validation event) or time (a global time split: each user's first event in "
                "the last 10 percent of the log's time span is a test event, in the 10 percent "
                "before a validation event)", "choices": lambda: tuple(SPLITS)})
    seed: int = field(default=0, metadata={"help": "seed of every random draw of the run"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    bf16: bool = False  # bf16 autocast (CUDA or CPU)
    collate_threads: int = 1  # threads of the native collator
    eval_every: int = 1  # epochs between validations (0: never)
    # validations are at least this many optimizer steps apart (epoch ends in between are
    # skipped), so that on a small log early stopping is not decided within a few steps;
    # validations inside the learning-rate warm-up never give the best checkpoint
    eval_min_steps: int = 100
    eval_k: int = 10  # K of the validation metric (NDCG@K) that picks the best checkpoint
    early_stopping_patience: int = 5  # validations without improvement (0: off)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at epoch ends)
    # stop (with a checkpoint) after this much training time
    max_minutes: float | None = field(default=None, metadata={
        "help": "training-time budget, in total (a resumed run's earlier sessions count)"})
    max_steps: int | None = None  # stop (with a checkpoint) after this many optimizer steps
    log_every: int = 20  # steps between metric-log rows
    progress: bool = field(default=True, metadata={"help": "draw progress bars"})
    tensorboard: bool = True  # write TensorBoard logs under OUT/tensorboard

    def __post_init__(self) -> None:
        if isinstance(self.objective, str):
            self.objective = Objective(self.objective)
        for name, rule, ok in (
                ("epochs", "> 0", self.epochs > 0), ("batch_size", "> 0", self.batch_size > 0),
                ("seed", ">= 0", self.seed >= 0),
                ("collate_threads", ">= 1", self.collate_threads >= 1),
                ("eval_every", ">= 0 (0: never)", self.eval_every >= 0),
                ("eval_min_steps", ">= 0", self.eval_min_steps >= 0),
                ("eval_k", "> 0", self.eval_k > 0),
                ("early_stopping_patience", ">= 0 (0: off)", self.early_stopping_patience >= 0),
                ("checkpoint_every", ">= 0 (0: at epoch ends only)", self.checkpoint_every >= 0),
                ("max_minutes", "> 0 or null", self.max_minutes is None or self.max_minutes > 0),
                ("max_steps", "> 0 or null", self.max_steps is None or self.max_steps > 0),
                ("log_every", "> 0", self.log_every > 0)):
            _check_range(name, getattr(self, name), rule, ok)
        if self.split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise UserError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        # the objective decides whether the model sees feedback codes
        self.model.feedback_input = self.objective.inputs.codes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optim"]["betas"] = list(self.optim.betas)
        return d

    def save(self, path: str | Path) -> None:
        """Writes the resolved configuration as YAML, atomically (a crash or a full disk never
        leaves a truncated file)."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A validated configuration from a mapping (of today's layout or an earlier one)."""
        return _build(cls, migrate_config(d), "")

    def differences(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """``{dotted key: (this value, other's value)}`` for every key whose values differ."""
        mine, theirs = _flatten(self), _flatten(other)
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def resume_adjustable_keys(config: TrainConfig) -> tuple[str, ...]:
    """The keys a resumed run may change: they decide when training stops or whether a progress
    bar is drawn, never which steps are taken, so the resumed run takes exactly the steps the
    uninterrupted run with the new values would have taken. ``epochs`` also sets the length of
    the cosine schedule, so with ``optim.schedule = cosine`` it is fixed too."""
    keys = ("epochs", "max_steps", "max_minutes", "progress")
    return keys if config.optim.schedule == "constant" else tuple(k for k in keys if k != "epochs")


def _flatten(section, prefix: str = "") -> dict[str, Any]:
    """A configuration's values by dotted key (``optim.lr``); sections are dataclasses."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flatten(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def _check_range(name: str, value, rule: str, ok: bool) -> None:
    if not ok:
        raise UserError(f"config key {name} must be {rule}; got {value!r}")


def _build(cls, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise UserError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping; got "
                        f"{values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise UserError(f"unknown config key{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(prefix + str(k) for k in sorted(map(str, unknown)))}; known: "
                        f"{', '.join(sorted(names))}")
    kwargs = {}
    for k, v in values.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = _build(t, v, f"{prefix}{k}.")
        else:
            kwargs[k] = _coerce_to(t, v, prefix + k)
    try:
        return cls(**kwargs)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:  # validation by a dataclass of another module
        raise UserError(f"config section {prefix.rstrip('.') or '<root>'}: {exc}") from None


def load_config(path: str | Path | None) -> TrainConfig:
    """A TrainConfig from a YAML file (defaults for everything it does not set)."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML ({_one_line(exc)})") from None
    try:
        return TrainConfig.from_dict(data if data is not None else {})
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def _one_line(exc: BaseException) -> str:
    """A YAML error as "problem (line L, column C)"; other errors on one line."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _coerce(value: str, item: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise UserError(f"override {item!r}: the value {value!r} is not valid YAML "
                        f"({_one_line(exc)})") from None


_NONE = type(None)


def _coerce_to(hint, value, name: str):
    """``value`` as the annotated type ``hint`` of config key ``name``, or UserError.

    YAML 1.1 reads "3e-4" as a string: numbers given as strings become the annotated numeric
    type; an integral float (1e3) is accepted for an int; ints are accepted for floats."""
    ok, coerced = _as_type(hint, value)
    if ok:
        return coerced
    raise UserError(f"config key {name} must be {_describe(hint)}; got {value!r}")


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _as_type(hint, value) -> tuple[bool, Any]:
    if _is_union(hint):  # a key's or a mapping's values (objective.weights: a number or auto)
        if value is None:
            return _NONE in typing.get_args(hint), None
        for option in typing.get_args(hint):
            ok, coerced = (False, None) if option is _NONE else _as_type(option, value)
            if ok:
                return True, coerced
        return False, None
    origin = typing.get_origin(hint) or hint
    if origin is bool:
        return isinstance(value, bool), value
    if origin in (int, float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, None
        if origin is float:
            return True, float(value)
        if isinstance(value, float) and not value.is_integer():
            return False, None
        return True, int(value)
    if origin is str:
        return isinstance(value, str), value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return False, None
        items = [_as_type(a, v) for a, v in zip(args, value)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if origin is dict:
        args = typing.get_args(hint)
        if not isinstance(value, dict):
            return False, None
        if not args:
            return True, value
        out = {}
        for k, v in value.items():
            ok, coerced = _as_type(args[1], v)
            if not isinstance(k, args[0]) or not ok:
                return False, None
            out[k] = coerced
        return True, out
    raise TypeError(f"config: no rule for type {hint!r}")


def _describe(hint) -> str:
    if _is_union(hint):
        parts = [_describe(a) for a in typing.get_args(hint) if a is not _NONE]
        return " or ".join(parts) + (" or null" if _NONE in typing.get_args(hint) else "")
    origin = typing.get_origin(hint) or hint
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a mapping"}
    if origin is tuple:
        return f"a list of {len(typing.get_args(hint))} numbers"
    return names.get(origin, str(hint))


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """``["optim.lr=3e-3", "model.kind=gru"]`` -> a new, re-validated TrainConfig (keys of
    earlier layouts, such as ``w_dislike``, are migrated)."""
    d = config.to_dict()
    for item in overrides:
        key, text = parse_override(item)
        for key, value in migrate_override(key, _coerce(text, item)):
            _set(d, key, value, item)
    return TrainConfig.from_dict(d)


def _set(d: dict, key: str, value: Any, item: str) -> None:
    """Sets dotted ``key`` of the configuration mapping ``d``: an existing key of a section, or
    any key of a mapping-valued field (``objective.weights.neutral``)."""
    node, hint = d, TrainConfig
    parts = key.split(".")
    for p in parts[:-1]:
        if p not in node or not isinstance(node[p], dict):
            raise UserError(f"unknown config section {p!r} in override {item!r}")
        node = node[p]
        hint = typing.get_type_hints(hint).get(p) if dataclasses.is_dataclass(hint) else None
    open_mapping = hint is not None and not dataclasses.is_dataclass(hint)
    if parts[-1] not in node and not open_mapping:
        raise UserError(f"unknown config key {key!r} in override {item!r}")
    node[parts[-1]] = value


def parse_override(item: str) -> tuple[str, str]:
    """``"optim.lr=3e-3"`` -> ``("optim.lr", "3e-3")``."""
    if "=" not in item:
        raise UserError(f"override must look like key.path=value; got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), value
