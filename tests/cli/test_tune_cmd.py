"""``negrec tune`` end to end (in process): the tuning folder, its summary on stdout, a second
run refused unless resumed or overwritten, and one-line errors for what cannot be tuned."""

from __future__ import annotations

import json

from negrec.cli import main
from helpers import TINY_TRAINING as TINY, assert_one_line_error, run_cli_here


def tune(capsys, out, *args: str) -> tuple[int, str, str]:
    code = main(["tune", "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tune_writes_every_run_and_prints_the_choice(tmp_path, capsys):
    out = tmp_path / "tune"
    code, stdout, err = tune(capsys, out, *TINY, "--dislike-weights", "10,30")
    assert code == 0, err
    printed = json.loads(stdout)
    assert set(printed["valid_minus_positive_only"]) == {"10", "30"}
    assert printed["chosen_weight"] in (10.0, 30.0)
    assert {p.name for p in out.iterdir()} == {"positive_only", "dislike_10", "dislike_30",
                                              "chosen", "tune.json", "tune_plan.json",
                                              "best.pt", "config.yaml", "metrics.json"}
    chosen = f"dislike_{printed['chosen_weight']:g}"
    assert (out / "best.pt").resolve() == (out / chosen / "best.pt").resolve()
    assert printed["checkpoint"] == str(out / "best.pt")
    stored = json.loads((out / "tune.json").read_text())
    assert stored["chosen_weight"] == printed["chosen_weight"]
    assert printed["test"]["ndcg@10"] == stored["test"]["ndcg@10"]

    # a second run is refused; --resume keeps the plan and refuses changes to it
    code, _, err = tune(capsys, out, *TINY)
    assert_one_line_error(code, err, "already holds a tuning run", "--resume", "--overwrite")
    code, _, err = tune(capsys, out, "--resume", "--set", "optim.lr=0.1")
    assert_one_line_error(code, err, "tune_plan.json", "--set would change them")
    code, stdout, err = tune(capsys, out, "--resume")
    assert code == 0, err
    assert json.loads(stdout)["chosen_weight"] == printed["chosen_weight"]
    assert err.count("evaluated before, kept") == 3  # the reference and both weights
    code, _, err = tune(capsys, tmp_path / "nothing", "--resume")
    assert_one_line_error(code, err, "tune_plan.json not found")


def test_an_objective_without_the_ntr_term_is_refused_in_one_line(tmp_path, capsys):
    code, _, err = tune(capsys, tmp_path / "t", *TINY, "--objective", "positive_only")
    assert_one_line_error(code, err, "(input_ntr); got positive_only")


def test_bad_dislike_weights_are_refused(tmp_path, capsys):
    code, _, err = run_cli_here(capsys, "tune", "--out", str(tmp_path / "t"), *TINY,
                                "--dislike-weights", "20,sixty")
    assert code == 2 and "expected comma-separated numbers such as 20,60,100; got '20,sixty'" in err
    code, _, err = tune(capsys, tmp_path / "t", *TINY, "--dislike-weights", "0,20")
    assert_one_line_error(code, err, "distinct finite numbers > 0; got [0.0, 20.0]")
