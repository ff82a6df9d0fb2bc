"""Training: configuration, the batch loss, and the trainer (checkpoints, resume, DDP)."""

from negrec.train.config import LossConfig, OptimConfig, TrainConfig, apply_overrides, load_config
from negrec.train.loss import LossParts, batch_loss
from negrec.train.trainer import NonFiniteLossError, Trainer, TrainResult, training_windows

__all__ = ["LossConfig", "OptimConfig", "TrainConfig", "apply_overrides", "load_config",
           "LossParts", "batch_loss", "NonFiniteLossError", "Trainer", "TrainResult",
           "training_windows"]
