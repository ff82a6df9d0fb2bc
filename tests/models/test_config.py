"""Model configuration: validation by the registered model kind."""

from __future__ import annotations

import pytest

from negrec.models import ModelConfig, build_model, model_kinds


def test_config_validation():
    with pytest.raises(ValueError, match="model.kind must be one of 'gru', 'sasrec'; got 'bert'"):
        ModelConfig(kind="bert")
    with pytest.raises(ValueError, match="must be divisible by num_heads"):
        ModelConfig(kind="sasrec", dim=10, num_heads=3)
    ModelConfig(kind="gru", dim=10, num_heads=3)  # heads are sasrec's: the GRU does not check them


def test_chrono_init_is_refused_for_a_model_without_update_gates():
    # it would otherwise be accepted and silently do nothing
    with pytest.raises(ValueError, match="model.chrono_init initialises a GRU's update gates"):
        ModelConfig(kind="sasrec", chrono_init=True)
    ModelConfig(kind="gru", chrono_init=True)


def test_history_mean_is_opt_in_for_a_gru_and_refused_for_a_transformer():
    with pytest.raises(ValueError, match="model.history_mean adds a running mean to a GRU's state"):
        ModelConfig(kind="sasrec", history_mean=True)
    assert build_model(ModelConfig(kind="gru", dim=8, max_len=8, history_mean=True), 20).taste is not None
    assert build_model(ModelConfig(kind="gru", dim=8, max_len=8), 20).taste is None  # the default


def test_every_model_module_registers_its_kind():
    from negrec.models import SequentialRecommender
    from negrec.models.registry import model_class

    assert {"gru", "sasrec"} <= set(model_kinds()) and list(model_kinds()) == sorted(model_kinds())
    for kind in model_kinds():
        assert issubclass(model_class(kind), SequentialRecommender), kind


def test_metadata_inputs_are_decided_by_the_items():
    import numpy as np

    auto = ModelConfig()
    assert auto.cluster_input is None and auto.creator_input is None
    clusters, creators = np.array([0, 1, -1]), np.array([2, -1, 0])
    both = auto.for_items(clusters, creators)
    assert both.cluster_input is True and both.creator_input is True
    # no creators in the data, or only unknown values: automatic inputs are off
    none = auto.for_items(np.full(3, -1), None)
    assert none.cluster_input is False and none.creator_input is False
    # an explicit choice is kept, and an explicit True without the metadata is an error
    assert ModelConfig(cluster_input=False).for_items(clusters, creators).cluster_input is False
    with pytest.raises(ValueError, match="model.creator_input is true but the data's items have no creators"):
        ModelConfig(creator_input=True).for_items(clusters, None)


@pytest.mark.parametrize("settings, message", [
    (dict(chrono_max_memory=10), "does nothing with chrono_init false"),
    (dict(chrono_init=True, chrono_max_memory=0), r"must be in \[1, max_len - 1 = 49\] events; got 0"),
    (dict(chrono_init=True, chrono_max_memory=50), r"must be in \[1, max_len - 1 = 49\] events; got 50"),
])
def test_chrono_max_memory_is_refused_where_it_would_do_nothing_or_too_much(settings, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(kind="gru", max_len=50, **settings)
    ModelConfig(kind="gru", max_len=50, chrono_init=True, chrono_max_memory=49)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
def test_feedback_gain_rate_must_be_a_positive_number(rate):
    with pytest.raises(ValueError, match=r"model.feedback_gain_rate must be a finite number > 0 "
                                         r"\(or null: sqrt\(dim\)\); got"):
        ModelConfig(feedback_gain_rate=rate)
    ModelConfig(feedback_gain_rate=None)
    ModelConfig(feedback_gain_rate=0.5)
