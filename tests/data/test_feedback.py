"""Feedback codes shared with the C++ code, and feedback labels mapped to them."""

from __future__ import annotations

import pytest

from negrec.data import Feedback, parse_feedback


def test_feedback_codes_match_cpp(native):
    codes = native.feedback_codes()
    assert codes == {f.label: int(f) for f in Feedback}
    assert parse_feedback("DISLIKE") is Feedback.DISLIKE and parse_feedback(3) is Feedback.SKIP
    with pytest.raises(ValueError, match="unknown feedback 'meh'"):
        parse_feedback("meh")


@pytest.mark.parametrize("mapping, message", [
    ({"like": "pad"}, r"feedback map entry 'like' -> 'pad': expected a non-empty label mapped to "
                      r"one of positive, neutral, skip, dislike"),
    ({"like": "good"}, r"'like' -> 'good'"),
    ({"like": "1"}, r"'like' -> '1'"),
    ({" ": "positive"}, r"' ' -> 'positive'"),
    ({"Like": "positive", "like ": "dislike"}, r"label 'like ' is mapped to both positive and dislike"),
])
def test_bad_feedback_map_entries(mapping, message):
    from negrec.data.feedback import FeedbackLabels

    with pytest.raises(ValueError, match=message):
        FeedbackLabels(mapping)
