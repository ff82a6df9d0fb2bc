"""benches/dislike_causes.py: the ground truth recorded at the test events belongs to those
events, leaves the log as generated, and its summary says what the log holds."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from negrec.data.feedback import Feedback
from negrec.data.split import leave_last_out
from negrec.sim import Simulator, preset

BENCH = Path(__file__).resolve().parents[2] / "benches" / "dislike_causes.py"
EVENTS, HOLDOUT = 30, 5


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("dislike_causes_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def small(world: str = "default") -> Simulator:
    return Simulator(preset(world, num_users=120, events_per_user=EVENTS), seed=0)


def test_records_are_the_test_events_and_the_log_is_unchanged(bench):
    log, feedback, rec = bench.record_test_events(small(), EVENTS, HOLDOUT)
    plain, _ = small().generate()
    np.testing.assert_array_equal(log.items, plain.items)
    np.testing.assert_array_equal(log.feedback, plain.feedback)
    test = leave_last_out(log, HOLDOUT).test
    np.testing.assert_array_equal(feedback, test.feedback)
    assert all(len(v) == len(test) for v in rec.values())
    np.testing.assert_array_equal(rec["item"], test.items)  # recorded at the test events' steps
    # the recorded terms are those of the held-out item: their sum is its oracle rank's score,
    # so the item itself is never ranked below every unseen item
    assert (rec["oracle_rank"] >= 1).all() and (rec["oracle_rank"] <= rec["unseen"]).all()
    # positives sit high in the true-affinity ranking, dislikes low
    pos, neg = feedback == Feedback.POSITIVE, feedback == Feedback.DISLIKE
    assert np.median(rec["oracle_rank"][pos]) < np.median(rec["oracle_rank"][neg])


def test_main_writes_the_csv_and_the_key_value_line(bench, tmp_path, capsys):
    out = tmp_path / "causes.csv"
    bench.main(["--worlds", "default", "--sim-users-factor", "0.05", "--sim-events", str(EVENTS),
                "--csv", str(out)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    keys = dict(kv.split("=") for kv in last.split())
    assert set(keys) == {"worlds", "worlds_dislikes_mostly_recent", "oracle_dislikes_in_top10_max"}
    assert keys["worlds"] == "1"
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    dominant = [float(r["value"]) for r in rows if r["group"] == "dislikes"
                and r["figure"].startswith("dominant_") and r["figure"] != "dominant_recent"]
    assert sum(dominant) == pytest.approx(1.0)
