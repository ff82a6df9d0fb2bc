"""negrec recommend says what a cluster label is where the data chose one value of several."""

from __future__ import annotations

from negrec.cli.recommend_cmd import cluster_rule
from negrec.train.data_spec import DataSpec


def test_a_movielens_cluster_says_which_genre_it_is():
    assert cluster_rule(DataSpec(source="movielens", path="x")) == (
        "the rarest of the movie's genres (--genre-rule rarest)")
    assert cluster_rule(DataSpec(source="movielens", path="x", genre_rule="first")) == (
        "the first listed of the movie's genres (--genre-rule first)")


def test_other_data_need_no_rule():
    assert cluster_rule(DataSpec()) is None
