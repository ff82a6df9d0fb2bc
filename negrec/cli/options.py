"""What every subcommand may use: the command line's own error type and checks of option values."""

from __future__ import annotations

import argparse

from negrec.errors import UserError

__all__ = ["CLIError", "at_least"]


class CLIError(UserError):
    """A user error found by the command line itself (an option's value or combination)."""


def at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum`` (argparse reports anything else)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse
