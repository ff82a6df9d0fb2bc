"""Training: the objectives, the configuration (and the migration of earlier layouts),
checkpoints, the batch loss, and the trainer with its pieces (windows, RNG state, metrics log,
run folder, resume, stopping, data parallelism)."""

from negrec.train.checkpoint import LoadedCheckpoint, load_checkpoint, read_checkpoint
from negrec.train.config import LossConfig, OptimConfig, TrainConfig, apply_overrides, load_config
from negrec.train.data_spec import DataSpec
from negrec.train.loss import LossParts, batch_loss
from negrec.train.objectives import OBJECTIVES, Objective, get_objective
from negrec.train.trainer import NonFiniteLossError, Trainer, TrainResult
from negrec.train.windows import training_windows

__all__ = ["LoadedCheckpoint", "load_checkpoint", "read_checkpoint", "LossConfig", "OptimConfig",
           "TrainConfig", "apply_overrides", "load_config", "DataSpec", "LossParts",
           "batch_loss", "OBJECTIVES", "Objective", "get_objective", "NonFiniteLossError",
           "Trainer", "TrainResult", "training_windows"]
