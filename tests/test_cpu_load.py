"""The load governor (negrec/cpu_load.py): reading the CPUs' busy time, the rule that turns
other work's load into a thread count, the governor's sampling (driven by fake clocks), that
negrec's long loops give it a chance to act, and, on this machine, that a command started beside
busy processes runs with fewer threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from negrec import cpu_load
from negrec.cpu_load import ThreadGovernor, busy_seconds, free_threads, other_busy_cpus

STAT = """cpu  900 90 300 5000 10 0 5 7 0 0
cpu0 100 50 30 2000 5 0 1 2 0 0
cpu1 200 40 60 3000 5 0 2 3 0 0
cpu2 600 0 210 0 0 0 2 2 0 0
intr 1 2 3
"""


def test_busy_seconds_sums_the_busy_columns_of_the_given_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    ticks = os.sysconf("SC_CLK_TCK")
    # user + system + irq + softirq + steal; idle, iowait and guest columns are not busy
    assert busy_seconds([0, 1], count_nice=False, stat=stat) == pytest.approx((133 + 265) / ticks)
    assert busy_seconds([1], count_nice=True, stat=stat) == pytest.approx((265 + 40) / ticks)
    assert busy_seconds([0, 7], count_nice=False, stat=stat) is None  # no line for cpu7
    assert busy_seconds([0], count_nice=False, stat=tmp_path / "missing") is None


def test_other_work_is_the_busy_time_that_is_not_ours():
    assert other_busy_cpus(busy_delta_s=3.0, own_delta_s=1.0, wall_delta_s=2.0) == 1.0
    assert other_busy_cpus(1.0, 1.02, 1.0) == 0.0  # jiffy rounding never makes it negative
    assert other_busy_cpus(1.0, 0.0, 0.0) == 0.0


@pytest.mark.parametrize("others, cpus, maximum, threads", [
    (0.0, 2, 2, 2), (0.2, 2, 2, 2), (0.5, 2, 2, 2),  # noise (kernel threads, a shell)
    (0.6, 2, 2, 1), (1.0, 2, 2, 1), (2.0, 2, 2, 1), (5.0, 2, 2, 1),  # never below 1
    (1.0, 16, 16, 15), (1.6, 16, 16, 14), (3.4, 16, 8, 8),  # never above the policy's count
    (0.0, 16, 4, 4),
])
def test_free_threads(others, cpus, maximum, threads):
    assert free_threads(others, cpus, maximum) == threads


class FakeMachine:
    """A wall clock, this process's CPU time and the CPUs' busy time, advanced by the test."""

    def __init__(self):
        self.t = self.own = self.busy = 0.0
        self.set_calls: list[int] = []

    def advance(self, seconds: float, *, ours: float, others: float) -> None:
        self.t += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds

    def governor(self, maximum: int = 2, cpus: int = 2) -> ThreadGovernor:
        return ThreadGovernor(maximum, range(cpus), set_threads=self.set_calls.append,
                              clock=lambda: self.t, own_cpu=lambda: self.own,
                              busy=lambda: self.busy, interval_s=1.0)


def test_the_governor_follows_other_work_and_samples_once_per_interval():
    m = FakeMachine()
    g = m.governor()
    m.advance(1.0, ours=2.0, others=0.0)
    assert g.tick() == 2 and m.set_calls == []  # idle machine: all CPUs
    m.advance(0.5, ours=1.0, others=1.0)
    assert g.tick() == 2 and m.set_calls == []  # within the interval: no sample yet
    m.advance(0.5, ours=1.0, others=1.0)
    assert g.tick() == 1 and m.set_calls == [1]  # one CPU busy with other work
    m.advance(1.0, ours=0.67, others=1.33)
    assert g.tick() == 1 and m.set_calls == [1]  # two competitors: still at least one thread
    m.advance(1.0, ours=1.0, others=0.0)
    assert g.tick() == 2 and m.set_calls == [1, 2]  # the others left: back to all CPUs
    assert [h[2] for h in g.history] == [1, 2]


def test_the_governor_never_exceeds_the_policy_count():
    m = FakeMachine()
    g = m.governor(maximum=3, cpus=8)
    m.advance(1.0, ours=3.0, others=0.0)
    assert g.tick() == 3 and m.set_calls == []
    m.advance(1.0, ours=3.0, others=6.0)
    assert g.tick() == 2 and m.set_calls == [2]


def test_without_a_governor_adapting_does_nothing(monkeypatch):
    monkeypatch.setattr(cpu_load, "_governor", None)
    before = torch.get_num_threads()
    cpu_load.adapt_threads()
    assert torch.get_num_threads() == before


class CountingGovernor:
    def __init__(self):
        self.ticks = 0

    def tick(self):
        self.ticks += 1


def test_long_loops_give_the_governor_a_chance(monkeypatch):
    # the training loop advances a Progress once per step; catalogue scoring goes block by block
    from negrec.models.scoring import catalogue_blocks
    from negrec.progress import Progress

    counting = CountingGovernor()
    monkeypatch.setattr(cpu_load, "_governor", counting)
    bar = Progress(desc="steps", show=False, total=3)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert counting.ticks == 3
    states, table = torch.randn(5, 4), torch.randn(7, 4)
    blocks = list(catalogue_blocks(states, table, max_scores=1))  # one score per block
    assert counting.ticks == 3 + len({(b[0].start, b[0].stop) for b in blocks}) == 3 + 5


@pytest.mark.skipif(not Path("/proc/stat").exists() or not hasattr(os, "sched_setaffinity")
                    or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux (/proc/stat, CPU affinity) and at least 2 CPUs")
def test_a_command_beside_busy_processes_runs_with_fewer_threads():
    # the command and two busy-loop competitors share the same two CPUs: the command line's
    # first load sample sees them and starts with one thread (other load elsewhere on the
    # machine can only make the count lower, never higher)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    pin = f"import os; os.sched_setaffinity(0, {set(cpus)!r}); "
    competitors = [subprocess.Popen([sys.executable, "-c", pin + "\nwhile True: pass"])
                   for _ in cpus]
    try:
        code = textwrap.dedent(f"""
            {pin}
            import contextlib, io, json
            from negrec.cli import main
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                main(["env", "--json"])
            print(json.dumps(json.loads(out.getvalue())["torch_threads"]))
        """)
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "NEGREC_THREADS")}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        for c in competitors:
            c.kill()
            c.wait()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == 1
