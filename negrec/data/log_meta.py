"""What an event log carries besides its events: the items' metadata (:class:`ItemMeta`) and
what its loader did to the raw rows (:class:`LoadReport`). Both are re-exported by
:mod:`negrec.data.log`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from negrec.data import store

__all__ = ["ItemMeta", "LoadReport", "raw_array"]


@dataclass
class LoadReport:
    """What a loader or filter did to the raw rows: nothing is dropped silently."""

    source: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    repaired: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first example
    # kept as they are but worth knowing (e.g. duplicate events): reason -> count
    notes: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, example: str = "", count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def repair(self, reason: str, example: str = "", count: int = 1) -> None:
        self.repaired[reason] = self.repaired.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def note(self, reason: str, example: str = "", count: int = 1) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def summary(self) -> str:
        parts = [f"{self.source}: read {self.rows_read} rows, kept {self.rows_kept}"]
        for reason, n in self.dropped.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"dropped {n}: {reason}{ex}")
        for reason, n in self.repaired.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"repaired {n}: {reason}{ex}")
        for reason, n in self.notes.items():
            ex = f" (e.g. {self.examples[reason]})" if reason in self.examples else ""
            parts.append(f"noted {n}: {reason}{ex}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ItemMeta(store.HoldsMappedArrays):
    """Item metadata, indexed by dense item id 0..V-1.

    ``cluster`` is the content cluster/category of each item (-1 when unknown), with names in
    ``cluster_names``; ``creator`` likewise (``None`` when the source has no creators).
    """

    raw_ids: np.ndarray  # [V] raw item ids (int64 or str)
    cluster: np.ndarray  # [V] int32
    cluster_names: list[str]
    creator: np.ndarray | None = None  # [V] int32
    creator_names: list[str] | None = None
    titles: list[str] | None = None

    def __post_init__(self) -> None:
        v = len(self.raw_ids)
        self.cluster = np.asarray(self.cluster, dtype=np.int32)
        if self.cluster.shape != (v,):
            raise ValueError(f"ItemMeta.cluster must have shape [{v}] (one per item); got "
                             f"{list(self.cluster.shape)}")
        if v and (self.cluster.min() < -1 or self.cluster.max() >= len(self.cluster_names)):
            raise ValueError(f"ItemMeta.cluster values must be -1 or < len(cluster_names) = "
                             f"{len(self.cluster_names)}; got range [{self.cluster.min()}, "
                             f"{self.cluster.max()}]")
        if self.creator is not None:
            self.creator = np.asarray(self.creator, dtype=np.int32)
            if self.creator.shape != (v,):
                raise ValueError(f"ItemMeta.creator must have shape [{v}]; got "
                                 f"{list(self.creator.shape)}")

    @property
    def num_items(self) -> int:
        return len(self.raw_ids)

    @property
    def has_creators(self) -> bool:
        return self.creator is not None

    @classmethod
    def anonymous(cls, raw_ids: np.ndarray) -> "ItemMeta":
        """Metadata for items with no known cluster or creator."""
        return cls(raw_ids=np.asarray(raw_ids), cluster=np.full(len(raw_ids), -1, np.int32),
                   cluster_names=[])


def raw_array(values: Iterable) -> np.ndarray:
    """Raw ids as a log holds them: int64 when they are integers, else strings."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr.astype(str)
