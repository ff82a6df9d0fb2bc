"""Train-and-evaluate, the application's one training run: metrics.json is strict JSON (an
undefined figure is null, never NaN) and holds what the caller gets back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import one_model_objective
from negrec.data import EventLog, leave_one_out
from negrec.experiments.training import train_and_evaluate
from negrec.models import ModelConfig
from negrec.train import TrainConfig


def test_metrics_json_is_strict_json_with_null_for_undefined_figures(tmp_path):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 8)
    log = EventLog.from_events(users, rng.integers(0, 15, len(users)), np.arange(len(users)),
                               np.ones(len(users), np.int64))  # positives only: no dislike users
    cfg = TrainConfig(model=ModelConfig(dim=8, num_layers=1, max_len=8), epochs=1,
                      progress=False, tensorboard=False, objective=one_model_objective())
    metrics = train_and_evaluate(cfg, tmp_path / "run", split=leave_one_out(log), ks=(10,),
                                 bootstrap=20)
    assert math.isnan(metrics["test"]["dislike_exposure@10"])  # what the caller gets
    text = (tmp_path / "run" / "metrics.json").read_text()
    stored = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert stored["test"]["dislike_exposure@10"] is None
    assert stored["test"]["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"])
    assert stored["objective"] == {"name": "input_ntr",
                                   "weights": {"positive": 1.0, "dislike": 20.0, "skip": 1.0}}


@pytest.mark.parametrize("placebo,needle", [(False, "to train one model, give the weight a number"),
                                            (True, "a placebo control takes the weight of the "
                                                   "model it controls")])
def test_an_auto_dislike_weight_is_refused_before_any_work(tmp_path, placebo, needle):
    from negrec.errors import UserError

    cfg = TrainConfig(objective="input_ntr", placebo=placebo)  # the default weight: auto
    with pytest.raises(UserError, match=f"objective.weights.dislike is auto.*{needle}"):
        train_and_evaluate(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
