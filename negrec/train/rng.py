"""The random-number state of a training run: seeding every generator at the start, and the
state a checkpoint stores so that a resumed run draws exactly what the uninterrupted run
would have drawn (dropout from torch's global generator, crops and negatives from the data
generator, and Python's and numpy's global generators for anything else)."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seeds Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state(data_generator: torch.Generator) -> dict:
    """Every generator's state, as tensors and plain values (a checkpoint's ``rng``)."""
    return {"torch": torch.get_rng_state(), "data": data_generator.get_state(),
            "numpy": _numpy_state_to_tensor(), "python": list(random.getstate()[1]),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(state: dict, data_generator: torch.Generator) -> None:
    """Sets every generator to a state :func:`capture_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    data_generator.set_state(state["data"])
    _numpy_state_from_tensor(state["numpy"])
    py = random.getstate()
    random.setstate((py[0], tuple(state["python"]), py[2]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_tensor() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_tensor(d: dict) -> None:
    np.random.set_state(("MT19937", d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"],
                         d["cached"]))
