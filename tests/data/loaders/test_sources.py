"""The data-source registry: every loader module registers the sources it reads, and the
configuration and the command line offer exactly those (and the simulator)."""

from __future__ import annotations

import pytest

from negrec.data.loaders import (ColumnMap, RatingMapping, load_table, source_loader,
                                 source_names)
from negrec.data.loaders.sources import data_source
from negrec.train.data_spec import DataSpec, sources


def test_every_source_is_registered_once():
    assert {"csv", "kuairand", "movielens", "npz", "parquet"} <= set(source_names())
    assert list(source_names()) == sorted(source_names())
    assert sources() == (*source_names(), "simulated")
    assert source_loader("csv") is source_loader("parquet")
    with pytest.raises(ValueError, match="data source 'csv' is registered twice"):
        data_source("csv")(lambda path, spec: None)


def test_a_source_reads_its_options_from_the_data_spec(tmp_path):
    ev = tmp_path / "e.csv"
    ev.write_text("uid;iid;ts;r\nu;a;1;5\nu;b;2;1\nv;a;3;3\n")
    spec = DataSpec(source="csv", path=str(ev), user_col="uid", item_col="iid", time_col="ts",
                    rating_col="r", delimiter=";", dislike_max=1.0, positive_min=5.0)
    log = source_loader("csv")(ev, spec)
    assert log.feedback_counts() == {"positive": 1, "neutral": 1, "skip": 0, "dislike": 1}
    direct = load_table(ev, columns=ColumnMap(user="uid", item="iid", timestamp="ts", rating="r"),
                        delimiter=";", rating_mapping=RatingMapping(5.0, 1.0))
    assert log.feedback.tolist() == direct.feedback.tolist()
    with pytest.raises(ValueError, match="data source must be one of csv, kuairand"):
        DataSpec(source="excel", path=str(ev))
