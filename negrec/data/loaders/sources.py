"""The data sources: a name (``--data NAME``, ``data.source``) -> the loader that reads it.

A loader module registers its source with :func:`data_source`; the registry imports every
module of :mod:`negrec.data.loaders` the first time it is asked (:class:`negrec.registry.Registry`),
so adding a source is adding its module (docs/contributing.md, "Add a loader"). A source's
function takes the path and the data section of the configuration (any object with the fields
of :class:`negrec.train.data_spec.DataSpec`: the loader reads the options it needs from it).
The simulator is a source of the application (``negrec.experiments.data``), not of this layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from negrec.data.log import EventLog
from negrec.registry import Registry

__all__ = ["data_source", "source_loader", "source_names"]

SourceLoader = Callable[[Path, Any], EventLog]

SOURCES: Registry[SourceLoader] = Registry("data source", __package__, Path(__file__).parent)


def data_source(*names: str) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator: ``load(path, spec) -> EventLog`` reads the sources ``names``."""
    return SOURCES.register(*names)


def source_names() -> tuple[str, ...]:
    """The registered file sources, in name order."""
    return SOURCES.names()


def source_loader(name: str) -> SourceLoader:
    return SOURCES[name]
