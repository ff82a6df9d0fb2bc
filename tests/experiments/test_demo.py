"""The main job end to end at a reduced size, the report files, and `negrec responsiveness` on
simulated and real-log checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from negrec.cli.demo import DemoConfig, run_demo
from negrec.eval.report import PAPER_RESPONSIVENESS, markdown_table, write_report
from negrec.models.objectives import OBJECTIVES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY = DemoConfig(sim_users=150, sim_events=20, epochs=1, dim=16, histories=40, history_steps=6,
                  loop_users=30, loop_steps=6, bootstrap=50, progress=False)


def assert_png(path):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


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


def test_report_writes_undefined_figures_as_null(tmp_path):
    report = {"title": "t", "objectives": {"input_ntr": {
        "offline": {"test": {"ndcg@10": np.float32(0.1)}},
        "responsiveness": {"cluster": {"dislike": {"mean": float("nan"), "ci_low": float("nan"),
                                                   "ci_high": float("nan"), "n": np.int64(3)}}}}}}
    paths = write_report(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["objectives"]["input_ntr"]["responsiveness"]["cluster"]["dislike"]["mean"] is None
    assert "| input_ntr | 0.1000 |" in paths["markdown"].read_text()
    assert "n/a" in paths["markdown"].read_text()
    assert_png(paths["responsiveness"])


def test_paper_figures_are_the_papers():
    assert PAPER_RESPONSIVENESS["input_only"]["cluster"] == -0.227
    assert PAPER_RESPONSIVENESS["input_ntr"]["creator"] == -0.641


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "negrec", *args], capture_output=True, text=True,
                          timeout=timeout, cwd="/")


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


def test_responsiveness_cli_on_a_log_without_clusters(tmp_path):
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
    proc = run_cli("responsiveness", "--checkpoint", str(run / "best.pt"), "--clusters", "3",
                   "--bootstrap", "50", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    entry = data["objectives"]["input_ntr"]
    assert entry["clusters"] == "3 co-occurrence clusters (the data has none)"
    assert entry["num_histories"] == 60 and "closed_loop" not in entry


def test_demo_help_and_bad_size():
    proc = run_cli("demo", "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--full-size" in proc.stdout
    proc = run_cli("demo", "--quick", "--full-size")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
