"""Data-parallel training under torchrun: the process group, this process's rank and device,
and each rank's share of a global batch."""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Ranks"]


class Ranks:
    """``world`` processes (``WORLD_SIZE``, 1 without torchrun), this one ``rank``; joins the
    process group when there are several (nccl on CUDA, else gloo). A rank that dies ends the
    job with an error after ``NEGREC_DIST_TIMEOUT_S`` seconds (default 300), not a hang."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo"
            dist.init_process_group(backend, timeout=timedelta(seconds=int(
                os.environ.get("NEGREC_DIST_TIMEOUT_S", "300"))))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU (``LOCAL_RANK``) when training on CUDA."""
        if device.type == "cuda" and self.world > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device

    def share(self, idx: np.ndarray) -> np.ndarray:
        """This rank's rows of a global batch (every world-th, from its rank)."""
        return idx[self.rank::self.world] if self.world > 1 else idx

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sums ``tensor`` over the ranks, in place (nothing with one process)."""
        if self.world > 1:
            dist.all_reduce(tensor)

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Rank 0's ``tensor`` on every rank, in place."""
        if self.world > 1:
            dist.broadcast(tensor, 0)

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` inside DistributedDataParallel when there are several ranks."""
        if self.world == 1:
            return module
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
