"""The objective registry: what each objective's model sees and how its targets are labelled and
weighted; the CLI's choices and the configuration come from it."""

from __future__ import annotations

import pytest

from negrec.data import Feedback
from negrec.train.config import TrainConfig, apply_overrides
from negrec.train.objectives import AUTO, DEFAULT_WEIGHTS, OBJECTIVES, Objective, Term, get_objective


def test_objectives_table():
    po, io, ntr, fh = (get_objective(n) for n in ("positive_only", "input_only", "input_ntr",
                                                  "filter_history"))
    everything = {Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.SKIP, Feedback.DISLIKE}
    assert po.inputs.events == everything and not po.inputs.codes
    assert io.inputs.events == everything and io.inputs.codes
    assert ntr.inputs.events == everything and ntr.inputs.codes
    assert fh.inputs.events == everything - {Feedback.DISLIKE} and not fh.inputs.codes
    for o in (po, io, fh):
        assert {f: r.label for f, r in o.targets().items()} == {Feedback.POSITIVE: 1}
    t = get_objective("input_ntr", {"positive": 2.0, "dislike": 3.0, "skip": 0.5}).targets()
    assert (t[Feedback.POSITIVE].label, t[Feedback.POSITIVE].weight) == (1, 2.0)
    assert (t[Feedback.DISLIKE].label, t[Feedback.DISLIKE].weight) == (-1, 3.0)
    assert (t[Feedback.SKIP].label, t[Feedback.SKIP].weight) == (-1, 0.5)
    assert get_objective("input_ntr", {"skip": 0, "dislike": 1}).targets()[Feedback.SKIP].label == 0
    with pytest.raises(ValueError, match=f"objective must be one of {', '.join(OBJECTIVES)}; "
                                         "got 'ntr'"):
        get_objective("ntr")


def test_the_terms_are_declared_per_feedback_type():
    """input_ntr's negative feedback trains the not-to-recommend term, positives the softmax
    term; nothing is decided by an objective's name."""
    assert OBJECTIVES["input_ntr"].terms == {Feedback.POSITIVE: Term.POSITIVE,
                                             Feedback.DISLIKE: Term.NTR, Feedback.SKIP: Term.NTR}
    for name in ("positive_only", "input_only", "filter_history"):
        assert OBJECTIVES[name].terms == {Feedback.POSITIVE: Term.POSITIVE}
    # an objective registered under another name behaves by its spec alone
    spec = OBJECTIVES["input_ntr"]
    renamed = type(spec)("ntr_copy", spec.inputs, spec.terms, spec.summary)
    OBJECTIVES["ntr_copy"] = renamed
    try:
        assert (Objective("ntr_copy", {"dislike": 5}).targets()
                == Objective("input_ntr", {"dislike": 5}).targets())
        assert Objective("ntr_copy").chooses_dislike_weight
    finally:
        del OBJECTIVES["ntr_copy"]


def test_weights_default_per_feedback_type_and_are_checked():
    assert Objective().weights == DEFAULT_WEIGHTS == {"positive": 1.0, "dislike": AUTO, "skip": 1.0}
    assert Objective("input_ntr", {"dislike": 50}).weights == {"positive": 1.0, "dislike": 50.0,
                                                               "skip": 1.0}
    with pytest.raises(ValueError, match="unknown feedback type 'dislikes'"):
        Objective("input_ntr", {"dislikes": 1.0})
    for bad in (-1.0, float("nan"), float("inf"), True, "5", "Auto"):
        with pytest.raises(ValueError, match="objective weight dislike must be a finite number >= 0 "
                                             "\\(or auto\\)"):
            Objective("input_ntr", {"dislike": bad})
    with pytest.raises(ValueError, match="objective weight skip must be a finite number >= 0; got 'auto'"):
        Objective("input_ntr", {"skip": AUTO})  # only the dislike weight is chosen
    assert Objective("input_ntr", {"neutral": 2.0}).to_dict() == {
        "name": "input_ntr", "weights": {"positive": 1.0, "dislike": AUTO, "skip": 1.0, "neutral": 2.0}}


def test_an_auto_dislike_weight_is_chosen_before_training_never_trained_with():
    ntr = Objective("input_ntr")
    assert ntr.chooses_dislike_weight
    with pytest.raises(ValueError, match="objective.weights.dislike is auto: it is chosen on the "
                                         "validation events before training"):
        ntr.targets()
    # objectives without a dislike term ignore the weight
    for name in ("positive_only", "input_only", "filter_history"):
        assert not Objective(name).chooses_dislike_weight
        assert set(Objective(name).targets()) == {Feedback.POSITIVE}
    assert not Objective("input_ntr", {"dislike": 60}).chooses_dislike_weight
    # an override and a YAML file say it as they say a number
    assert apply_overrides(TrainConfig(), ["objective.weights.dislike=60"]).objective.weights[
        "dislike"] == 60.0
    assert apply_overrides(TrainConfig(objective=Objective("input_ntr", {"dislike": 60})),
                           ["objective.weights.dislike=auto"]).objective.chooses_dislike_weight
