"""The optimizer of a training run, its learning-rate schedule, and gradient clipping that
takes sparse gradients.

The network (attention or recurrent layers, norms, position and feedback embeddings) is always
updated by AdamW. The tables with one row per item, cluster or creator (the model's
:meth:`~negrec.models.base.SequentialRecommender.row_tables`) are updated as
``optim.embeddings`` says:

- ``dense``: by the same AdamW, every row every step (``torch.optim.AdamW``; what negrec did
  before the option existed). Each step then costs O(V D) whatever the loss: the gradient of
  the whole [V, D] table is materialised, and AdamW reads and writes the table and both
  moments;
- ``sparse``: the tables produce sparse gradients (only the rows of the step's inputs, targets
  and candidates) and :class:`LazyAdamW` updates only those rows ("lazy Adam"): a row outside
  the batch keeps its value and moments. Each step costs O(rows in the batch x D);
- ``auto`` (default): ``sparse`` from :data:`SPARSE_FROM_ITEMS` items with a sampled or
  in-batch softmax, else ``dense`` (the full softmax touches every row every step anyway).

Why the threshold, and what the two cost and learn: docs/training_scale.md.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = ["EMBEDDING_UPDATES", "SPARSE_FROM_ITEMS", "LazyAdamW", "build_optimizer",
           "build_scheduler", "clip_gradients", "embedding_update"]

#: The values of ``optim.embeddings``.
EMBEDDING_UPDATES = ("auto", "dense", "sparse")

#: ``auto`` turns to sparse row updates from this many items (measured: docs/training_scale.md).
SPARSE_FROM_ITEMS = 50_000


def embedding_update(setting: str, *, loss_mode: str, num_items: int) -> str:
    """``"dense"`` or ``"sparse"``: how the row tables are updated for ``optim.embeddings =
    setting`` (one of :data:`EMBEDDING_UPDATES`) with ``loss.mode = loss_mode`` over
    ``num_items`` items."""
    if setting not in EMBEDDING_UPDATES:
        raise ValueError(f"optim.embeddings must be one of {', '.join(EMBEDDING_UPDATES)}; got "
                         f"{setting!r}")
    if setting != "auto":
        return setting
    return "sparse" if loss_mode != "full" and num_items >= SPARSE_FROM_ITEMS else "dense"


def build_optimizer(model: nn.Module, config, update: str) -> torch.optim.Optimizer:
    """The optimizer of ``model`` for the ``optim`` section ``config`` and the row-table
    ``update`` (``"dense"`` or ``"sparse"``, from :func:`embedding_update`). ``sparse`` also
    switches the model's row tables to sparse gradients."""
    kwargs = dict(lr=config.lr, betas=config.betas, eps=config.eps,
                  weight_decay=config.weight_decay)
    params = _param_groups(model, config)
    if update == "dense":
        return torch.optim.AdamW(params, **kwargs)
    if update != "sparse":
        raise ValueError(f"build_optimizer: update must be dense or sparse; got {update!r}")
    for table in model.row_tables():
        table.sparse = True
    return LazyAdamW(params, **kwargs)


def _param_groups(model: nn.Module, config) -> list:
    """The model's parameters as the optimizer takes them. Without weight decay, one group (all
    parameters in ``model.parameters()`` order: what negrec always built, so older checkpoints'
    optimizer states still load). With it, up to three groups: the network's weight matrices
    and its position / feedback-code embeddings (``config.weight_decay``); the row tables
    (``config.row_weight_decay``, null: ``weight_decay``); and the parameters that are never
    decayed, biases, norm gains and the feedback-code gains. A gain rests at 1, not 0: decay
    pulls the stored feedback gain towards 0, i.e. the gain towards ``1 - rate`` (-7 at dim
    64), which flips every code's sign on its own."""
    row_decay = config.weight_decay if config.row_weight_decay is None else config.row_weight_decay
    if config.weight_decay == 0 and row_decay == 0:
        return list(model.parameters())
    rows = {id(t.weight) for t in model.row_tables()}
    network, kept, tables = [], [], []
    for name, p in model.named_parameters():
        if id(p) in rows:
            tables.append(p)
        elif p.dim() < 2 or name.rsplit(".", 1)[-1] == "feedback_gain":
            kept.append(p)
        else:
            network.append(p)
    groups = [{"params": network, "weight_decay": config.weight_decay},
              {"params": kept, "weight_decay": 0.0},
              {"params": tables, "weight_decay": row_decay}]
    return [g for g in groups if g["params"]]


def build_scheduler(optimizer: torch.optim.Optimizer, config,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of the ``optim`` section ``config``: linear warm-up over
    ``warmup_steps``, then constant or cosine decay to 0 at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, total_steps))


def _lr_factor(opt, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier of each step: linear warm-up, then constant or cosine
    decay to 0 at ``total_steps``."""
    def factor(step: int) -> float:
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "cosine":
            progress = (step - opt.warmup_steps) / max(1, total_steps - opt.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


class LazyAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay) whose update of a parameter with a sparse gradient
    touches only the rows the gradient holds.

    - dense gradient: ``torch.optim.AdamW``'s update (its single-tensor form, the one it uses
      on the CPU), operation for operation, so the results are the same bit for bit;
    - sparse COO gradient of a [N, D] table: the gradient is coalesced (repeated rows summed)
      and that same update is applied to its rows only. The other rows keep their value and
      both moments: no weight decay and no momentum step while a row is absent ("lazy Adam").
      Bias correction uses the optimizer's step count, as AdamW's does, so a row present at
      every step follows AdamW's trajectory exactly.

    The state of each parameter is AdamW's (``step``, ``exp_avg``, ``exp_avg_sq``)."""

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: Tensor, group: dict) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        if not p.grad.is_sparse:
            _adamw(p, p.grad, state["exp_avg"], state["exp_avg_sq"], step, group)
            return
        grad = p.grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        if rows.numel() == 0:
            return
        param, exp_avg, exp_avg_sq = (t.index_select(0, rows)
                                      for t in (p, state["exp_avg"], state["exp_avg_sq"]))
        _adamw(param, values, exp_avg, exp_avg_sq, step, group)
        p.index_copy_(0, rows, param)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)


def _adamw(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: float,
           group: dict) -> None:
    """One AdamW update in place, written as ``torch.optim.adam._single_tensor_adam`` writes
    it (decoupled weight decay, no amsgrad), so that its float operations are the same."""
    lr, (beta1, beta2), eps, weight_decay = (group["lr"], group["betas"], group["eps"],
                                             group["weight_decay"])
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


@torch.no_grad()
def clip_gradients(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm) that also takes sparse gradients: these are
    coalesced first (in place of the gradient), so that a row's pieces are summed before the
    norm is taken. With dense gradients only it is ``clip_grad_norm_``, bit for bit (same norm
    of the same tensors in the same order, same coefficient). Returns the total norm."""
    tensors = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            tensors.append(p.grad.values())  # the coalesced tensor's own values: scaled in place
        else:
            tensors.append(p.grad)
    total = nn.utils.get_total_norm(tensors, 2.0)
    if tensors:
        coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for t in tensors:
            t.mul_(coefficient.to(t.device))
    return total
