"""negrec's thread policy (negrec/threads.py): the CPUs available (affinity, cgroup v2 and v1
quotas, read from fake cgroup trees), the precedence of the overrides, that only the command line
applies the policy (importing negrec or calling the library changes neither torch's threads nor
the environment), and that ``negrec env`` prints the policy the command line put in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from negrec.errors import UserError
from negrec.threads import (
    CpuBudget,
    available_cpus,
    cgroup_cpu_quota,
    child_environment,
    resolve_policy,
)

REPO = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
               "NEGREC_THREADS")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without thread settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd="/",
                          capture_output=True, text=True, timeout=300, **kw)


# ---- CPUs available: cgroup v2 ------------------------------------------------------------------

def v2_tree(root: Path, cgroup_path: str, limits: dict[str, str]) -> Path:
    """A fake cgroup v2 mount at ``root`` (``limits``: relative dir -> cpu.max content) and a
    /proc/self/cgroup naming ``cgroup_path``; returns the latter."""
    write(root / "cgroup.controllers", "cpu memory\n")
    for directory, content in limits.items():
        write(root / directory / "cpu.max", content)
    (root / cgroup_path.strip("/")).mkdir(parents=True, exist_ok=True)
    self_cgroup = root.parent / "self_cgroup"
    write(self_cgroup, f"0::{cgroup_path}\n")
    return self_cgroup


def test_cgroup_v2_quota_is_read_from_cpu_max(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root, "/user.slice/job", {"user.slice/job": "150000 100000\n"})
    assert cgroup_cpu_quota(root, self_cgroup) == 1.5
    budget = available_cpus(affinity=8, cgroup_root=root, self_cgroup=self_cgroup)
    # a fractional quota rounds down: a second thread would only get the process throttled
    assert budget == CpuBudget(affinity=8, quota=1.5, usable=1)


def test_cgroup_v2_tightest_limit_on_the_path_wins(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root, "/a/b", {"a": "300000 100000", "a/b": "max 100000"})
    assert cgroup_cpu_quota(root, self_cgroup) == 3.0
    assert available_cpus(affinity=8, cgroup_root=root, self_cgroup=self_cgroup).usable == 3
    assert available_cpus(affinity=2, cgroup_root=root, self_cgroup=self_cgroup).usable == 2


def test_cgroup_v2_without_a_limit_leaves_the_affinity(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root, "/a", {"a": "max 100000\n"})
    assert cgroup_cpu_quota(root, self_cgroup) is None
    assert available_cpus(affinity=4, cgroup_root=root, self_cgroup=self_cgroup) == \
        CpuBudget(affinity=4, quota=None, usable=4)


def test_cgroup_v2_quota_below_one_cpu_still_gives_one_thread(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root, "/a", {"a": "20000 100000"})
    assert available_cpus(affinity=4, cgroup_root=root, self_cgroup=self_cgroup).usable == 1


def test_cgroup_v2_hybrid_mount_under_unified(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root / "unified", "/job", {"job": "200000 100000"})
    assert cgroup_cpu_quota(root, self_cgroup) == 2.0


@pytest.mark.parametrize("content", ["garbage", "", "100000", "0 100000", "-5 100000",
                                     "150000 0"])
def test_malformed_cpu_max_counts_as_no_quota(tmp_path, content):
    root = tmp_path / "cg"
    self_cgroup = v2_tree(root, "/a", {"a": content})
    assert cgroup_cpu_quota(root, self_cgroup) is None


# ---- CPUs available: cgroup v1 ------------------------------------------------------------------

def v1_tree(root: Path, mount: str, limits: dict[str, tuple[str, str]], self_lines: str) -> Path:
    for directory, (quota, period) in limits.items():
        write(root / mount / directory / "cpu.cfs_quota_us", quota + "\n")
        write(root / mount / directory / "cpu.cfs_period_us", period + "\n")
    self_cgroup = root.parent / "self_cgroup"
    write(self_cgroup, self_lines)
    return self_cgroup


def test_cgroup_v1_quota_and_period(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v1_tree(root, "cpu,cpuacct", {"": ("-1", "100000"),
                                                "batch": ("250000", "100000")},
                          "4:memory:/batch\n2:cpu,cpuacct:/batch\n1:name=systemd:/\n")
    assert cgroup_cpu_quota(root, self_cgroup) == 2.5
    assert available_cpus(affinity=16, cgroup_root=root, self_cgroup=self_cgroup).usable == 2


def test_cgroup_v1_container_mount_is_the_containers_own_cgroup(tmp_path):
    # docker without a cgroup namespace: /proc/self/cgroup names /docker/<id>, but the mount
    # already is that cgroup, so only the mount's own files exist
    root = tmp_path / "cg"
    self_cgroup = v1_tree(root, "cpu", {"": ("100000", "100000")}, "3:cpu:/docker/0123abcd\n")
    assert cgroup_cpu_quota(root, self_cgroup) == 1.0


def test_cgroup_v1_unlimited_and_missing_files_count_as_no_quota(tmp_path):
    root = tmp_path / "cg"
    self_cgroup = v1_tree(root, "cpu", {"": ("-1", "100000")}, "3:cpu:/\n")
    assert cgroup_cpu_quota(root, self_cgroup) is None
    assert cgroup_cpu_quota(tmp_path / "nowhere", tmp_path / "no_self_cgroup") is None


def test_v1_and_v2_limits_together_take_the_tighter(tmp_path):
    root = tmp_path / "cg"
    write(root / "unified" / "cgroup.controllers", "")
    write(root / "unified" / "job" / "cpu.max", "300000 100000")
    write(root / "cpu" / "job" / "cpu.cfs_quota_us", "150000")
    write(root / "cpu" / "job" / "cpu.cfs_period_us", "100000")
    self_cgroup = tmp_path / "self_cgroup"
    write(self_cgroup, "2:cpu:/job\n0::/job\n")
    assert cgroup_cpu_quota(root, self_cgroup) == 1.5


# ---- CPUs available: affinity -------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_affinity_restricted_process_sees_one_cpu():
    # a child pinned to one CPU (the test process keeps its own mask); the host may have more
    code = """
        import os
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        from negrec.threads import available_cpus
        print(available_cpus().affinity)
    """
    proc = run_python(code, clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "1"


# ---- precedence of the overrides ----------------------------------------------------------------

CPUS = CpuBudget(affinity=6, quota=4.0, usable=4)
AUTO = "CPUs available, fewer while other work keeps some busy"


@pytest.mark.parametrize("flag, environ, threads, source", [
    (None, {}, 4, AUTO),
    (None, {"OMP_NUM_THREADS": "3"}, 3, "OMP_NUM_THREADS"),
    (None, {"OMP_NUM_THREADS": "5,2"}, 5, "OMP_NUM_THREADS"),  # one count per nesting level
    (None, {"OMP_NUM_THREADS": "3", "NEGREC_THREADS": "2"}, 2, "NEGREC_THREADS"),
    (None, {"OMP_NUM_THREADS": "3", "NEGREC_THREADS": "auto"}, 4, "NEGREC_THREADS=auto: " + AUTO),
    ("1", {"OMP_NUM_THREADS": "3", "NEGREC_THREADS": "2"}, 1, "--threads"),
    (7, {"NEGREC_THREADS": "2"}, 7, "--threads"),
    ("auto", {"NEGREC_THREADS": "off"}, 4, "--threads=auto: " + AUTO),
    (None, {"NEGREC_THREADS": " "}, 4, AUTO),  # blank counts as not set
])
def test_thread_count_precedence(flag, environ, threads, source):
    policy = resolve_policy(flag, environ=environ, cpus=CPUS)
    assert (policy.threads, policy.threads_source) == (threads, source)
    # only the automatic count follows the load; a number the user gives is kept
    assert policy.adaptive == source.endswith(AUTO)


@pytest.mark.parametrize("flag, environ", [("off", {"NEGREC_THREADS": "3"}),
                                           (None, {"NEGREC_THREADS": "OFF", "OMP_NUM_THREADS": "2"})])
def test_off_leaves_threads_alone(flag, environ):
    policy = resolve_policy(flag, environ=environ, cpus=CPUS)
    assert policy.threads is None and not policy.adaptive
    assert child_environment(policy, environ) == environ


@pytest.mark.parametrize("environ", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "10000"}])
def test_the_wait_policy_is_the_environments(environ):
    # negrec never sets how idle OpenMP threads wait; `negrec env` reports what is set
    from negrec.threads import wait_policy

    assert wait_policy(environ) == f"{next(iter(environ))}={next(iter(environ.values()))} (the environment's)"
    assert wait_policy({}).startswith("the OpenMP runtime's default")
    assert child_environment(resolve_policy(None, environ=environ, cpus=CPUS), environ) == \
        dict(environ, OMP_NUM_THREADS="4")


@pytest.mark.parametrize("flag, environ, needle", [
    ("0", {}, "--threads"), ("two", {}, "--threads"), (-1, {}, "--threads"),
    (True, {}, "--threads"),
    (None, {"NEGREC_THREADS": "0"}, "NEGREC_THREADS"),
    (None, {"NEGREC_THREADS": "many"}, "NEGREC_THREADS"),
    (None, {"OMP_NUM_THREADS": "lots"}, "OMP_NUM_THREADS"),
    (None, {"OMP_NUM_THREADS": "auto"}, "OMP_NUM_THREADS"),  # not negrec's to extend
])
def test_bad_settings_are_one_line_errors_naming_the_input(flag, environ, needle):
    with pytest.raises(UserError) as info:
        resolve_policy(flag, environ=environ, cpus=CPUS)
    message = str(info.value)
    assert message.startswith(needle + ":") and "\n" not in message and "expected" in message


def test_child_environment_carries_the_policy():
    policy = resolve_policy(None, environ={}, cpus=CPUS)
    env = child_environment(policy, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}


# ---- the library never applies the policy on its own ---------------------------------------------

def test_importing_and_using_negrec_changes_neither_threads_nor_environment(ml100k_dir, tmp_path):
    # a user's program with its own thread count; NEGREC_THREADS=1 would show if the library
    # applied the policy
    code = f"""
        import os, json
        import torch
        torch.set_num_threads(3)
        before = dict(os.environ)
        import negrec, negrec.threads, negrec.env
        from negrec.data import leave_one_out, load_movielens
        from negrec.models import ModelConfig
        from negrec.train import TrainConfig, Trainer
        from negrec.train.objectives import Objective
        negrec.threads.resolve_policy(); negrec.threads.available_cpus()
        negrec.threads.report(); negrec.env.environment()
        split = leave_one_out(load_movielens({str(ml100k_dir)!r}))
        cfg = TrainConfig(model=ModelConfig(dim=8, num_layers=1, max_len=10), objective=Objective("input_ntr", {{"dislike": 20}}),
                          epochs=1, max_steps=2, batch_size=32, eval_every=0, progress=False,
                          tensorboard=False, collate_threads=2)
        Trainer(cfg, split.train, {str(tmp_path / "run")!r}).fit()
        # torch itself records its compile cache folder (TORCHINDUCTOR_CACHE_DIR) on first use
        changed = set(os.environ.items()) ^ set(before.items())
        print(json.dumps({{"threads": torch.get_num_threads(),
                          "env_changed": sorted(kv for kv in changed
                                                if not kv[0].startswith("TORCHINDUCTOR_"))}}))
    """
    proc = run_python(code, clean_env(NEGREC_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"threads": 3, "env_changed": []}


def test_configure_is_explicit_and_a_number_is_not_adapted():
    code = """
        import json, torch
        import negrec.cpu_load, negrec.threads as t
        fixed = t.configure(2)
        fixed_governed = negrec.cpu_load.installed() is not None
        auto = t.configure("auto")
        print(json.dumps({"threads": torch.get_num_threads(), "applied": t.report()["applied"],
                          "fixed_governed": fixed_governed,
                          "auto_governed": negrec.cpu_load.installed() is not None,
                          "usable": auto.threads}))
    """
    proc = run_python(code, clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["applied"] and not result["fixed_governed"]
    assert result["auto_governed"] == Path("/proc/stat").exists()
    assert 1 <= result["threads"] <= result["usable"]


# ---- the command line applies it -----------------------------------------------------------------

def negrec_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "negrec", *args], env=env, cwd="/",
                          capture_output=True, text=True, timeout=300)


def test_negrec_env_prints_the_policy_the_command_line_put_in_force():
    proc = negrec_cli("env", "--json", env=clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = json.loads(proc.stdout)
    policy = env["thread_policy"]
    assert policy["applied"]
    assert policy["policy"]["threads"] == policy["policy"]["cpus"]["usable"]
    assert policy["policy"]["adaptive"]
    # the governor may already have lowered the count if other work keeps CPUs busy
    assert 1 <= env["torch_threads"] <= policy["policy"]["threads"]
    assert policy["lines"]["OpenMP wait"].startswith("the OpenMP runtime's default")

    text = negrec_cli("env", env=clean_env()).stdout
    for label in ("threads", "CPUs available", "load", "OpenMP wait", "overrides"):
        assert any(line.startswith(label) for line in text.splitlines()), (label, text)


@pytest.mark.parametrize("args, extra, threads, source", [
    (["--threads", "1", "env"], {}, 1, "--threads"),
    (["env", "--threads", "1"], {"NEGREC_THREADS": "2"}, 1, "--threads"),
    (["env"], {"NEGREC_THREADS": "1", "OMP_NUM_THREADS": "2"}, 1, "NEGREC_THREADS"),
    (["env"], {"OMP_NUM_THREADS": "1"}, 1, "OMP_NUM_THREADS"),
])
def test_command_line_overrides(args, extra, threads, source):
    proc = negrec_cli(*args, "--json", env=clean_env(**extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = json.loads(proc.stdout)
    assert env["torch_threads"] == threads
    assert env["thread_policy"]["policy"]["threads_source"] == source


def test_command_line_off_changes_nothing():
    proc = negrec_cli("env", "--json", env=clean_env(NEGREC_THREADS="off"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    policy = json.loads(proc.stdout)["thread_policy"]
    assert policy["policy"]["threads"] is None and not policy["policy"]["adaptive"]
    assert policy["lines"]["load"].startswith("not adapted")


def test_command_line_bad_thread_setting_is_a_one_line_error():
    proc = negrec_cli("env", "--threads", "zero", env=clean_env())
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("negrec env: error: --threads: expected a positive integer, "
                                   "'auto' (the CPUs available to the process) or 'off'; got 'zero'")


def test_an_in_process_command_gives_the_caller_its_thread_count_back(capsys):
    # negrec.cli.main(argv) called from a program applies the policy for the command only
    import torch

    from negrec.cli import main

    before = torch.get_num_threads()
    caller = 3 if before != 3 else 2
    torch.set_num_threads(caller)
    try:
        assert main(["--threads", "1", "env", "--json"]) == 0
        during = json.loads(capsys.readouterr().out)
        assert during["torch_threads"] == 1 and during["thread_policy"]["applied"]
        assert torch.get_num_threads() == caller
        from negrec.threads import report
        assert not report()["applied"]
    finally:
        torch.set_num_threads(before)
