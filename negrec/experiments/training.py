"""Train-and-evaluate: one training run and its offline evaluation, as ``negrec train``, the
demo and the benchmarks run it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from negrec.data.log import EventLog
from negrec.data.split import Split, make_split
from negrec.data.transforms import permute_feedback
from negrec.errors import UserError
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_checkpoint, from_model
from negrec.experiments.data import load_data
from negrec.files import write_json
from negrec.progress import stage
from negrec.train.checkpoint import load_checkpoint
from negrec.train.config import TrainConfig
from negrec.train.run_folder import check_run_folder
from negrec.train.trainer import Trainer

__all__ = ["train_and_evaluate"]


def train_and_evaluate(config: TrainConfig, out_dir: str | Path, *, log: EventLog | None = None,
                       split: Split | None = None, resume: bool = False, overwrite: bool = False,
                       ks=(10, 20), bootstrap: int = 1000) -> dict | None:
    """Loads the data (unless given), splits it on the full log (``config.split``), trains with
    early stopping on validation NDCG@10, evaluates ``best.pt`` (the best validated model, or
    the last one when no validation ran) on the validation and test events, and writes
    ``metrics.json`` beside the checkpoints (strict JSON: undefined figures are null). Returns
    the metrics, plus ``per_user``: the validation and test per-user figures (arrays, for
    pooling over seeds; not written); None on the other ranks of a torchrun job (they only
    train). ``resume`` / ``overwrite``: see :class:`~negrec.train.trainer.Trainer`. With
    ``config.placebo`` the model trains on the training events with their feedback codes
    shuffled (a control; evaluation is on the real held-out events)."""
    if config.objective.chooses_dislike_weight:
        raise UserError(
            "objective.weights.dislike is auto, which is chosen on the validation events by "
            "training several models (negrec.experiments.tuning.tune_dislike_weight; negrec train "
            "does it); " + ("a placebo control takes the weight of the model it controls: give "
                            "it (tune.json's chosen_weight)" if config.placebo else
                            "to train one model, give the weight a number"))
    out = Path(out_dir)
    check_run_folder(out, resume=resume, overwrite=overwrite)  # before loading the data
    if split is None:
        log = log if log is not None else load_data(config.data)
        split = make_split(log, config.split)
    if config.placebo:
        split = dataclasses.replace(split, train=permute_feedback(split.train, config.seed))
    inputs = config.objective.inputs

    def validate(model):
        return evaluate(from_model(model, inputs), split.valid, ks=(config.eval_k,), bootstrap=0).metrics

    t0 = time.perf_counter()
    trainer = Trainer(config, split.train, out, validate=validate,
                      validate_metric=f"ndcg@{config.eval_k}", resume=resume,
                      overwrite=overwrite)
    result = trainer.fit()
    if not trainer.is_main:
        # under torchrun, rank 0 evaluates and writes (its node has the checkpoints); the other
        # ranks wait for it in finish(), so that every rank ends together
        trainer.ranks.finish()
        return None
    wall = time.perf_counter() - t0
    best = load_checkpoint(out / "best.pt")
    with stage(f"evaluating {out / 'best.pt'} on {len(split.valid)} validation and "
               f"{len(split.test)} test events"):
        valid = evaluate(from_checkpoint(best), split.valid, ks=ks,
                         bootstrap=bootstrap, seed=config.seed)
        test = evaluate(from_checkpoint(best), split.test, ks=ks,
                        bootstrap=bootstrap, seed=config.seed)
    metrics = {
        "objective": config.objective.to_dict(),
        "model": best.model.config.to_dict(),  # as built: automatic choices decided
        "valid": valid.flat(),
        "test": test.flat(),
        "train": {"steps": result.steps, "epochs": result.epochs_completed,
                  "best_epoch": result.best_epoch, "best_checkpoint": result.best_checkpoint,
                  "stopped_early": result.stopped_early,
                  "stopped_by_budget": result.stopped_by_time,
                  "train_seconds": result.train_seconds, "wall_seconds": wall,
                  "targets_per_s": result.targets_per_s, "sequences_per_s": result.sequences_per_s,
                  "validation_history": result.history},
        "data": {"source": split.train.source, "split": split.kind,
                 "train_events": split.train.num_events,
                 "valid_users": len(split.valid), "test_users": len(split.test),
                 "users_too_short": split.skipped_users},
    }
    write_json(out / "metrics.json", metrics)
    trainer.ranks.finish()
    return {**metrics, "per_user": {"valid": valid.per_user, "test": test.per_user}}
