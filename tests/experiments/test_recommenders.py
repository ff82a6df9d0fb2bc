"""Measuring any recommender: factories by name, row names, the report beside the baselines
(negrec.measure), and a checkpoint's report with recommenders beside it."""

from __future__ import annotations

import json
import sys

import pytest

import negrec
from negrec.errors import UserError
from negrec.eval.baselines import BASELINES, FeedbackBlind, FilterDisliked, ItemKNN
from negrec.experiments.measure import MeasureSizes
from negrec.experiments.recommenders import build_recommenders, load_factory, world_of_spec
from negrec.sim import SimConfig
from negrec.train.data_spec import DataSpec

SMALL = DataSpec(source="simulated", sim=SimConfig(num_users=60, events_per_user=15,
                                                   num_items=200, num_creators=40,
                                                   num_clusters=5))
SIZES = MeasureSizes(histories=30, steps=4, actions=("dislike",), loop_users=10, loop_steps=3,
                     loop_warmup=2, bootstrap=50)

FACTORY = '''
import numpy as np

class FirstItems:
    name = "first_items"
    def __init__(self, meta):
        self.v = meta.num_items
    def recommend(self, items, feedback, k):
        return np.stack([np.setdiff1d(np.arange(self.v), it)[:k] for it in items])

def make(meta):
    return FirstItems(meta)

def broken(meta):
    raise RuntimeError("boom")
'''


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "outside_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "outside_factory"
    sys.modules.pop("outside_factory", None)


def test_factories_are_loaded_by_name_with_clear_errors(factory_module):
    assert load_factory(f"{factory_module}:make").__name__ == "make"
    for spec, message in [
        ("no_colon", r"expected pkg.module:factory"),
        ("no_such_module_xyz:make", r"cannot import module 'no_such_module_xyz': "
                                    r"ModuleNotFoundError"),
        (f"{factory_module}:nothing", r"module 'outside_factory' has no 'nothing'"),
        (f"{factory_module}:np", r"'np' is a module, not a callable"),
    ]:
        with pytest.raises(UserError, match=message):
            load_factory(spec)
    meta = world_of_spec(SMALL).item_meta
    with pytest.raises(UserError, match=r"outside_factory:broken: the factory raised "
                                        r"RuntimeError: boom"):
        build_recommenders(f"{factory_module}:broken", meta)


def test_rows_are_named_by_key_name_or_dotted_path(factory_module):
    meta = world_of_spec(SMALL).item_meta
    recs = build_recommenders([f"{factory_module}:make", lambda items, feedback, k: None], meta)
    assert list(recs) == ["first_items", "test_rows_are_named_by_key_name_or_dotted_path.<locals>.<lambda>"]
    assert list(build_recommenders({"mine": f"{factory_module}:make"}, meta)) == ["mine"]
    with pytest.raises(UserError, match="two recommenders are named 'first_items'"):
        build_recommenders([f"{factory_module}:make"] * 2, meta)
    with pytest.raises(UserError, match="expected a recommender .* got int"):
        build_recommenders([3], meta)


def test_negrec_measure_reports_recommenders_beside_the_baselines(tmp_path, factory_module):
    meta = world_of_spec(SMALL).item_meta
    knn = ItemKNN(world_of_spec(SMALL).train_log)
    report = negrec.measure({"filtered": FilterDisliked(knn, meta.cluster),
                             "blind": FeedbackBlind(knn), "outside": f"{factory_module}:make"},
                            SMALL, sizes=SIZES, out_dir=tmp_path / "r")
    rows = report["objectives"]
    assert list(rows) == ["filtered", "blind", "outside", *BASELINES]
    assert [rows[n]["kind"] for n in rows] == ["recommender"] * 3 + ["baseline"] * len(BASELINES)
    resp = report["responsiveness"]
    assert resp["filtered"] == {"mean": -1.0, "ci_low": -1.0, "ci_high": -1.0}
    assert resp["blind"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert rows["outside"]["closed_loop"]["num_users"] == 10 and report["simulated"]
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["responsiveness"]["filtered"]["mean"] == -1.0
    assert (tmp_path / "r" / "report.md").exists()
