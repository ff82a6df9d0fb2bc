"""Registries by name whose entries declare themselves: each module of a package registers what
it provides, and the registry imports every module of the package the first time it is asked,
so that adding an entry is adding its module (the model kinds of :mod:`negrec.models`, the data
sources of :mod:`negrec.data.loaders`).

This module imports nothing from negrec, so every layer may keep a registry."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Callable, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, filled by the modules of package ``package`` (dotted name) in folder
    ``folder``; ``what`` names an entry in messages ("model kind")."""

    def __init__(self, what: str, package: str, folder: Path):
        self.what, self.package, self.folder = what, package, folder
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: the decorated object is the entry of every name in ``names``."""
        def add(entry: T) -> T:
            for name in names:
                if self._entries.get(name, entry) is not entry:
                    raise ValueError(f"{self.what} {name!r} is registered twice")
                self._entries[name] = entry
            return entry

        return add

    def names(self) -> tuple[str, ...]:
        """The registered names, in name order."""
        self._discover()
        return tuple(sorted(self._entries))

    def __getitem__(self, name: str) -> T:
        self._discover()
        return self._entries[name]

    def _discover(self) -> None:
        """Imports every module of the package once, so that each registers its entries."""
        if self._discovered:
            return
        for module in pkgutil.iter_modules([str(self.folder)]):
            importlib.import_module(f"{self.package}.{module.name}")
        self._discovered = True
