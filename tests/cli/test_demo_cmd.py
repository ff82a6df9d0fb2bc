"""negrec demo's command line."""

from __future__ import annotations


from helpers import run_cli


def test_demo_help_and_bad_size():
    proc = run_cli("demo", "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--full-size" in proc.stdout
    proc = run_cli("demo", "--quick", "--full-size")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
