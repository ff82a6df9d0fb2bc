"""The main job end to end at a reduced size, the report files, and `negrec responsiveness` on
simulated and real-log checkpoints."""

from __future__ import annotations

import json

import pytest

from negrec.experiments.demo import DemoConfig, run_demo
from negrec.eval.report import markdown_table
from helpers import run_cli_here
from helpers import assert_png

TINY = DemoConfig(sim_users=150, sim_events=20, epochs=1, dim=16, histories=40, history_steps=6,
                  loop_users=30, loop_steps=6, bootstrap=50, progress=False, seeds=2,
                  objectives=("positive_only", "input_ntr"))


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
    # the promised shape: responsiveness: {objective: {mean, ci_low, ci_high}}, one per objective
    assert set(data["responsiveness"]) == set(TINY.objectives)
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
        ndcg = o["offline"]["test"]["ndcg@10"]
        assert 0 <= ndcg["ci_low"] <= ndcg["mean"] <= ndcg["ci_high"] <= 1
        # every figure pools the training seeds and is compared with the placebo control
        assert o["seeds"] == TINY.seeds and len(o["per_seed"]["cluster"]["dislike"]) == TINY.seeds
        assert set(o["vs_control"]["cluster"]) == {"dislike", "skip"}
        vs = o["vs_control"]["cluster"]["dislike"]
        assert vs["seeds"] == vs["control_seeds"] == TINY.seeds
        if None not in (o["responsiveness"]["cluster"]["dislike"]["mean"],
                        data["control"]["responsiveness"]["cluster"]["dislike"]["mean"]):
            assert vs["mean"] == pytest.approx(
                o["responsiveness"]["cluster"]["dislike"]["mean"]
                - data["control"]["responsiveness"]["cluster"]["dislike"]["mean"])
    for name in TINY.objectives:
        if name != "positive_only":
            assert "dislike_rate" in data["objectives"][name]["closed_loop_vs_positive_only"]
    assert data["paper_responsiveness"]["input_ntr"]["cluster"] == -0.608
    # the printed summary table is the one in report.md, with one row per objective
    md = (out / "report.md").read_text()
    table = markdown_table(data)
    assert table in md and table in "\n".join(lines)
    for name in TINY.objectives:
        assert f"| {name} |" in table
    assert "| control (placebo) |" in table and "vs control (cluster)" in table
    assert "-60.8%" in table and "![responsiveness](responsiveness.png)" in md
    # the control is input_ntr trained on shuffled feedback, once per training seed
    for seed in range(TINY.seeds):
        assert (out / "runs" / "control" / f"seed{seed}" / "best.pt").exists()


def test_positive_only_cannot_see_dislikes(tiny_demo):
    # positive_only's model never sees the feedback: its dislike and positive branches are
    # the same input, so its responsiveness is exactly zero whatever it learnt
    _, report, _ = tiny_demo
    sim = report["objectives"]["positive_only"]["mean_similarity"]["cluster"]
    assert sim["dislike"] == sim["positive"]
    if report["responsiveness"]["positive_only"]["mean"] is not None:
        assert report["responsiveness"]["positive_only"]["mean"] == 0.0


def test_responsiveness_cli_on_simulated_checkpoints(tiny_demo, tmp_path, capsys):
    out, _, _ = tiny_demo
    runs = out / "runs"
    status, stdout, stderr = run_cli_here(
        capsys, "responsiveness",
        "--checkpoint", *(str(runs / "input_ntr" / f"seed{s}" / "best.pt") for s in (0, 1)),
        "--checkpoint", str(runs / "positive_only" / "seed0" / "best.pt"),
        "--control", *(str(runs / "control" / f"seed{s}" / "best.pt") for s in (0, 1)),
        "--histories", "30", "--steps", "5", "--loop-users", "20", "--loop-steps", "4",
        "--bootstrap", "50", "--out", str(tmp_path / "r"))
    assert status == 0, stderr[-3000:]
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(data["responsiveness"]) == {"input_ntr", "positive_only"}
    # the two input_ntr checkpoints are one model's two training seeds
    assert data["objectives"]["input_ntr"]["seeds"] == 2
    assert data["objectives"]["input_ntr"]["num_histories"] == 60
    assert data["control"]["seeds"] == 2 and "vs_control" in data["objectives"]["positive_only"]
    assert "closed_loop" in data["objectives"]["positive_only"]
    assert "| input_ntr |" in stdout
    assert_png(tmp_path / "r" / "responsiveness.png")


def test_responsiveness_cli_trains_its_placebo_control_and_reuses_it(tiny_demo, tmp_path, capsys):
    out, _, _ = tiny_demo
    ck = str(out / "runs" / "input_ntr" / "seed0" / "best.pt")
    args = ("responsiveness", "--checkpoint", ck, "--train-controls", "1", "--histories", "10",
            "--steps", "3", "--loop-users", "5", "--loop-steps", "2", "--bootstrap", "20",
            "--out", str(tmp_path / "r"))
    status, _, err = run_cli_here(capsys, *args)
    assert status == 0, err[-3000:]
    control = tmp_path / "r" / "controls" / "seed0" / "best.pt"
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["control"]["seeds"] == 1 and "vs_control" in data["objectives"]["input_ntr"]
    from negrec.train.checkpoint import load_checkpoint
    from negrec.train.resume import stored_config

    cfg = stored_config(load_checkpoint(control))
    assert cfg.placebo and cfg.objective.name == "input_ntr"
    stamp = control.stat().st_mtime_ns
    status, _, err = run_cli_here(capsys, *args)
    assert status == 0, err[-3000:]
    assert control.stat().st_mtime_ns == stamp  # the finished control was reused
    # without a control the report says its figures are not evidence
    status, out, err = run_cli_here(capsys, *args[:3], "--train-controls", "0", *args[5:-1],
                                    str(tmp_path / "n"))
    assert status == 0, err[-3000:]
    assert "not evidence" in out
    assert "vs_control" not in json.loads((tmp_path / "n" / "report.json").read_text())["objectives"]["input_ntr"]


def test_a_control_that_is_not_a_placebo_is_refused(tiny_demo, tmp_path, capsys):
    out, _, _ = tiny_demo
    ck = str(out / "runs" / "input_ntr" / "seed0" / "best.pt")
    status, _, err = run_cli_here(capsys, "responsiveness", "--checkpoint", ck, "--control", ck,
                                  "--histories", "5", "--out", str(tmp_path / "r"))
    assert status == 2
    assert "was not trained as a placebo" in err and "--placebo" in err


def test_the_demo_keeps_the_configuration_its_headline_was_measured_with():
    """The package defaults moved (stop 44: the count prior where items have clusters, the
    dislike weight chosen per log); the demo trains what its headline was measured with
    (docs/generalization.md, "The demo's headline and the dislike weight")."""
    demo = DemoConfig()
    for objective in ("input_ntr", "positive_only"):
        config = demo.train_config(objective, seed=0)
        assert config.model.count_prior is False
        assert config.objective.weights["dislike"] == demo.w_dislike == 5.0
        assert not config.objective.chooses_dislike_weight
