"""Helpers shared by test modules of several packages (importable from every test folder: the
root conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def one_model_objective(name: str = "input_ntr"):
    """Objective ``name`` with the dislike weight given (:data:`ONE_DISLIKE_WEIGHT`), so that
    a configuration of it trains one model."""
    from negrec.train.objectives import Objective

    return Objective(name, {"dislike": ONE_DISLIKE_WEIGHT})

#: A dislike weight given, for tests that train one model (the default, auto, chooses it by
#: training several: tests of that choice leave it out).
ONE_DISLIKE_WEIGHT = 20.0

#: Command-line options of a training run small enough for a test (seconds): a 60-user
#: simulated log, a one-layer model of width 8, one epoch, one model (the dislike weight given).
TINY_TRAINING = ["--data", "simulated", "--sim-users", "60", "--sim-events", "15", "--no-progress",
                 "--set", f"objective.weights.dislike={ONE_DISLIKE_WEIGHT:g}",
                 "--set", "data.sim_config={num_items: 100, num_clusters: 5, num_creators: 20}",
                 "--set", "model.dim=8", "--set", "model.num_layers=1", "--set", "model.max_len=10",
                 "--set", "tensorboard=false", "--set", "batch_size=16", "--epochs", "1"]


def run_cli(*args: str, cwd: str | Path = "/", timeout: int = 600) -> subprocess.CompletedProcess:
    """``negrec ARGS`` in a fresh process (for what depends on the process: cwd, training), run
    from ``cwd`` (default ``/``, so that nothing depends on the repository's folder)."""
    return subprocess.run([sys.executable, "-m", "negrec", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def run_cli_here(capsys, *args: str) -> tuple[int, str, str]:
    """``negrec ARGS`` through the same entry point in this process (no interpreter start-up:
    for what does not depend on the process): (exit status, stdout, stderr). ``capsys`` is the
    test's pytest fixture."""
    from negrec.cli import main

    try:
        status = main(list(args))
    except SystemExit as exc:  # --help, and argparse's usage errors
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """A command refused an input: exit status 2, one line on stderr (no traceback) holding
    every ``needle``."""
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def assert_png(path: Path) -> None:
    """``path`` is a PNG image larger than 100 x 100 pixels."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
