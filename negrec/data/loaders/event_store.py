"""Event stores (``negrec data convert``; :meth:`EventLog.open`) as a data source: every
command reads one with ``--data store --path DIR``, memory-mapped."""

from __future__ import annotations

from pathlib import Path

from negrec.data.loaders.sources import data_source
from negrec.data.log import EventLog

__all__: list[str] = []


@data_source("store")
def _from_spec(path: Path, spec) -> EventLog:
    return EventLog.open(path)
