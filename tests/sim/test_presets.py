"""Simulator presets, the most-popular baseline and the permuted-feedback placebo."""

from __future__ import annotations

import pytest

from negrec.sim import PRESETS, Simulator, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_generates_a_log_with_negative_feedback(name):
    log, _ = Simulator(preset(name, num_users=200, events_per_user=30), seed=0).generate()
    counts = log.feedback_counts()
    assert log.num_users == 200 and log.num_events == 6000
    assert counts["dislike"] > 0 and counts["skip"] > 0 and counts["positive"] > 0
    assert log.item_meta.has_creators == PRESETS[name].creators_visible


def test_presets_differ_in_what_they_claim():
    def rates(name):
        log, _ = Simulator(preset(name, num_users=300, events_per_user=40), seed=0).generate()
        c = log.feedback_counts()
        return {k: v / log.num_events for k, v in c.items()}, log

    base, base_log = rates("default")
    rare, _ = rates("rare_dislikes")
    assert rare["dislike"] < 0.5 * base["dislike"] and rare["skip"] > base["skip"]
    _, large = rates("large_catalog")
    assert large.num_items > 3 * base_log.num_items
    assert len(large.item_meta.cluster_names) > len(base_log.item_meta.cluster_names)
    _, nocreators = rates("no_creators")
    assert nocreators.item_meta.creator is None


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown simulator preset 'nope'; expected one of"):
        preset("nope")
