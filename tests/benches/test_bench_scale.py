"""benches/bench_scale.py's full run (issue 14): generate a log of 25M events, convert it into
an event store, open it, one capped training pass on it and the evaluation of 10k users, each
stage in a child process of its own, on this machine within its 24 GB.

Marked ``slow`` (it writes, converts and trains on 25M events; the command is in README, "Run
the tests"). The size comes from ``NEGREC_SCALE_SIZE`` (default ``25M``; e.g. ``1M`` for a short
run that checks the same things)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benches" / "bench_scale.py"
SIZE = os.environ.get("NEGREC_SCALE_SIZE", "25M")
STAGES = ("generate", "convert", "open", "train", "evaluate")
#: The machine's memory: no stage may need more (peak RSS of its process).
MACHINE_MB = 24 * 1024
#: Opening the store adds less than this RSS (issue 14's target; its other half, under a second,
#: is a time: the bench reports it, ``open_25m_s``, and no test asserts a time).
OPEN_MB = 50.0


@pytest.mark.slow
def test_the_full_scale_run_fits_the_machine(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--sizes", SIZE, "--stages",
                          ",".join(STAGES), "--data", str(tmp_path / "data"),
                          "--csv", str(tmp_path / "scale.csv")],
                         capture_output=True, text=True, timeout=6 * 3600)
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stdout)  # the stages' figures, shown with pytest -s
    with open(tmp_path / "scale.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["stage"] for r in rows} == set(STAGES), out.stdout
    peak = max(float(r["peak_rss_mb"]) for r in rows)
    assert peak < MACHINE_MB, f"a stage peaked at {peak:.0f} MB"
    opened = [r for r in rows if r["stage"] == "open"]
    assert min(json.loads(r["extra"])["open_rss_mb"] for r in opened) < OPEN_MB, opened
    train = next(r for r in rows if r["stage"] == "train")
    assert json.loads(train["extra"])["steps"] > 0, train
    evaluated = next(r for r in rows if r["stage"] == "evaluate")
    assert json.loads(evaluated["extra"])["users"] == 10_000, evaluated
