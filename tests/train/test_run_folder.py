"""The run folder through the Trainer API: every fit ends with an evaluable best.pt, a new run
never mixes with an old one, a resumed run continues with the configuration stored in its
checkpoint (only limits may change) and leaves a log without duplicates and no temporaries."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from helpers import one_model_objective
from negrec.data import leave_one_out
from negrec.models import ModelConfig
from negrec.train.checkpoint import load_checkpoint
from negrec.sim import SimConfig, Simulator
from negrec.train import LossConfig, OptimConfig, TrainConfig, Trainer

SIM = SimConfig(num_items=100, num_clusters=5, num_creators=20, num_users=60, events_per_user=20)


@pytest.fixture(scope="module")
def train_log():
    log, _ = Simulator(SIM, seed=0).generate()
    return leave_one_out(log).train


def make_config(**kw) -> TrainConfig:
    base = dict(objective=one_model_objective(), model=ModelConfig(kind="sasrec", dim=8, num_layers=1, num_heads=2, dropout=0.1,
                                  max_len=10),
                loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=16),
                optim=OptimConfig(lr=3e-3, warmup_steps=2), epochs=2, batch_size=16,
                progress=False, tensorboard=False, eval_every=0, eval_min_steps=0, log_every=1,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rows(out: Path) -> list[dict]:
    with (out / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def constant_validation(model):
    return {"ndcg@10": 0.5}


# ---- W1: best.pt always exists -----------------------------------------------------------------

@pytest.mark.parametrize("limits", [dict(eval_every=0), dict(eval_every=1, max_steps=2),
                                    dict(eval_every=3, epochs=2)],
                         ids=["never-validated", "stopped-before-first-validation",
                              "eval_every-beyond-epochs"])
def test_fit_always_leaves_an_evaluable_best_checkpoint(train_log, tmp_path, limits):
    out = tmp_path / "run"
    t = Trainer(make_config(**limits), train_log, out, validate=constant_validation)
    result = t.fit()
    assert result.best_metric is None and result.best_checkpoint == "last"
    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    for name, value in best.model.state_dict().items():  # no validation: best = the last model
        assert torch.equal(value, last.model.state_dict()[name]), name


def test_best_checkpoint_is_the_validated_one_when_validation_ran(train_log, tmp_path):
    t = Trainer(make_config(eval_every=1), train_log, tmp_path / "run", validate=constant_validation)
    result = t.fit()
    assert result.best_checkpoint == "validation" and result.best_epoch == 1
    assert load_checkpoint(tmp_path / "run" / "best.pt").train_state["epoch"] == 1


# ---- S2: a new run over an existing one ---------------------------------------------------------

def test_new_run_over_an_existing_run_is_refused_and_overwrite_replaces_it(train_log, tmp_path):
    from negrec.errors import UserError

    out = tmp_path / "run"
    Trainer(make_config(epochs=1), train_log, out).fit()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=r"already holds a training run \(last\.pt, best\.pt, "
                                        r"config\.yaml, metrics\.csv\).*--resume.*--overwrite"):
        Trainer(make_config(epochs=1), train_log, out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # --overwrite: the old run's files are deleted, the log is the new run's alone
    (out / "metrics.json").write_text("{}")
    t = Trainer(make_config(epochs=1, seed=1), train_log, out, overwrite=True)
    t.fit()
    assert not (out / "metrics.json").exists()
    assert [int(r["step"]) for r in rows(out)] == list(range(1, t.step + 1))
    assert load_checkpoint(out / "last.pt").config["seed"] == 1
    with pytest.raises(UserError, match="exclude each other"):
        Trainer(make_config(epochs=1), train_log, out, resume=True, overwrite=True)


# ---- resume: configuration, limits, log, temporaries -------------------------------------------

def test_resume_with_more_epochs_equals_the_longer_uninterrupted_run(train_log, tmp_path):
    straight = Trainer(make_config(epochs=3), train_log, tmp_path / "straight")
    straight.fit()
    Trainer(make_config(epochs=1), train_log, tmp_path / "run").fit()
    resumed = Trainer(make_config(epochs=3), train_log, tmp_path / "run", resume=True)
    resumed.fit()
    a, b = params(straight.model), params(resumed.model)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert load_checkpoint(tmp_path / "run" / "last.pt").config["epochs"] == 3
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["epochs"] == 3
    assert [r["step"] for r in rows(tmp_path / "run")] == [r["step"] for r in rows(tmp_path / "straight")]


@pytest.mark.parametrize("change", [dict(optim=OptimConfig(lr=0.1, warmup_steps=2)), dict(seed=5),
                                    dict(batch_size=8)], ids=["optim.lr", "seed", "batch_size"])
def test_resume_refuses_a_configuration_that_changes_the_steps(train_log, tmp_path, change):
    from negrec.errors import UserError

    out = tmp_path / "run"
    Trainer(make_config(epochs=1), train_log, out).fit()
    key = next(iter(change)) if "optim" not in change else "optim.lr"
    with pytest.raises(UserError, match=rf"differs from the one .*last\.pt was trained with in "
                                        rf"{key} .*can change only epochs, max_steps"):
        Trainer(make_config(epochs=1, **change), train_log, out, resume=True)


def test_resume_refuses_epochs_change_with_the_cosine_schedule(train_log, tmp_path):
    from negrec.errors import UserError

    cosine = OptimConfig(lr=3e-3, warmup_steps=2, schedule="cosine")
    Trainer(make_config(epochs=1, optim=cosine), train_log, tmp_path / "run").fit()
    with pytest.raises(UserError, match=r"in epochs .*can change only max_steps, max_minutes"):
        Trainer(make_config(epochs=2, optim=cosine), train_log, tmp_path / "run", resume=True)


def test_resume_refuses_a_truncated_config_yaml_and_keeps_it(train_log, tmp_path):
    from negrec.errors import UserError

    out = tmp_path / "run"
    cfg = make_config(epochs=1, batch_size=8, loss=LossConfig(mode="sampled", num_negatives=16))
    Trainer(cfg, train_log, out).fit()
    text = (out / "config.yaml").read_text()
    truncated = text[:text.index("loss:")]  # still valid YAML: data and model only
    (out / "config.yaml").write_text(truncated)
    last = (out / "last.pt").read_bytes()
    with pytest.raises(UserError, match=r"config\.yaml disagrees with the configuration stored in "
                                        r"last\.pt in .*batch_size \(64 config\.yaml, 8 last\.pt\)"):
        Trainer(cfg, train_log, out, resume=True)
    assert (out / "config.yaml").read_text() == truncated and (out / "last.pt").read_bytes() == last
    (out / "config.yaml").write_text(text[:text.index("optim:") + 8] + "  lr: [0.1\n")  # not YAML
    with pytest.raises(UserError, match=r"config\.yaml is not a valid configuration"):
        Trainer(cfg, train_log, out, resume=True)
    (out / "config.yaml").unlink()  # rewritten from the checkpoint
    Trainer(cfg, train_log, out, resume=True).fit()
    assert (out / "config.yaml").read_text() == text


def test_resume_removes_temporaries_of_interrupted_writes(train_log, tmp_path):
    out = tmp_path / "run"
    Trainer(make_config(epochs=1), train_log, out).fit()
    # what a kill during each atomic write leaves (one of them a complete checkpoint)
    (out / ".last.pt.x1.tmp").write_bytes((out / "last.pt").read_bytes())
    for name in ("best.pt", "config.yaml", "metrics.csv", "metrics.json"):
        (out / f".{name}.x2.tmp").write_bytes(b"torn")
    keep = out / ".unrelated.tmp"
    keep.write_text("not ours")
    with pytest.warns(RuntimeWarning, match=r"removed 5 temporary file\(s\) of interrupted writes"):
        Trainer(make_config(epochs=2), train_log, out, resume=True).fit()
    assert sorted(p.name for p in out.glob(".*.tmp")) == [".unrelated.tmp"]


def test_resume_truncates_the_log_of_an_older_checkpoint_by_step(train_log, tmp_path):
    """Checkpoints written before the log's row count was recorded: rows after its step go."""
    out = tmp_path / "run"
    t = Trainer(make_config(epochs=1, max_steps=3), train_log, out)
    t.fit()
    ck = torch.load(out / "last.pt", weights_only=True)
    del ck["train_state"]["log_rows"]
    from negrec.train.checkpoint import payload_checksum

    ck["checksum"] = payload_checksum(ck)
    torch.save(ck, out / "last.pt")
    with (out / "metrics.csv").open("a", newline="") as f:  # rows of steps after the checkpoint
        f.write("train,4,0,1.0,0.001,1,1,1,,\r\ntrain,5,0,1.0,0.001,1,1,1,,\r\n")
    Trainer(make_config(epochs=1), train_log, out, resume=True).fit()
    steps = [int(r["step"]) for r in rows(out)]
    assert steps == sorted(set(steps)) and steps[:3] == [1, 2, 3]
