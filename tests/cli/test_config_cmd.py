"""negrec config (every key, default and meaning), negrec --version, --split on the CLI,
per-epoch validation lines, recommend's cluster rule."""

from __future__ import annotations

import dataclasses
import json

import yaml

import negrec
from negrec.cli import main
from negrec.cli.config_cmd import describe
from negrec.train.config import TrainConfig, load_config
from helpers import run_cli, run_cli_here


def _leaves(cls, prefix=""):
    out = []
    for f in dataclasses.fields(cls):
        hint = __import__("typing").get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            out += _leaves(hint, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def test_every_key_is_listed_with_its_meaning():
    rows = describe()
    assert [k for k, _, _ in rows] == _leaves(TrainConfig)
    missing = [k for k, _, meaning in rows if not meaning]
    assert not missing, f"keys without a declared meaning: {missing}"
    defaults = {k: d for k, d, _ in rows}
    assert defaults["loss.ntr_negatives"] == 128 and defaults["model.kind"] == "gru"


def test_config_prints_keys_and_yaml_that_loads_back(capsys, tmp_path):
    assert main(["config", "loss"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("loss.mode") and "model." not in out
    assert main(["config", "--yaml"]) == 0
    path = tmp_path / "defaults.yaml"
    path.write_text(capsys.readouterr().out)
    assert yaml.safe_load(path.read_text())["loss"]["ntr_negatives"] == 128
    assert load_config(str(path)) == TrainConfig()


def test_config_unknown_prefix_is_one_line_error(capsys):
    assert main(["config", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "negrec config: error: no configuration key starts with 'nosuch' " \
                  "(`negrec config` lists them all)"


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"negrec {negrec.__version__}"


def test_train_with_a_time_split_prints_validation_lines_and_evaluates_with_it(tmp_path, capsys):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "simulated", "--sim-users", "150", "--sim-events", "30",
                   "--epochs", "2", "--split", "time", "--out", str(out), "--no-progress",
                   "--set", "model.dim=8", "--set", "eval_min_steps=0",
                   "--set", "optim.warmup_steps=1", "--set", "objective.weights.dislike=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.splitlines() if "validation ndcg@10" in l]
    assert len(lines) == 2 and lines[0].startswith("negrec: epoch 1/2: validation ndcg@10 ")
    m = json.loads((out / "metrics.json").read_text())
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["split"] == "time"
    status, stdout, err = run_cli_here(capsys, "evaluate", "--checkpoint", str(out / "best.pt"),
                                       "--bootstrap", "0")
    assert status == 0, err[-2000:]
    # the same held-out events as training's own evaluation: the time split's, not leave-one-out's
    assert json.loads(stdout)["metrics"]["ndcg@10"] == m["test"]["ndcg@10"]
    assert m["data"]["split"] == "time_split"


def test_bad_split_is_refused_before_work(capsys):
    status, _, err = run_cli_here(capsys, "train", "--data", "simulated", "--split", "random",
                                  "--out", "/tmp/never")
    assert status == 2 and "--split: invalid choice: 'random'" in err
