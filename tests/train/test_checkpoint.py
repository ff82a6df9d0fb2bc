"""Checkpoints are verified on load: a content checksum (bytes flipped inside a tensor are
refused by every loader: evaluate, recommend, responsiveness, resume), fields of the right
types and sizes, and weights whose shapes the stored model configuration implies (checked
before anything is allocated). Every refusal is one line naming the file."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from negrec.data import leave_one_out
from negrec.models import ModelConfig
from negrec.train.checkpoint import load_checkpoint
from negrec.sim import SimConfig, Simulator
from negrec.train import LossConfig, OptimConfig, TrainConfig, Trainer

from helpers import assert_one_line_error, one_model_objective, run_cli_here

SIM = dict(num_items=120, num_clusters=6, num_creators=20, num_users=80, events_per_user=20)


def make_config(**kw) -> TrainConfig:
    base = dict(objective=one_model_objective(), model=ModelConfig(kind="sasrec", dim=16, num_layers=1, num_heads=2, dropout=0.0,
                                  max_len=10, cluster_input=True, creator_input=True),
                loss=LossConfig(mode="full"), optim=OptimConfig(lr=3e-3, warmup_steps=2),
                epochs=1, batch_size=32, progress=False, tensorboard=False, eval_every=0)
    base.update(kw)
    cfg = TrainConfig(**base)
    cfg.data.sim = SimConfig(**SIM)
    return cfg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run whose checkpoints the CLI can evaluate (simulated data it can rebuild)."""
    out = tmp_path_factory.mktemp("ck") / "run"
    cfg = make_config()
    log, _ = Simulator(SimConfig(**SIM), seed=cfg.data.sim_seed).generate(
        num_users=SIM["num_users"], events_per_user=SIM["events_per_user"])
    Trainer(cfg, leave_one_out(log).train, out).fit()
    return out


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def write_1e30_into_the_item_table(path: Path) -> None:
    """Overwrites one float of the item embedding table inside the file's bytes (as a disk or
    copy error would), leaving the zip container valid."""
    raw = bytearray(path.read_bytes())
    table = torch.load(path, weights_only=True)["model"]["embed.item.weight"]
    needle = table[5].numpy().tobytes()
    at = raw.find(needle)
    assert at > 0 and raw.find(needle, at + 1) == -1
    raw[at:at + 4] = struct.pack("<f", 1e30)
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["model"]["embed.item.weight"][5, 0] == 1e30


cli = run_cli_here


# ---- W7: the content checksum -------------------------------------------------------------------

def test_a_flipped_tensor_is_refused_by_load_checkpoint(run_dir, tmp_path):
    out = copy_run(run_dir, tmp_path)
    load_checkpoint(out / "best.pt")  # intact: loads
    write_1e30_into_the_item_table(out / "best.pt")
    with pytest.raises(ValueError, match=rf"{out / 'best.pt'}: checksum mismatch.*the file is corrupt"):
        load_checkpoint(out / "best.pt")


@pytest.mark.parametrize("command", ["evaluate", "recommend", "responsiveness"])
def test_a_flipped_tensor_is_refused_by_every_command(run_dir, tmp_path, capsys, command):
    out = copy_run(run_dir, tmp_path)
    ck = out / "best.pt"
    write_1e30_into_the_item_table(ck)
    args = {"evaluate": ["evaluate", "--checkpoint", str(ck), "--bootstrap", "0"],
            "recommend": ["recommend", "--checkpoint", str(ck), "--history", "5:positive"],
            "responsiveness": ["responsiveness", "--checkpoint", str(ck), "--histories", "5",
                               "--steps", "3", "--loop-users", "3", "--loop-steps", "2",
                               "--bootstrap", "0", "--out", str(tmp_path / "r")]}[command]
    code, stdout, err = cli(capsys, *args)
    assert_one_line_error(code, err, str(ck), "checksum mismatch")
    assert "1e+30" not in stdout and "score" not in stdout


def test_a_flipped_tensor_in_last_pt_is_refused_by_resume(run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    write_1e30_into_the_item_table(out / "last.pt")
    code, _, err = cli(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")
    assert_one_line_error(code, err, str(out / "last.pt"), "checksum mismatch")
    from negrec.errors import UserError

    log, _ = Simulator(SimConfig(**SIM), seed=0).generate()
    with pytest.raises(UserError, match="checksum mismatch"):
        Trainer(make_config(), leave_one_out(log).train, out, resume=True)


def test_a_checkpoint_without_checksum_loads_with_a_warning(run_dir, tmp_path):
    """Checkpoints written before the checksum existed (format v1) still load, unverified."""
    from negrec.train.checkpoint import UnverifiedCheckpointWarning

    state = torch.load(run_dir / "best.pt", weights_only=True)
    del state["checksum"]
    state["format"] = "negrec-checkpoint-v1"
    torch.save(state, tmp_path / "old.pt")
    with pytest.warns(UnverifiedCheckpointWarning, match=r"old\.pt: written before checkpoints "
                                                         r"carried a checksum"):
        ck = load_checkpoint(tmp_path / "old.pt")
    assert ck.objective.name == "input_ntr"
    # a current-format file without its checksum is not an old file: refused
    state["format"] = "negrec-checkpoint-v2"
    torch.save(state, tmp_path / "stripped.pt")
    with pytest.raises(ValueError, match=r"stripped\.pt: checkpoint field checksum must be"):
        load_checkpoint(tmp_path / "stripped.pt")


# ---- wrong contents with a valid checksum: one line naming the file and the field ------------------

def _resave(state: dict, path: Path) -> Path:
    """Saves ``state`` with a checksum that matches it (the contents are wrong, not corrupt)."""
    from negrec.train.checkpoint import payload_checksum

    state["checksum"] = payload_checksum(state)
    torch.save(state, path)
    return path


def _drop(d, key):
    del d[key]


MUTATIONS = {
    "no item_meta": (lambda s: _drop(s, "item_meta"), "checkpoint field item_meta is missing"),
    "cluster length": (lambda s: s["item_meta"].__setitem__("cluster", s["item_meta"]["cluster"][:-3]),
                       "item_meta.cluster must be an int64 tensor of shape [120]"),
    "raw ids length": (lambda s: s["item_meta"]["raw_ids"].__setitem__(
        "values", s["item_meta"]["raw_ids"]["values"][:7]), "item_meta.raw_ids has 7 entries for 120"),
    "num_items text": (lambda s: s.__setitem__("num_items", "120"), "num_items must be an int"),
    "dim text": (lambda s: s["model_config"].__setitem__("dim", "16"), "model_config is invalid"),
    "unknown model key": (lambda s: s["model_config"].__setitem__("width", 3), "model_config is invalid"),
    "missing weight": (lambda s: _drop(s["model"], "ln.weight"), "missing: ln.weight"),
    "weight shape": (lambda s: s["model"].__setitem__("ln.weight", torch.ones(7)),
                     "weight ln.weight is torch.float32 [7] but the stored model configuration "
                     "implies torch.float32 [16]"),
    "num_items vs table": (lambda s: s.__setitem__("num_items", 119),
                           "item_meta.raw_ids has 120 entries for 119 items"),
    "objective": (lambda s: s["objective"].__setitem__("name", "ntr"), "objective is invalid"),
    "config without data": (lambda s: _drop(s["config"], "data"), "config.data is missing"),
    "cluster rows": (lambda s: s["model"].__setitem__(
        "embed.item_to_cluster", torch.zeros_like(s["model"]["embed.item_to_cluster"])),
        "weight embed.item_to_cluster does not match the stored item_meta"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_wrong_contents_are_one_line_naming_the_file_and_field(run_dir, tmp_path, capsys, mutation):
    change, message = MUTATIONS[mutation]
    state = torch.load(run_dir / "best.pt", weights_only=True)
    change(state)
    path = _resave(state, tmp_path / "bad.pt")
    code, _, err = cli(capsys, "recommend", "--checkpoint", str(path), "--history", "5:positive")
    assert_one_line_error(code, err, f"{path}: ", message)


@pytest.mark.parametrize("content", [b"", b"not a zip file", None], ids=["empty", "text", "truncated"])
def test_unreadable_files_are_one_line(run_dir, tmp_path, capsys, content):
    path = tmp_path / "bad.pt"
    data = (run_dir / "best.pt").read_bytes()
    path.write_bytes(data[:len(data) // 2] if content is None else content)
    code, _, err = cli(capsys, "evaluate", "--checkpoint", str(path))
    assert_one_line_error(code, err, f"{path}: not a readable negrec checkpoint")


def test_resume_from_a_truncated_last_pt_is_one_line_naming_it(run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[:len(data) // 3])
    code, _, err = cli(capsys, "train", "--out", str(out), "--resume")
    assert_one_line_error(code, err, f"{out / 'last.pt'}: not a readable negrec checkpoint")


# The crafted file of issue 16: a small checkpoint whose model_config asks for dim 2**20. The
# model it describes would take gigabytes; the loader must refuse it from the stored shapes
# before building anything. The child process may use at most 1 GiB more memory than after
# importing negrec (RLIMIT_DATA), so an attempt to build the model fails there instead of
# exhausting the machine.
HUGE_SCRIPT = textwrap.dedent("""
    import resource, sys
    import torch
    from negrec.train.checkpoint import load_checkpoint
    with open("/proc/self/status") as f:
        data_kb = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
    limit = (data_kb << 10) + (1 << 30)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        load_checkpoint(sys.argv[1])
    except Exception as exc:
        print(type(exc).__name__, exc)
""")


def test_a_crafted_huge_model_config_is_refused_before_allocating(run_dir, tmp_path):
    state = torch.load(run_dir / "best.pt", weights_only=True)
    state["model_config"]["dim"] = 2 ** 20
    path = _resave(state, tmp_path / "huge.pt")
    assert path.stat().st_size < 1 << 20
    script = tmp_path / "load_huge.py"
    script.write_text(HUGE_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("UserError"), proc.stdout + proc.stderr[-2000:]
    assert re.fullmatch(rf"UserError {re.escape(str(path))}: weight embed\.\S+ is torch\.float32 "
                        r"\[\d+, 16\] but the stored model configuration implies torch\.float32 "
                        r"\[\d+, 1048576\]\n", proc.stdout), proc.stdout


def test_warnings_of_a_verified_checkpoint(run_dir):
    """A current checkpoint loads without any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(run_dir / "best.pt")
