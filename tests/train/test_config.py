"""The training configuration: YAML, overrides, validation."""

from __future__ import annotations

import pytest

from negrec.train import TrainConfig, apply_overrides, load_config


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: input_only\nmodel:\n  kind: gru\n  dim: 32\noptim:\n  lr: 0.01\n")
    cfg = load_config(path)
    assert cfg.objective.name == "input_only" and cfg.model.kind == "gru" and cfg.optim.lr == 0.01
    cfg = apply_overrides(cfg, ["optim.lr=3e-4", "model.dim=48", "objective=filter_history"])
    assert cfg.optim.lr == 3e-4 and cfg.model.dim == 48 and not cfg.model.feedback_input
    with pytest.raises(ValueError, match="unknown config key 'model.width' in override"):
        apply_overrides(cfg, ["model.width=3"])
    path.write_text("model:\n  colour: red\n")
    with pytest.raises(ValueError, match="unknown config key model.colour"):
        load_config(path)
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainConfig(objective="ntr")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
