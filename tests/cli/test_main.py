"""The command line end to end: help of every command, train/evaluate/recommend, one-line errors."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, run_cli_here

from negrec.cli import SUBCOMMANDS


@pytest.mark.parametrize("cmd", sorted(SUBCOMMANDS))
def test_help(cmd, capsys):
    status, out, _ = run_cli_here(capsys, cmd, "--help")
    assert status == 0 and "usage: negrec" in out


def test_train_evaluate_recommend_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "simulated", "--sim-users", "200", "--sim-events", "30",
                   "--epochs", "2", "--out", str(out), "--no-progress", "--set", "model.dim=16",
                   "--set", "model.num_layers=1", "--set", "objective.weights.dislike=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        for key in ("ndcg@10", "recall@10", "dislike_exposure@10", "mrr", "positive_users",
                    "ndcg@10_ci_low", "ndcg@10_ci_high"):
            assert key in m[split], (split, key)
    assert m["train"]["epochs"] == 2 and m["train"]["targets_per_s"] > 0
    cfg = (out / "config.yaml").read_text()
    assert "objective:\n  name: input_ntr\n  weights:" in cfg and "dim: 16" in cfg
    ev = run_cli("evaluate", "--checkpoint", str(out / "best.pt"), "--bootstrap", "50")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["metrics"]["ndcg@10"] == pytest.approx(m["test"]["ndcg@10"])
    # the rest in this process (the two commands above run as the program, from /)
    status, rec, err = run_cli_here(capsys, "recommend", "--checkpoint", str(out / "best.pt"),
                                    "--history", "3:positive,17:dislike", "--k", "4", "--json",
                                    "--filter-disliked-creators")
    assert status == 0, err[-2000:]
    recs = json.loads(rec)["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4] and all(r["item"] not in (3, 17) for r in recs)
    status, _, err = run_cli_here(capsys, "recommend", "--checkpoint", str(out / "best.pt"),
                                  "--history", "3:loved")
    assert status == 2 and "unknown feedback 'loved'" in err
    assert err.strip().count("\n") == 0
    # resume of a finished run is a no-op that still evaluates
    status, _, err = run_cli_here(capsys, "train", "--out", str(out), "--resume")
    assert status == 0, err[-2000:]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--checkpoint", "/nonexistent.pt"], "checkpoint not found"),
    (["train", "--out", "/tmp/x", "--config", "/nonexistent.yaml"], "config file not found"),
    (["train", "--out", "/tmp/x", "--set", "model.dim"], "override must look like key.path=value"),
    (["train", "--out", "/tmp/x", "--data", "movielens"], "--path is required"),
    (["train", "--out", "/tmp/x", "--resume"], "nothing to resume"),
])
def test_bad_cli_input_is_one_clear_line(args, message, capsys):
    # in this process: an error that is not turned into the one line would raise here
    status, _, err = run_cli_here(capsys, *args)
    assert status == 2, err
    assert message in err and "Traceback" not in err
