"""negrec demo's command line."""

from __future__ import annotations


from helpers import run_cli_here


def test_demo_help_and_bad_size(capsys):
    status, out, _ = run_cli_here(capsys, "demo", "--help")
    assert status == 0 and "--quick" in out and "--full-size" in out
    status, _, err = run_cli_here(capsys, "demo", "--quick", "--full-size")
    assert status == 2 and "not allowed with argument" in err
