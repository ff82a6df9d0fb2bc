"""Offline metrics on models whose ranks are known, and the train/evaluate/recommend CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from negrec.data import EventLog, Feedback, leave_one_out
from negrec.eval import bootstrap_ci, evaluate, held_out_ranks
from negrec.eval.recommend import recommend
from negrec.models import get_objective
from toy_models import ScoreTableModel

V = 6


def toy_log():
    # three users; last event = test, previous = valid
    users = [0] * 4 + [1] * 4 + [2] * 3
    items = [0, 1, 2, 3, 0, 1, 4, 5, 2, 3, 4]
    fb = [1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 2]
    return EventLog.from_events(users, items, list(range(len(users))), fb)


def ranking_model():
    # whatever the last item, candidates rank 5 > 4 > 3 > 2 > 1 > 0
    row = torch.arange(V, dtype=torch.float32)
    return ScoreTableModel(row.expand(V + 1, V).clone())


def test_ranks_exclusion_and_metrics():
    log = toy_log()
    split = leave_one_out(log)
    obj = get_objective("input_only")
    model = ranking_model()
    ranks = held_out_ranks(model, split.test, obj, exclude_history=False)
    # test items: user0 -> 3, user1 -> 5, user2 -> 4; ranks among 6 items by descending id
    assert ranks.tolist() == [3, 1, 2]
    # the reverse order (0 best): history items outrank the held-out ones unless excluded
    reverse = ScoreTableModel(-torch.arange(V, dtype=torch.float32).expand(V + 1, V).clone())
    assert held_out_ranks(reverse, split.test, obj, exclude_history=False).tolist() == [4, 6, 5]
    # user0 history {0,1,2} -> 3 ranks first; user1 history {0,1,4} -> 5 after 2, 3;
    # user2 history {2,3} -> 4 after 0, 1
    assert held_out_ranks(reverse, split.test, obj, exclude_history=True).tolist() == [1, 3, 3]
    res = evaluate(model, split.test, obj, ks=(1, 3), bootstrap=200, exclude_history=False)
    # positive-last users: user0 (rank 3); dislike-last: user1 (rank 1); neutral: user2
    assert res.counts == {"users": 3, "positive_users": 1, "dislike_users": 1, "other_users": 1}
    assert res.metrics["recall@1"] == 0.0 and res.metrics["recall@3"] == 1.0
    assert res.metrics["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert res.metrics["mrr"] == pytest.approx(1 / 3)
    assert res.metrics["dislike_exposure@1"] == 1.0
    assert res.metrics["hr_gap@3"] == 0.0


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    small = rng.random(50)
    big = rng.random(5000)
    lo, hi = bootstrap_ci(small, resamples=500)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(big, resamples=500)
    assert (hi2 - lo2) < (hi - lo) / 5  # ~ 1/sqrt(100) narrower
    assert all(math.isnan(x) for x in bootstrap_ci(np.zeros(0)))


def test_recommend_filters():
    scores = torch.arange(V, dtype=torch.float32).expand(V + 1, V).clone()
    model = ScoreTableModel(scores)
    from negrec.data.log import ItemMeta

    meta = ItemMeta(raw_ids=np.arange(V), cluster=np.zeros(V, np.int32), cluster_names=["c"],
                    creator=np.array([0, 0, 1, 1, 2, 2], np.int32), creator_names=["a", "b", "c"])
    hist = [([0, 4], [1, 4])]  # liked item 0, disliked item 4 (creator 2 also made item 5)
    obj = get_objective("input_ntr")
    ids, _ = recommend(model, obj, hist, 3)
    assert ids[0].tolist() == [5, 3, 2]  # history excluded
    ids, _ = recommend(model, obj, hist, 3, exclude_history=False)
    assert ids[0].tolist() == [5, 4, 3]
    ids, _ = recommend(model, obj, hist, 3, exclude_history=False, filter_disliked=True)
    assert ids[0].tolist() == [5, 3, 2]
    ids, _ = recommend(model, obj, hist, 3, filter_disliked_creators=True, item_meta=meta)
    assert ids[0].tolist() == [3, 2, 1]


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "negrec", *args], capture_output=True, text=True,
                          timeout=timeout, cwd="/")


@pytest.mark.parametrize("cmd", ["train", "evaluate", "recommend", "data", "env"])
def test_help(cmd):
    proc = run_cli(cmd, "--help")
    assert proc.returncode == 0 and "usage: negrec" in proc.stdout


def test_train_evaluate_recommend_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "simulated", "--sim-users", "200", "--sim-events", "30",
                   "--epochs", "2", "--out", str(out), "--no-progress", "--set", "model.dim=16",
                   "--set", "model.num_layers=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        for key in ("ndcg@10", "recall@10", "dislike_exposure@10", "mrr", "positive_users",
                    "ndcg@10_ci_low", "ndcg@10_ci_high"):
            assert key in m[split], (split, key)
    assert m["train"]["epochs"] == 2 and m["train"]["targets_per_s"] > 0
    cfg = (out / "config.yaml").read_text()
    assert "objective: input_ntr" in cfg and "dim: 16" in cfg
    ev = run_cli("evaluate", "--checkpoint", str(out / "best.pt"), "--bootstrap", "50")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["metrics"]["ndcg@10"] == pytest.approx(m["test"]["ndcg@10"])
    rec = run_cli("recommend", "--checkpoint", str(out / "best.pt"), "--history",
                  "3:positive,17:dislike", "--k", "4", "--json", "--filter-disliked-creators")
    assert rec.returncode == 0, rec.stderr[-2000:]
    recs = json.loads(rec.stdout)["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4] and all(r["item"] not in (3, 17) for r in recs)
    bad = run_cli("recommend", "--checkpoint", str(out / "best.pt"), "--history", "3:loved")
    assert bad.returncode == 2 and "unknown feedback 'loved'" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    # resume of a finished run is a no-op that still evaluates
    again = run_cli("train", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--checkpoint", "/nonexistent.pt"], "checkpoint not found"),
    (["train", "--out", "/tmp/x", "--config", "/nonexistent.yaml"], "config file not found"),
    (["train", "--out", "/tmp/x", "--set", "model.dim"], "override must look like key.path=value"),
    (["train", "--out", "/tmp/x", "--data", "movielens"], "--path is required"),
    (["train", "--out", "/tmp/x", "--resume"], "nothing to resume"),
])
def test_bad_cli_input_is_one_clear_line(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
