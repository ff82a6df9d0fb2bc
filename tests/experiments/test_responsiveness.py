"""responsiveness_report: inputs checked before any work; seeds pooled; controls required."""

from __future__ import annotations

import pytest

import negrec.experiments.responsiveness as responsiveness_module
from helpers import one_model_objective
from negrec.errors import UserError
from negrec.experiments.measure import MeasureSizes
from negrec.experiments.responsiveness import responsiveness_report
from negrec.experiments.training import train_and_evaluate
from negrec.models.config import ModelConfig
from negrec.sim import preset
from negrec.train.config import TrainConfig
from negrec.train.data_spec import DataSpec


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    data = DataSpec(source="simulated", sim=preset("default", num_users=80, events_per_user=20))
    cfg = TrainConfig(data=data, epochs=1, progress=False, tensorboard=False,
                      model=ModelConfig(dim=8), objective=one_model_objective())
    train_and_evaluate(cfg, out, bootstrap=0)
    return out / "best.pt"


def test_a_control_that_is_not_a_placebo_is_refused_before_any_measurement(
        tiny_checkpoint, tmp_path, monkeypatch):
    def too_early(*args, **kwargs):
        pytest.fail("a model was measured before --control was checked")

    monkeypatch.setattr(responsiveness_module, "measure", too_early)
    with pytest.raises(UserError, match="was not trained as a placebo"):
        responsiveness_report([tiny_checkpoint], MeasureSizes(histories=5),
                              controls=[tiny_checkpoint], out_dir=tmp_path)


def test_a_missing_control_file_is_refused_before_any_measurement(tiny_checkpoint, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(responsiveness_module, "measure",
                        lambda *a, **k: pytest.fail("measured before loading --control"))
    with pytest.raises((UserError, FileNotFoundError)):
        responsiveness_report([tiny_checkpoint], MeasureSizes(histories=5),
                              controls=[tmp_path / "nosuch.pt"], out_dir=tmp_path)


def test_without_a_control_the_report_says_it_is_not_evidence(tiny_checkpoint, tmp_path):
    sizes = MeasureSizes(histories=10, steps=3, actions=("dislike",), loop_users=0, bootstrap=20)
    report = responsiveness_report([tiny_checkpoint], sizes, train_control_seeds=0,
                                   out_dir=tmp_path)
    assert "control" not in report and "vs_control" not in report["objectives"]["input_ntr"]
    assert any("not evidence" in note for note in report["notes"])


def test_trained_controls_take_the_dislike_weight_of_an_ntr_checkpoint(tiny_checkpoint, tmp_path,
                                                                        monkeypatch):
    """A control copies the configuration of the first checkpoint trained with the
    not-to-recommend term (the weight to control); a report of objectives without the term,
    whose dislike weight was never chosen (auto), cannot train one and says so."""
    from negrec.train.checkpoint import load_checkpoint

    data = DataSpec(source="simulated", sim=preset("default", num_users=80, events_per_user=20))
    po = tmp_path / "po"
    train_and_evaluate(TrainConfig(data=data, epochs=1, progress=False, tensorboard=False,
                                   model=ModelConfig(dim=8), objective="positive_only"),
                       po, bootstrap=0)
    po_ck, ntr_ck = load_checkpoint(po / "best.pt"), load_checkpoint(tiny_checkpoint)
    assert po_ck.objective.weights["dislike"] == "auto"
    template = responsiveness_module._control_template({"positive_only": [po_ck],
                                                        "input_ntr": [ntr_ck]})
    assert template is ntr_ck
    with pytest.raises(UserError, match="the placebo control takes the dislike weight of the "
                                        "model it controls"):
        responsiveness_module.train_controls(po_ck, 1, tmp_path / "controls")
    assert not (tmp_path / "controls").exists()
    # the report says so before it measures anything
    monkeypatch.setattr(responsiveness_module, "measure",
                        lambda *a, **k: pytest.fail("measured before the control was checked"))
    with pytest.raises(UserError, match="was trained without one \\(auto\\)"):
        responsiveness_report([po / "best.pt"], MeasureSizes(histories=5), train_control_seeds=1,
                              out_dir=tmp_path)
