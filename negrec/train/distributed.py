"""Data-parallel training under torchrun (one machine or several): the process group, this
process's rank and device, each rank's share of a global batch, and the averaging of sparse
gradients (which DDP leaves to it)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Sequence

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

    def wrap(self, module: torch.nn.Module, device: torch.device,
             local: Sequence[torch.nn.Parameter] = ()) -> torch.nn.Module:
        """``module`` inside DistributedDataParallel when there are several ranks. DDP leaves
        the parameters ``local`` alone (their gradients are sparse: NCCL cannot all-reduce
        them, so :meth:`average_sparse_gradients` does it with any backend)."""
        if self.world == 1:
            return module
        ids = {id(p) for p in local}
        names = [name for name, p in module.named_parameters() if id(p) in ids]
        if names:
            DDP = torch.nn.parallel.DistributedDataParallel
            DDP._set_params_and_buffers_to_ignore_for_model(module, names)
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)

    def average_sparse_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replaces the sparse gradient of each of ``params`` by its mean over the ranks, as DDP
        does for dense ones (each rank's gradient divided by the world size, then summed):
        every rank gathers every rank's rows and values (padded to the longest) and coalesces
        them, rank 0's first. A parameter without a gradient on a rank counts as zero there.
        Nothing with one process."""
        if self.world == 1:
            return
        for p in params:
            grad = p.grad.coalesce() if p.grad is not None else torch.sparse_coo_tensor(
                torch.zeros(1, 0, dtype=torch.long, device=p.device),
                torch.zeros(0, *p.shape[1:], dtype=p.dtype, device=p.device), p.shape)
            rows, values = grad.indices()[0], grad.values() / self.world
            counts = self._gather(torch.tensor([rows.numel()], device=p.device))
            longest = int(max(c.item() for c in counts))
            all_rows = self._gather(_pad(rows, longest))
            all_values = self._gather(_pad(values, longest))
            rows = torch.cat([r[:int(c.item())] for r, c in zip(all_rows, counts)])
            values = torch.cat([v[:int(c.item())] for v, c in zip(all_values, counts)])
            p.grad = torch.sparse_coo_tensor(rows[None], values, p.shape,
                                             check_invariants=True).coalesce()

    def _gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape on every rank), in rank order."""
        out = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(out, tensor)
        return out


def _pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """``tensor`` with zero rows appended up to ``length`` rows."""
    extra = length - tensor.shape[0]
    if extra == 0:
        return tensor.contiguous()
    return torch.cat([tensor, tensor.new_zeros(extra, *tensor.shape[1:])])
