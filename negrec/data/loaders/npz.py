"""Saved event logs (``EventLog.save``: one .npz file) as a data source."""

from __future__ import annotations

from pathlib import Path

from negrec.data.loaders.sources import data_source
from negrec.data.log import EventLog

__all__: list[str] = []


@data_source("npz")
def _from_spec(path: Path, spec) -> EventLog:
    return EventLog.load(path)
