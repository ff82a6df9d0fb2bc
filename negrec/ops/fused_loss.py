"""``negrec.ops.fused_loss``: sampled (or full) softmax + not-to-recommend loss, fused.

The Python side of ``torch.ops.negrec.fused_loss``: the functional users call, the autograd
formula (``torch.library.register_autograd``, backward = ``torch.ops.negrec.fused_loss_backward``)
and the fake kernels that let ``torch.compile`` trace the op.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from negrec._extension import MISSING_REASON, build_info, cuda_kernels_available, extension_available
from negrec.ops.reference import (check_argument_types, fused_loss_reference,
                                  validate_fused_loss_inputs)

__all__ = ["fused_loss"]

_warned_fallback = False
# Fixed at build time; a constant keeps the device check below free under torch.compile.
_CUDA_KERNELS = cuda_kernels_available()


def fused_loss(
    query: Tensor,
    target_emb: Tensor,
    neg_emb: Tensor,
    *,
    target_ids: Tensor,
    neg_ids: Tensor,
    label: Tensor,
    weight: Tensor | None = None,
    target_logq: Tensor | None = None,
    neg_logq: Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Sampled-softmax loss for positives plus the not-to-recommend (NTR) loss for negatives.

    For N supervised positions, each row scores its target item against K candidate
    negatives shared by all rows; nothing of size [N, K] is ever stored (the kernels work tile
    by tile and the backward recomputes the logits).

    Args:
        query: ``[N, D]`` user states (float32, float64, bfloat16 or float16).
        target_emb: ``[N, D]`` embedding of each row's target item, dtype of ``query``.
        neg_emb: ``[K, D]`` embeddings of the shared candidate negatives, dtype of ``query``.
            For a full softmax pass the whole item table with ``neg_ids = arange(V)``: each
            row's own target is then masked out as an accidental hit.
        target_ids: ``[N]`` int64 item id of each row's target.
        neg_ids: ``[K]`` int64 item id of each candidate; a candidate whose id equals a row's
            target id (an accidental hit) is masked out of that row. Duplicates are allowed
            and count as separate candidates.
        label: ``[N]`` int8/16/32/64: ``+1`` positive, ``-1`` negative feedback (dislike,
            skip), ``0`` ignored (padding).
        weight: ``[N]`` non-negative, finite per-row weights (the ``r`` and ``w`` of the
            paper); default 1. Receives no gradient. Any floating dtype; the weights, the
            weighted per-row losses and the reductions are computed in float64 whatever the
            inputs' dtype, so float64 weights far outside the float32 range (1e39, 1e-50)
            still give the exact mean; the per-row and summed losses are then rounded to the
            loss dtype (they may overflow it).
        target_logq: ``[N]`` log sampling probability of each target (logQ correction);
            default 0 (full softmax or uniform sampling). Receives no gradient. Must be finite
            after conversion to the accumulation dtype (float64 for float64 inputs, float32
            otherwise), where the kernels use it: a float64 logQ of -1e39 is rejected for
            float32 inputs.
        neg_logq: ``[K]`` log sampling probability of each candidate; default 0. Checked like
            ``target_logq``.
        temperature: ``T > 0``; logits are divided by it (multiplied by ``1/T`` rounded to the
            accumulation dtype). ``1/T`` must be finite there: ``T >= 1/float32 max``
            (~2.9e-39) for float32 inputs. A huge ``T`` whose ``1/T`` rounds to 0 is valid:
            every logit is then ``-logq``, and accidental hits stay masked.
        reduction: ``"mean"`` (sum / sum of the weights of the contributing rows; 0 when no
            row contributes), ``"sum"`` or ``"none"`` (``[N]`` per-row losses).

    Returns:
        The loss: a scalar, or ``[N]`` for ``reduction="none"``, in the accumulation dtype
        (float64 for float64 inputs, float32 otherwise). Gradients flow to ``query``,
        ``target_emb`` and ``neg_emb``; ``||dloss_i / dz_i||_1 <= 2 * weight_i`` per row.

    A row with label -1 whose every candidate is masked has ``1 - p = 0`` (an infinite loss):
    it contributes 0 and is left out of the mean's denominator, like an ignored row.
    NaN/Inf embeddings propagate to the loss; non-finite ``*_logq``, ``weight`` or
    ``temperature`` are rejected, and so are arguments of the wrong type (``None`` or a list
    for a tensor, a sparse, quantized or nested tensor), each with a one-line error naming it.

    First-order gradients only: differentiating the gradients again (``create_graph=True``
    and a second ``backward``/``grad`` through them, e.g. a gradient penalty or a Hessian)
    raises a RuntimeError; use :func:`negrec.ops.fused_loss_reference` for that.

    Exact PyTorch equivalent (what :mod:`negrec.ops.reference` computes, materialising
    [N, K]; ``w``, ``target_logq`` and ``neg_logq`` default to ones and zeros)::

        z0 = (query * target_emb).sum(-1) / T - target_logq                       # [N]
        zn = query @ neg_emb.T / T - neg_logq[None, :]                            # [N, K]
        zn = zn.masked_fill(neg_ids[None, :] == target_ids[:, None], -inf)
        B = zn.logsumexp(-1)                      # over the negatives (-inf: none left)
        nll_pos = softplus(B - z0)                # = logsumexp([z0, zn]) - z0 = -log p
        nll_neg = softplus(z0 - B)                # = logsumexp([z0, zn]) - B  = -log(1 - p)
        contributes = (label == 1) | ((label == -1) & (B > -inf))
        row = torch.where(label == 1, w * nll_pos, torch.where(contributes, w * nll_neg, 0))
        loss = row.sum() / w[contributes].sum()   # "mean" (0 if nothing contributes)

    Example::

        loss = fused_loss(h, item_emb[y], item_emb[negs], target_ids=y, neg_ids=negs,
                          label=lab, neg_logq=logq[negs], target_logq=logq[y])
        loss.backward()
    """
    check_argument_types(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                         target_logq, neg_logq, temperature, reduction)
    for name, t in (("weight", weight), ("target_logq", target_logq), ("neg_logq", neg_logq)):
        if t is not None and t.requires_grad:
            raise ValueError(
                f"negrec.fused_loss: {name} receives no gradient but requires_grad=True; "
                f"pass {name}.detach() (the loss is differentiated w.r.t. query, target_emb "
                "and neg_emb only)"
            )
    if not extension_available():
        _warn_fallback()
        return fused_loss_reference(
            query, target_emb, neg_emb, target_ids=target_ids, neg_ids=neg_ids, label=label,
            weight=weight, target_logq=target_logq, neg_logq=neg_logq, temperature=temperature,
            reduction=reduction,
        )
    require_kernels_for(query.device)
    loss, _, _ = torch.ops.negrec.fused_loss(
        query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq, neg_logq,
        float(temperature), reduction,
    )
    return loss


def require_kernels_for(device: torch.device) -> None:
    """Raise a clear error when ``negrec._C`` has no kernels for ``device``'s type.

    Without it, a CUDA tensor reaching an extension built without its CUDA kernels fails in
    the dispatcher with a generic ``NotImplementedError``.
    """
    if device.type == "cuda" and not _CUDA_KERNELS:
        info = build_info()
        why = info.get("CUDA_REASON") or info.get("reason") or "unknown"
        raise RuntimeError(
            "negrec.fused_loss: got CUDA tensors, but negrec._C was built without its CUDA "
            f"kernels (NEGREC_CUDA={info.get('CUDA_OPTION', '?')}: {why}). Rebuild on a "
            "machine with nvcc and a CUDA-enabled torch: `NEGREC_CUDA=ON pip install "
            "--no-build-isolation --force-reinstall --no-deps <path to negrec source>` (see "
            "README, CUDA), or move the tensors to the CPU."
        )


def _warn_fallback() -> None:
    global _warned_fallback
    if not _warned_fallback:
        warnings.warn(
            f"negrec.ops.fused_loss: {MISSING_REASON}; using the pure-PyTorch reference, which "
            "materialises the [N, K] logits (slow, memory hungry). Install negrec with "
            "`pip install .` to build the native kernels.",
            RuntimeWarning,
            stacklevel=3,
        )
        _warned_fallback = True


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


if extension_available():

    @torch.library.register_fake("negrec::fused_loss")
    def _fused_loss_fake(query, target_emb, neg_emb, target_ids, neg_ids, label, weight=None,
                         target_logq=None, neg_logq=None, temperature=1.0, reduction="mean"):
        validate_fused_loss_inputs(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                                   target_logq, neg_logq, temperature, reduction,
                                   check_values=False)
        n = query.shape[0]
        acc = _acc_dtype(query.dtype)
        loss_shape = (n,) if reduction == "none" else ()
        return (query.new_empty(loss_shape, dtype=acc), query.new_empty((n,), dtype=acc),
                query.new_empty((n,), dtype=acc))

    @torch.library.register_fake("negrec::fused_loss_backward")
    def _fused_loss_backward_fake(grad_loss, query, target_emb, neg_emb, target_ids, neg_ids,
                                  label, weight, target_logq, neg_logq, temperature, reduction,
                                  lse_all, lse_neg):
        return (torch.empty_like(query, memory_format=torch.contiguous_format),
                torch.empty_like(target_emb, memory_format=torch.contiguous_format),
                torch.empty_like(neg_emb, memory_format=torch.contiguous_format))

    _DEFAULTS = (None, None, None, 1.0, "mean")  # weight, target_logq, neg_logq, temperature, reduction

    def _setup_context(ctx, inputs, output):
        inputs = tuple(inputs) + _DEFAULTS[len(inputs) - 6:]
        (query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq, neg_logq,
         temperature, reduction) = inputs
        _, lse_all, lse_neg = output
        ctx.save_for_backward(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                              target_logq, neg_logq, lse_all, lse_neg)
        ctx.temperature = temperature
        ctx.reduction = reduction
        ctx.mark_non_differentiable(lse_all, lse_neg)

    def _backward(ctx, grad_loss, _grad_lse_all, _grad_lse_neg):
        (query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq, neg_logq,
         lse_all, lse_neg) = ctx.saved_tensors
        grad_q, grad_t, grad_n = torch.ops.negrec.fused_loss_backward(
            grad_loss, query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
            target_logq, neg_logq, ctx.temperature, ctx.reduction, lse_all, lse_neg,
        )
        needs = ctx.needs_input_grad
        return (grad_q if needs[0] else None, grad_t if needs[1] else None,
                grad_n if needs[2] else None, None, None, None, None, None, None, None, None)

    torch.library.register_autograd("negrec::fused_loss", _backward, setup_context=_setup_context)

    # The backward op has no derivative. Without an autograd formula of its own, a backward
    # with create_graph=True would record nothing for it: its gradients would look constant and
    # a second differentiation would silently return no (or a wrong) gradient. This formula
    # makes that second differentiation -- and only it -- raise.
    def _setup_backward_context(ctx, inputs, output):
        pass

    def _backward_of_backward(ctx, *grads):
        raise RuntimeError(
            "negrec.fused_loss: higher-order gradients are not supported (the backward op "
            "negrec::fused_loss_backward has no derivative); differentiate "
            "negrec.ops.fused_loss_reference instead, or do not differentiate the gradients"
        )

    torch.library.register_autograd("negrec::fused_loss_backward", _backward_of_backward,
                                    setup_context=_setup_backward_context)
