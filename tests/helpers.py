"""Helpers shared by test modules of several packages (importable from every test folder: the
root conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def assert_png(path: Path) -> None:
    """``path`` is a PNG image larger than 100 x 100 pixels."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
