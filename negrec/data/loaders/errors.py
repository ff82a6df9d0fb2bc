"""Errors of the loaders: a malformed file names the file and the line, and advises options
in a form each front end can spell its own way; and the bad-row policy (stop or skip)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from negrec.data.log import LoadReport
from negrec.errors import UserError

__all__ = ["SKIP_BAD_ROWS", "BadRowPolicy", "BadRows", "DataFormatError", "Option"]

BadRows = Literal["error", "skip"]


@dataclass(frozen=True)
class Option:
    """A loader keyword argument an error message advises, with the value to pass.

    ``str()`` spells it as Python (``on_bad_rows='skip'``); a front end with other spellings
    (the command line: ``--on-bad-rows skip``) re-spells it through
    :meth:`DataFormatError.spelled`, so the data layer needs no knowledge of the front end.
    """

    name: str  # keyword of load_movielens / load_kuairand / load_table
    value: object

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


SKIP_BAD_ROWS = Option("on_bad_rows", "skip")


class DataFormatError(UserError):
    """A malformed input file: the message names the file, the line and what is wrong.

    Built from text and :class:`Option` parts; ``str()`` spells the options as Python keyword
    arguments, :meth:`spelled` with any other speller.
    """

    def __init__(self, *parts: str | Option):
        self.parts = parts
        super().__init__("".join(map(str, parts)))

    def spelled(self, spell: Callable[[Option], str]) -> str:
        """The message with every option written by ``spell``."""
        return "".join(spell(p) if isinstance(p, Option) else p for p in self.parts)


class BadRowPolicy:
    """The bad-row policy of one file: ``"error"`` raises a DataFormatError naming the file and
    line; ``"skip"`` drops the row and counts it in ``report`` by reason."""

    def __init__(self, path: Path, on_bad_rows: BadRows, report: LoadReport):
        if on_bad_rows not in ("error", "skip"):
            raise UserError(f"on_bad_rows must be 'error' or 'skip'; got {on_bad_rows!r}")
        self.path, self.policy, self.report = path, on_bad_rows, report

    def __call__(self, line_no: int, reason: str, detail: str) -> None:
        if self.policy == "error":
            raise DataFormatError(f"{self.path}:{line_no}: {reason}: {detail} (pass ",
                                  SKIP_BAD_ROWS, " to drop such rows and count them)")
        self.report.drop(reason, f"line {line_no}: {detail}")
