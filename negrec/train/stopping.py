"""When training stops, and which validated model a run keeps.

A run ends after its epochs, or before when its budget is used up (:func:`budget_reached`:
``max_minutes`` of training time or ``max_steps`` optimizer steps, the sessions before a resume
included), or early, when validations stop improving:

- a validation is due after every ``eval_every``-th epoch, at least ``eval_min_steps`` steps
  after the last one (the last epoch always validates), so that with short epochs (a small
  log) early stopping's patience spans a similar number of steps on small and large logs
  (:func:`validation_due`);
- a validation inside the learning-rate warm-up is recorded but never kept and costs no
  patience: the learning rate is still rising (:func:`judge_validation`);
- a value better than every earlier one is the new best, which the trainer saves as
  ``best.pt``, and resets the patience; any other costs one unit of it, and training stops
  when ``early_stopping_patience`` units are used up (0: early stopping off).
"""

from __future__ import annotations

from dataclasses import dataclass

from negrec.train.config import TrainConfig

__all__ = ["Verdict", "budget_reached", "judge_validation", "validation_due"]


def budget_reached(config: TrainConfig, *, train_seconds: float, step: int) -> bool:
    """``max_minutes`` of training time or ``max_steps`` optimizer steps (in total, the
    sessions before a resume included) are used up."""
    return ((config.max_minutes is not None and train_seconds >= config.max_minutes * 60)
            or (config.max_steps is not None and step >= config.max_steps))


def validation_due(config: TrainConfig, *, epochs_done: int, step: int,
                   history: list[dict]) -> bool:
    """Whether to validate after ``epochs_done`` epochs, at optimizer step ``step``, after the
    validations of ``history``: every ``eval_every``-th epoch (0: never), at least
    ``eval_min_steps`` steps since the last validation (or the start), or the last epoch."""
    if not (config.eval_every and epochs_done % config.eval_every == 0):
        return False
    since = step - (history[-1]["step"] if history else 0)
    return epochs_done == config.epochs or since >= config.eval_min_steps


@dataclass(frozen=True)
class Verdict:
    """What a validation means for the run: ``best``: it is the new best (keep it as
    ``best.pt``); ``bad_validations``: the patience used after it; ``stop``: training stops
    early; ``text``: the verdict for the log."""

    best: bool
    bad_validations: int
    stop: bool
    text: str


def judge_validation(config: TrainConfig, value: float, *, step: int,
                     best_metric: float | None, bad_validations: int) -> Verdict:
    """The verdict on a validation giving ``value`` (higher is better) at optimizer step
    ``step``, after validations whose best value is ``best_metric`` (None: none kept yet)
    with ``bad_validations`` units of patience used since it."""
    patience = config.early_stopping_patience
    best = False
    if step <= config.optim.warmup_steps:
        text = "inside the warm-up, not kept"
        # the learning rate is still rising: never the model to keep, no patience
    elif best_metric is None or value > best_metric:
        best, bad_validations = True, 0
        text = "best so far, saved as best.pt"
    else:
        bad_validations += 1
        text = (f"no improvement ({bad_validations}/{patience} before early stopping)"
                if patience else "no improvement (early stopping off)")
    return Verdict(best=best, bad_validations=bad_validations,
                   stop=bool(patience and bad_validations >= patience), text=text)
