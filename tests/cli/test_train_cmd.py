"""``negrec train`` end to end (in process): every accepted configuration ends with metrics.json,
no option is ignored (refused instead), a resumed run continues the checkpoint's configuration,
an existing run is never mixed with a new one, and errors caused by the input are one line
(``--debug`` shows the traceback) while bugs keep their traceback."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path

import pytest
import yaml

from helpers import TINY_TRAINING, assert_one_line_error

from negrec.cli import main
from negrec.train.run_folder import RUN_FILES

TINY = TINY_TRAINING


def train(capsys, out: Path, *args: str) -> tuple[int, str]:
    code = main(["train", "--out", str(out), *args])
    return code, capsys.readouterr().err


def metric_steps(out: Path) -> list[tuple[str, str, str]]:
    with (out / "metrics.csv").open(newline="") as f:
        return [(r["kind"], r["step"], r["metric"]) for r in csv.DictReader(f)]


# ---- W1: every configuration ends with a checkpoint the CLI evaluates ---------------------------

@pytest.mark.parametrize("limit", [["--set", "eval_every=0"], ["--epochs", "2", "--set", "max_steps=2"],
                                   ["--max-minutes", "1e-6"], ["--set", "eval_every=5"]],
                         ids=["eval_every=0", "max_steps-before-validation", "max_minutes",
                              "eval_every-beyond-epochs"])
def test_every_accepted_configuration_ends_with_metrics(tmp_path, capsys, limit):
    out = tmp_path / "run"
    code, err = train(capsys, out, *TINY, *limit)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["best_checkpoint"] == "last" and metrics["train"]["best_epoch"] is None
    assert 0 <= metrics["test"]["ndcg@10"] <= 1


# ---- the dislike weight chosen by default (objective.weights.dislike auto) ---------------------------

#: TINY without its dislike weight: the default, auto.
TINY_AUTO = [a for i, a in enumerate(TINY)
             if not ("objective.weights.dislike=" in a or "objective.weights.dislike="
                     in (TINY[i + 1] if i + 1 < len(TINY) else ""))]


def test_train_chooses_the_dislike_weight_by_default_and_out_best_pt_is_the_choice(tmp_path, capsys):
    from negrec.train.checkpoint import load_checkpoint
    from negrec.train.objectives import DISLIKE_WEIGHT_GRID

    assert len(TINY_AUTO) == len(TINY) - 2
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), *TINY_AUTO])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert printed["chosen_weight"] in DISLIKE_WEIGHT_GRID and printed["objective"] == "input_ntr"
    assert {f"dislike_{w:g}" for w in DISLIKE_WEIGHT_GRID} | {"positive_only", "tune.json"} <= {
        p.name for p in out.iterdir()}
    chosen = out / f"dislike_{printed['chosen_weight']:g}"
    assert (out / "best.pt").resolve() == (chosen / "best.pt").resolve()
    ck = load_checkpoint(out / "best.pt")  # the model to use, with its weight a number
    assert ck.objective.weights["dislike"] == printed["chosen_weight"]
    assert yaml.safe_load((out / "config.yaml").read_text())["objective"]["weights"][
        "dislike"] == printed["chosen_weight"]
    # the sweep is a run: refused again without --resume / --overwrite, continued with --resume
    code, err = train(capsys, out, *TINY_AUTO)
    assert_one_line_error(code, err, "already holds", "--resume", "--overwrite")
    code = main(["train", "--out", str(out), "--resume"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.count("evaluated before, kept") == 1 + len(DISLIKE_WEIGHT_GRID)
    assert json.loads(captured.out)["chosen_weight"] == printed["chosen_weight"]

    # one model where a sweep was: refused (even with the sweep unfinished: no links yet), and
    # with --overwrite the sweep goes whole, so that a later --resume continues the one model
    for name in ("best.pt", "config.yaml", "metrics.json", "chosen", "tune.json"):
        (out / name).unlink()
    code, err = train(capsys, out, *TINY)
    assert_one_line_error(code, err, "already holds a tuning run", "--overwrite")
    code, err = train(capsys, out, *TINY, "--overwrite", "--set", "max_steps=1")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} <= set(RUN_FILES) | {"tensorboard"}  # no sweep left
    assert not (out / "best.pt").is_symlink()
    code, err = train(capsys, out, "--resume", "--set", "max_steps=2")
    assert code == 0, err
    assert yaml.safe_load((out / "config.yaml").read_text())["max_steps"] == 2


def test_a_placebo_without_a_dislike_weight_is_refused_in_one_line(tmp_path, capsys):
    code, err = train(capsys, tmp_path / "run", *TINY_AUTO, "--placebo")
    assert_one_line_error(code, err, "--placebo", "objective.weights.dislike auto",
                          "--set objective.weights.dislike=W")
    assert not (tmp_path / "run").exists()


# ---- S2: an existing run is refused unless --resume or --overwrite --------------------------------

def test_training_over_an_existing_run_is_refused_and_overwrite_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, out, *TINY)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, err = train(capsys, out, *TINY, "--seed", "1")
    assert_one_line_error(code, err, f"{out} already holds a training run", "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    code, err = train(capsys, out, *TINY, "--seed", "1", "--overwrite")
    assert code == 0, err
    steps = [s for k, s, _ in metric_steps(out) if k == "train"]
    assert len(steps) == len(set(steps))  # the old run's rows are gone
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 1


# ---- W8 / W9: resume continues the checkpoint's configuration ---------------------------------------

def test_resume_applies_new_limits_and_refuses_other_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, out, *TINY)[0] == 0
    last = (out / "last.pt").read_bytes()
    for args, needle in ((["--set", "optim.lr=0.1"], "--set optim.lr=0.1 cannot be applied: optim.lr "
                                                     "is fixed once a run has started"),
                         (["--epochs", "2", "--set", "batch_size=8"], "--set batch_size=8 cannot be "
                                                                      "applied"),
                         (["--objective", "input_only"], "--objective would change it"),
                         (["--data", "simulated"], "--data would change it"),
                         (["--config", str(out / "config.yaml")], "--config would change it")):
        code, err = train(capsys, out, "--resume", *args)
        assert_one_line_error(code, err, needle)
        assert (out / "last.pt").read_bytes() == last
    code, err = train(capsys, out, "--resume", "--epochs", "2", "--set", "max_steps=1000")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["epochs"] == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["max_steps"] == 1000
    steps = [s for k, s, _ in metric_steps(out) if k == "train"]
    assert len(steps) == len(set(steps))
    with pytest.raises(SystemExit):  # argparse: not allowed together
        main(["train", "--out", str(out), "--resume", "--overwrite"])


def test_resume_refuses_a_truncated_config_yaml(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, out, *TINY, "--set", "loss.mode=sampled", "--set", "loss.num_negatives=8")[0] == 0
    text = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(text[:text.index("loss:")])  # valid YAML, keys missing
    code, err = train(capsys, out, "--resume")
    assert_one_line_error(code, err, f"{out / 'config.yaml'} disagrees with the configuration stored "
                                     "in last.pt", "batch_size (64 config.yaml, 16 last.pt)")
    assert (out / "config.yaml").read_text() == text[:text.index("loss:")]


# ---- unclear errors ----------------------------------------------------------------------------------

class _FullDiskFor:
    """Writes to files whose name contains ``name`` fail with ENOSPC after ``budget`` bytes,
    whichever way the file was opened (``open`` / ``Path.write_text`` or ``os.fdopen``)."""

    def __init__(self, monkeypatch, name: str, budget: int = 10):
        self.name, self.budget = name, budget
        real_open, real_fdopen = io.open, os.fdopen

        def opened(f, path):
            return _Failing(f, budget) if name in os.path.basename(str(path)) else f

        def open_(file, mode="r", *a, **kw):
            f = real_open(file, mode, *a, **kw)
            return opened(f, file) if any(c in mode for c in "wax") else f

        def fdopen(fd, mode="r", *a, **kw):
            path = os.readlink(f"/proc/self/fd/{fd}")
            f = real_fdopen(fd, mode, *a, **kw)
            return opened(f, path) if any(c in mode for c in "wax") else f

        monkeypatch.setattr(io, "open", open_)
        monkeypatch.setattr("builtins.open", open_)
        monkeypatch.setattr(os, "fdopen", fdopen)


class _Failing:
    def __init__(self, f, budget):
        self._f, self.budget = f, budget

    def write(self, data):
        if len(data) > self.budget:
            self._f.write(data[:self.budget])
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


def test_full_disk_while_writing_config_yaml_is_one_line_and_leaves_no_torn_file(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _FullDiskFor(monkeypatch, "config.yaml")
    code, err = train(capsys, out, *TINY)
    assert_one_line_error(code, err, "config.yaml", "No space left on device")
    monkeypatch.undo()
    assert not (out / "config.yaml").exists()  # never a torn (e.g. 0-byte) config.yaml
    assert list(out.glob(".config.yaml*")) == []


@pytest.mark.parametrize("args, needle", [
    (["--set", "epochs=[1"], "override 'epochs=[1': the value '[1' is not valid YAML"),
    (["--set", "epochs=[1]"], "config key epochs must be an integer; got [1]"),
    (["--set", "num_workers=2"], "unknown config key 'num_workers'"),
    (["--set", "log_every=0"], "config key log_every must be > 0; got 0"),
    (["--set", "optim.betas=[0.9, 1.5]"], "config key optim.betas must be two numbers in [0, 1)"),
    (["--set", "device=gpu"], "device must be auto, cpu, cuda or cuda:N; got 'gpu'"),
    (["--set", "data.sim_events=500"], "the simulator refuses"),
    (["--set", "model.num_heads=0"], "model.num_heads must be > 0; got 0"),
], ids=["yaml", "type", "num_workers", "log_every", "betas", "device", "sim_events", "num_heads"])
def test_bad_overrides_are_one_line(tmp_path, capsys, args, needle):
    code, err = train(capsys, tmp_path / "run", *TINY, *args)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_num_workers_in_a_config_file(tmp_path, capsys):
    """The removed key: 0 (what negrec does) still loads from old files; anything else is an
    error rather than a setting that is silently not applied."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_workers: 2\n")
    code, err = train(capsys, tmp_path / "a", "--config", str(cfg), *TINY)
    assert_one_line_error(code, err, f"{cfg}: unknown config key num_workers (removed: batches are "
                                     "collated in this process", "got num_workers: 2")
    cfg.write_text("num_workers: 0\n")
    code, err = train(capsys, tmp_path / "b", "--config", str(cfg), *TINY)
    assert code == 0, err
    assert "num_workers" not in (tmp_path / "b" / "config.yaml").read_text()


def test_data_options_are_never_ignored(tmp_path, capsys):
    code, err = train(capsys, tmp_path / "a", "--path", str(tmp_path), "--user-col", "uid")
    assert_one_line_error(code, err, "--path, --user-col describe a data source but --data is not "
                                     "given")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  source: simulated\n  sim_users: 50\n")
    code, err = train(capsys, tmp_path / "b", "--config", str(cfg), *TINY)
    assert_one_line_error(code, err, f"--config {cfg} has a data section and --data simulated is given")


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    from negrec.errors import UserError

    with pytest.raises(UserError, match="is not valid YAML"):
        main(["--debug", "train", "--out", str(tmp_path / "run"), *TINY, "--set", "epochs=[1"])


@pytest.mark.parametrize("bug", [ValueError("boom"), KeyError("boom")], ids=["ValueError", "KeyError"])
def test_a_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch, bug):
    """Only errors caused by the input are shortened to one line: an exception from the code
    (here, evaluation raising) reaches the caller."""
    import negrec.experiments.training as pipeline

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(pipeline, "evaluate", broken)
    with pytest.raises(type(bug), match="boom"):
        main(["train", "--out", str(tmp_path / "run"), *TINY])


def test_evaluate_refuses_cutoffs_and_data_options_it_would_ignore(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, out, *TINY)[0] == 0
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", str(out / "best.pt"), "--k", "0"])
    assert "expected an integer >= 1; got 0" in capsys.readouterr().err
    code = main(["evaluate", "--checkpoint", str(out / "best.pt"), "--path", str(tmp_path)])
    assert_one_line_error(code, capsys.readouterr().err, "--path describes a data source but --data "
                                                         "is not given")
    # the stored configuration rebuilds the data: same test metric as training reported
    code = main(["evaluate", "--checkpoint", str(out / "best.pt"), "--bootstrap", "0"])
    assert code == 0
    reported = json.loads((out / "metrics.json").read_text())["test"]["ndcg@10"]
    assert json.loads(capsys.readouterr().out)["metrics"]["ndcg@10"] == pytest.approx(reported)


def test_responsiveness_refuses_actions_it_cannot_measure(capsys):
    for actions, needle in (("loved", "--actions: unknown feedback 'loved'"),
                            ("dislike,positive", "--actions: 'positive' cannot be compared"),
                            (",", "--actions must name feedback types")):
        code = main(["responsiveness", "--checkpoint", "/nonexistent.pt", "--actions", actions])
        assert_one_line_error(code, capsys.readouterr().err, needle)
