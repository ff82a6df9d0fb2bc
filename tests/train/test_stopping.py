"""When training stops and which validated model it keeps (:mod:`negrec.train.stopping`): the
rules, and the trainer applying them (validations at least ``eval_min_steps`` apart, none kept
inside the warm-up). Budgets ending a run and best.pt without validation: ``test_run_folder.py``."""

from __future__ import annotations

import pytest

from negrec.data import leave_one_out
from negrec.sim import Simulator
from negrec.train import OptimConfig, Trainer
from negrec.train.stopping import budget_reached, judge_validation, validation_due

from .test_trainer import SIM, small_config


@pytest.fixture(scope="module")
def sim_split():
    log, _ = Simulator(SIM, seed=0).generate()
    return leave_one_out(log)


def test_validations_are_at_least_eval_min_steps_apart(sim_split, tmp_path):
    # a small log has short epochs: validating after each one would let early stopping decide
    # within a handful of steps
    steps = []

    def validate(model):
        steps.append(t.step)
        return {"ndcg@10": 0.1}

    t = Trainer(small_config(epochs=8, eval_every=1, eval_min_steps=12, batch_size=64),
                sim_split.train, tmp_path / "v", validate=validate)
    per_epoch = t.steps_per_epoch
    assert per_epoch < 12  # the premise: several epochs between validations
    t.fit()
    assert steps and all(b - a >= 12 for a, b in zip([0] + steps, steps[:-1]))
    assert steps[-1] == 8 * per_epoch  # the last epoch always validates
    assert len(steps) < 8


def test_a_validation_inside_the_warmup_never_gives_the_best_checkpoint(sim_split, tmp_path):
    # the outside test of issue 18 got a best checkpoint of 23 steps, inside the warm-up
    t = Trainer(small_config(epochs=2, eval_every=1, eval_min_steps=0,
                             optim=OptimConfig(lr=3e-3, warmup_steps=10_000)),
                sim_split.train, tmp_path / "w", validate=lambda model: {"ndcg@10": 0.5})
    result = t.fit()
    assert len(result.history) == 2  # both validations ran and are recorded ...
    assert result.best_metric is None and result.best_checkpoint == "last"  # ... neither is kept
    after = Trainer(small_config(epochs=2, eval_every=1, eval_min_steps=0,
                                 optim=OptimConfig(lr=3e-3, warmup_steps=1)),
                    sim_split.train, tmp_path / "x", validate=lambda model: {"ndcg@10": 0.5}).fit()
    assert after.best_checkpoint == "validation" and after.best_epoch == 1


def test_patience_counts_validations_without_improvement_and_a_new_best_resets_it():
    cfg = small_config(early_stopping_patience=2, optim=OptimConfig(lr=3e-3, warmup_steps=3))
    best, bad, verdicts = None, 0, []
    for step, value in [(3, 0.9), (4, 0.2), (5, 0.3), (6, 0.25), (7, 0.25)]:
        v = judge_validation(cfg, value, step=step, best_metric=best, bad_validations=bad)
        best, bad = (value if v.best else best), v.bad_validations
        verdicts.append((v.best, v.bad_validations, v.stop))
    # step 3 is inside the warm-up: not kept, no patience; 0.2 and 0.3 are new bests
    assert verdicts == [(False, 0, False), (True, 0, False), (True, 0, False),
                        (False, 1, False), (False, 2, True)]
    off = judge_validation(small_config(early_stopping_patience=0), 0.1, step=10,
                           best_metric=0.5, bad_validations=7)
    assert not off.stop and off.text == "no improvement (early stopping off)"


def test_validation_due_and_budget():
    cfg = small_config(epochs=6, eval_every=2, eval_min_steps=10)
    assert not validation_due(cfg, epochs_done=1, step=50, history=[])  # not an eval_every epoch
    assert validation_due(cfg, epochs_done=2, step=10, history=[])
    assert not validation_due(cfg, epochs_done=4, step=19, history=[{"step": 10}])
    assert validation_due(cfg, epochs_done=6, step=21, history=[{"step": 19}])  # the last epoch
    assert not validation_due(small_config(eval_every=0), epochs_done=2, step=99, history=[])
    assert not budget_reached(cfg, train_seconds=1e9, step=10**9)  # no budget set
    assert budget_reached(small_config(max_steps=5), train_seconds=0.0, step=5)
    assert budget_reached(small_config(max_minutes=0.5), train_seconds=30.0, step=0)
