"""Model configuration: validation by the registered model kind."""

from __future__ import annotations

import pytest

from negrec.models import ModelConfig, model_kinds


def test_config_validation():
    with pytest.raises(ValueError, match="model.kind must be one of 'gru', 'sasrec'; got 'bert'"):
        ModelConfig(kind="bert")
    with pytest.raises(ValueError, match="must be divisible by num_heads"):
        ModelConfig(dim=10, num_heads=3)
    ModelConfig(kind="gru", dim=10, num_heads=3)  # heads are sasrec's: the GRU does not check them


def test_every_model_module_registers_its_kind():
    from negrec.models import SequentialRecommender
    from negrec.models.registry import model_class

    assert {"gru", "sasrec"} <= set(model_kinds()) and list(model_kinds()) == sorted(model_kinds())
    for kind in model_kinds():
        assert issubclass(model_class(kind), SequentialRecommender), kind
