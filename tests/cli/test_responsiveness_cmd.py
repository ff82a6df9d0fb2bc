"""negrec responsiveness on a log without item clusters (co-occurrence clusters)."""

from __future__ import annotations

import json

import numpy as np

from helpers import run_cli, run_cli_here


def test_responsiveness_cli_on_a_log_without_clusters(tmp_path, capsys):
    # a CSV log with no metadata: clusters come from item co-occurrence
    rng = np.random.default_rng(0)
    rows = ["user,item,timestamp,feedback"]
    for u in range(60):
        block = u % 3
        for t, i in enumerate(rng.choice(15, 12, replace=False)):
            fb = "dislike" if t % 5 == 4 else "positive"
            rows.append(f"u{u},i{block * 15 + i},{t},{fb}")
    csv = tmp_path / "log.csv"
    csv.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    proc = run_cli("train", "--data", "csv", "--path", str(csv), "--feedback-col", "feedback",
                   "--epochs", "1", "--out", str(run),
                   "--no-progress", "--set", "model.dim=8", "--set", "model.num_layers=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    status, _, err = run_cli_here(capsys, "responsiveness", "--checkpoint", str(run / "best.pt"),
                                  "--clusters", "3", "--train-controls", "1", "--bootstrap", "50",
                                  "--out", str(tmp_path / "r"))
    assert status == 0, err[-3000:]
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    entry = data["objectives"]["input_ntr"]
    assert entry["clusters"] == "3 co-occurrence clusters (the data has none)"
    assert entry["num_histories"] == 60 and "closed_loop" not in entry
    # the placebo control, trained here from the checkpoint's configuration, is in the report
    assert data["control"]["seeds"] == 1 and "cluster" in entry["vs_control"]
    assert (tmp_path / "r" / "controls" / "seed0" / "best.pt").exists()


def test_responsiveness_cli_measures_a_recommender_factory_on_the_simulator(tmp_path, capsys):
    (tmp_path / "outside_cli.py").write_text(
        "import numpy as np\n"
        "class Firsts:\n"
        "    name = 'firsts'\n"
        "    def __init__(self, meta):\n        self.v = meta.num_items\n"
        "    def recommend(self, items, feedback, k):\n"
        "        return np.stack([np.setdiff1d(np.arange(self.v), i)[:k] for i in items])\n"
        "def make(meta):\n    return Firsts(meta)\n")
    proc = run_cli("responsiveness", "--recommender", "outside_cli:make", "--baselines",
                   "most_popular", "--histories", "20", "--steps", "3", "--loop-users", "5",
                   "--loop-steps", "2", "--bootstrap", "20", "--out", str(tmp_path / "r"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert list(data["responsiveness"]) == ["firsts", "most_popular"]
    assert data["objectives"]["firsts"]["kind"] == "recommender"
    status, _, err = run_cli_here(capsys, "responsiveness", "--recommender",
                                  "no_module_here:make", "--out", str(tmp_path / "x"))
    assert status != 0
    assert "cannot import module 'no_module_here': ModuleNotFoundError" in err
    proc = run_cli("evaluate", "--recommender", "outside_cli:make", "--k", "5", "--bootstrap",
                   "0", "--data", "simulated", "--sim-users", "40", "--sim-events", "10",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["recommenders"]["firsts"]["ranking"] == "top-5"
