"""Frozen copy of the bad-row policy of the row-by-row loaders (the error classes themselves
are the package's: they are the contract both implementations raise)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from negrec.data.loaders.errors import SKIP_BAD_ROWS, DataFormatError, Option
from negrec.data.log import LoadReport
from negrec.errors import UserError

__all__ = ["BadRowPolicy", "BadRows", "DataFormatError", "Option"]

BadRows = Literal["error", "skip"]


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
