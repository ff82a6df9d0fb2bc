"""The main job end to end at a reduced size, the report files, and `negrec responsiveness` on
simulated and real-log checkpoints."""

from __future__ import annotations

import json

import pytest

from negrec.experiments.demo import DemoConfig, run_demo
from negrec.eval.report import markdown_table
from negrec.train.objectives import OBJECTIVES
from helpers import run_cli
from helpers import assert_png

TINY = DemoConfig(sim_users=150, sim_events=20, epochs=1, dim=16, histories=40, history_steps=6,
                  loop_users=30, loop_steps=6, bootstrap=50, progress=False)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines = []
    report = run_demo(TINY, out, echo=lines.append)
    return out, report, lines


def test_demo_runs_end_to_end_and_writes_a_valid_report(tiny_demo):
    out, report, lines = tiny_demo
    for name in ("report.json", "report.md", "responsiveness.png", "repeated_dislikes.png",
                 "closed_loop.png"):
        assert (out / name).exists(), name
    for name in ("responsiveness.png", "repeated_dislikes.png", "closed_loop.png"):
        assert_png(out / name)
    text = (out / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    # the promised shape: responsiveness: {objective: {mean, ci_low, ci_high}}, all four
    assert set(data["responsiveness"]) == set(OBJECTIVES)
    for name, e in data["responsiveness"].items():
        assert set(e) == {"mean", "ci_low", "ci_high"}
        if e["mean"] is not None:
            assert e["ci_low"] <= e["mean"] <= e["ci_high"], name
        o = data["objectives"][name]
        assert o["responsiveness"]["cluster"]["dislike"]["mean"] == e["mean"]
        assert set(o["repeated_dislikes"]["cluster"]) == {"1", "2", "3"}
        rates = o["closed_loop"]["rates"]
        total = sum(rates[r]["mean"] for r in ("positive_rate", "neutral_rate", "skip_rate", "dislike_rate"))
        assert total == pytest.approx(1.0)
        assert len(o["closed_loop"]["per_step"]["dislike_rate"]) == TINY.loop_steps
        assert 0 <= o["offline"]["test"]["ndcg@10"] <= 1
    for name in OBJECTIVES:
        if name != "positive_only":
            assert "dislike_rate" in data["objectives"][name]["closed_loop_vs_positive_only"]
    assert data["paper_responsiveness"]["input_ntr"]["cluster"] == -0.608
    # the printed summary table is the one in report.md, with one row per objective
    md = (out / "report.md").read_text()
    table = markdown_table(data)
    assert table in md and table in "\n".join(lines)
    for name in OBJECTIVES:
        assert f"| {name} |" in table
    assert "-60.8%" in table and "![responsiveness](responsiveness.png)" in md


def test_positive_only_cannot_see_dislikes(tiny_demo):
    # positive_only's model never sees the feedback: its dislike and positive branches are
    # the same input, so its responsiveness is exactly zero whatever it learnt
    _, report, _ = tiny_demo
    sim = report["objectives"]["positive_only"]["mean_similarity"]["cluster"]
    assert sim["dislike"] == sim["positive"]
    if report["responsiveness"]["positive_only"]["mean"] is not None:
        assert report["responsiveness"]["positive_only"]["mean"] == 0.0


def test_responsiveness_cli_on_simulated_checkpoints(tiny_demo, tmp_path):
    out, _, _ = tiny_demo
    proc = run_cli("responsiveness", "--checkpoint", str(out / "runs" / "input_ntr" / "best.pt"),
                   "--checkpoint", str(out / "runs" / "positive_only" / "best.pt"),
                   "--histories", "30", "--steps", "5", "--loop-users", "20", "--loop-steps", "4",
                   "--bootstrap", "50", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(data["responsiveness"]) == {"input_ntr", "positive_only"}
    assert data["objectives"]["input_ntr"]["num_histories"] == 30
    assert "closed_loop" in data["objectives"]["positive_only"]
    assert "| input_ntr |" in proc.stdout
    assert_png(tmp_path / "r" / "responsiveness.png")
