"""Errors caused by what the user gave (files, options, configurations), as opposed to bugs.

This module imports nothing from negrec, so every layer may raise :class:`UserError`. The
command line prints a :class:`UserError` as one line (``negrec --debug`` shows the traceback);
any other exception keeps its traceback, so that a bug is never mistaken for bad input.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input from the user: the message is one line naming the input (file, option or
    configuration key), what was expected and what was received.

    A ``ValueError`` subclass, so callers that caught the ``ValueError`` raised before this
    type existed keep working."""
