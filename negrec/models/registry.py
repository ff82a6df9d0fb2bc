"""The model registry: ``ModelConfig.kind`` -> the class that builds it.

A model is one module of :mod:`negrec.models` whose class is decorated with
:func:`register_model`; the registry imports every module of the package the first time it is
asked (:class:`negrec.registry.Registry`), so adding a model is adding its file
(docs/contributing.md, "Add a model").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from negrec.registry import Registry

__all__ = ["build_model", "model_class", "model_kinds", "register_model"]

MODELS: Registry[type] = Registry("model kind", __package__, Path(__file__).parent)


def register_model(kind: str) -> Callable[[type], type]:
    """Class decorator: the class builds models of ``ModelConfig.kind == kind``. It is called as
    ``cls(config, num_items, item_cluster=..., item_creator=...)``."""
    return MODELS.register(kind)


def model_kinds() -> tuple[str, ...]:
    """The registered model kinds, in name order."""
    return MODELS.names()


def model_class(kind: str) -> type:
    return MODELS[kind]


def build_model(config: Any, num_items: int, item_cluster=None, item_creator=None) -> Any:
    """An untrained :class:`~negrec.models.base.SequentialRecommender` of ``config.kind`` (a
    :class:`~negrec.models.config.ModelConfig`) over ``num_items`` items (``item_cluster`` /
    ``item_creator`` [V] int arrays, -1 = unknown, for ``cluster_input`` / ``creator_input``)."""
    return model_class(config.kind)(config, num_items, item_cluster=item_cluster,
                                    item_creator=item_creator)
