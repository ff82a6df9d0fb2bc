"""Data-parallel training under torchrun (one machine or several): the process group, this
process's rank and device, each rank's share of a global batch, the averaging of sparse
gradients (which DDP leaves to it), and the end of a run, which every rank reaches together."""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Ranks", "FINISH_TIMEOUT"]

#: How long the other ranks wait, at the end of a run, for rank 0 to finish its own work (the
#: evaluation and the writes, which can outlast ``NEGREC_DIST_TIMEOUT_S`` on a large catalogue).
#: A rank 0 that dies ends the wait at once: the store they wait on is held by its torchrun
#: agent (by rank 0 itself without torchrun), which exits with it.
FINISH_TIMEOUT = timedelta(hours=24)


def process_rank() -> int:
    """This process's rank in a torchrun job (``RANK``; 0 without torchrun): what a caller
    needs to know before a process group exists (rank 0 alone writes shared files)."""
    return int(os.environ.get("RANK", "0"))


class Ranks:
    """``world`` processes (``WORLD_SIZE``, 1 without torchrun), this one ``rank``; joins the
    process group when there are several (nccl on CUDA, else gloo), and leaves it when the
    process exits (before the interpreter shuts down; see :meth:`finish`). A rank that dies ends
    the job with an error after ``NEGREC_DIST_TIMEOUT_S`` seconds (default 300), not a hang."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = process_rank()
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo"
            dist.init_process_group(backend, timeout=timedelta(seconds=int(
                os.environ.get("NEGREC_DIST_TIMEOUT_S", "300"))))
            # the later runs of this process share the group (Ranks joins it once)
            atexit.register(_leave_process_group)

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

    def finish(self) -> None:
        """Ends a run on every rank, rank 0 after its last work (its evaluation and writes):
        returns once every rank has called it; the others wait up to :data:`FINISH_TIMEOUT`
        for rank 0. Nothing with one process.

        The ranks end together, and leave the process group at exit, because a worker that
        ends early or with its group alive breaks a torchrun job that succeeded. A process that
        exits with its group alive can abort (SIGABRT, "terminate called without an active
        exception": a gloo thread still releasing the last collective's tensors needs the
        interpreter, which is shutting down); its torchrun agent then fails and exits, taking
        with it the rendezvous store when it held it, which the other agents poll while their
        workers run. And an agent whose worker ended waits for the others at most 5 minutes
        (torchrun's exit barrier), less than rank 0's evaluation may take."""
        if self.world == 1 or not dist.is_initialized():
            return
        # the store the process group was made with: torch has no public accessor for it
        _end_together(dist.distributed_c10d._get_default_store(), self.rank, self.world,
                      FINISH_TIMEOUT)

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


def _leave_process_group() -> None:
    """Destroys the process group (at exit: gloo's threads end while the interpreter runs)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _end_together(store: dist.Store, rank: int, world: int, timeout: timedelta) -> None:
    """Returns on each of the ``world`` ranks once all of them have called it (on their k-th
    call, once all have made their k-th), rank 0 last: ``store`` may live in rank 0's process
    (without torchrun), so it returns only after every other rank's last request reached it.
    The others wait up to ``timeout`` for the last rank to arrive; rank 0 then waits the store's
    own timeout for them to leave."""
    # a restarted torchrun job may find its earlier attempt's keys in the agent's store
    prefix = f"negrec/end/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    # no rank makes its (k+1)-th call before every rank has made its k-th (it waits for them
    # here), so the k-th calls take the counts (k-1)*world+1 .. k*world
    count = store.add(f"{prefix}/arrived", 1)
    call = f"{prefix}/{(count - 1) // world}"
    if count % world == 0:
        store.set(f"{call}/all_arrived", "1")
    store.wait([f"{call}/all_arrived"], timeout)
    if rank != 0:
        if store.add(f"{call}/left", 1) == world - 1:
            store.set(f"{call}/all_left", "1")
    else:
        store.wait([f"{call}/all_left"])
