"""Plain-PyTorch implementation of the fused loss: the executable specification.

It materialises the [N, K] logits and lets autograd do the rest, so it is slow and memory
hungry by design; the native op must agree with it (tests), and it serves when negrec was
installed without its compiled extension.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = ["check_argument_types", "fused_loss_reference", "validate_fused_loss_inputs"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_LABEL_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)
_OP = "negrec.fused_loss"
# The tensor arguments: name, expected shape, whether None is allowed.
_TENSOR_ARGS = (("query", "[N, D]", False), ("target_emb", "[N, D]", False),
                ("neg_emb", "[K, D]", False), ("target_ids", "[N]", False),
                ("neg_ids", "[K]", False), ("label", "[N]", False), ("weight", "[N]", True),
                ("target_logq", "[N]", True), ("neg_logq", "[K]", True))


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _describe(value: object) -> str:
    """A short description of a received value, as negrec._C's messages give it."""
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        return f"a tensor of shape {_shape(value)} and dtype {value.dtype}"
    name = type(value).__name__
    if isinstance(value, str) or (isinstance(value, numbers.Number) and not hasattr(value, "__len__")):
        text = repr(value)
        return f"{name} {text if len(text) <= 60 else text[:57] + '...'}"
    if hasattr(value, "__len__"):
        return f"{name} of length {len(value)}"
    return f"an object of type {name}"


def _non_dense_kind(t: Tensor) -> str:
    """'' for a dense (strided, not quantized, not nested) tensor, else what it is (the native
    checks use the same words, csrc/tensor_kind.h)."""
    if t.is_quantized:
        return f"a quantized tensor (dtype {t.dtype})"
    if t.is_nested:
        return "a nested tensor"
    if t.layout == torch.strided:
        return ""
    if t.layout == torch._mkldnn:
        return "an MKL-DNN tensor (layout torch._mkldnn)"
    return f"a sparse tensor (layout {t.layout})"


def _acc_name(dtype: torch.dtype) -> str:
    return "float64" if dtype == torch.float64 else "float32"


def check_argument_types(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                         target_logq, neg_logq, temperature, reduction) -> None:
    """The Python types of fused_loss's arguments (tensors where tensors belong, dense ones,
    a real temperature, a str reduction), with one-line errors naming the argument.

    Cheap (no tensor data is read): :func:`negrec.ops.fused_loss` runs it before the native op,
    whose own checks cover shapes, dtypes, devices and values.
    """
    values = (query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq,
              neg_logq)
    for (name, shape, optional), t in zip(_TENSOR_ARGS, values):
        if t is None and optional:
            continue
        if not isinstance(t, Tensor):
            expected = f"a tensor of shape {shape}" + (" or None" if optional else "")
            raise TypeError(f"{_OP}: {name} must be {expected}; got {_describe(t)}")
        kind = _non_dense_kind(t)
        if kind:
            raise TypeError(f"{_OP}: {name} must be a dense (strided) tensor; got {kind}")
    if isinstance(temperature, bool) or not isinstance(
            temperature, (numbers.Real, torch.SymFloat, torch.SymInt)):
        raise TypeError(f"{_OP}: temperature must be a finite number > 0; got "
                        f"{_describe(temperature)}")
    if not isinstance(reduction, str):
        raise TypeError(f"{_OP}: reduction must be 'none', 'sum' or 'mean'; got "
                        f"{_describe(reduction)}")


def validate_fused_loss_inputs(
    query: Tensor,
    target_emb: Tensor,
    neg_emb: Tensor,
    target_ids: Tensor,
    neg_ids: Tensor,
    label: Tensor,
    weight: Tensor | None,
    target_logq: Tensor | None,
    neg_logq: Tensor | None,
    temperature: float,
    reduction: str,
    check_values: bool = True,
) -> None:
    """The checks of the native op (csrc/fused_loss_checks.cpp), with the same messages.

    ``check_values=False`` skips the data-dependent checks (label values, finite and
    non-negative weights, finite logq), e.g. while tracing with fake tensors. Values are checked
    as the native kernels use them: logq (and 1/temperature) in the accumulation dtype, where a
    float64 logq of 1e39 is not finite in float32; weights in float64.
    """
    check_argument_types(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                         target_logq, neg_logq, temperature, reduction)
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{_OP}: reduction must be 'none', 'sum' or 'mean'; got '{reduction}'")
    for name, t, layout in (("query", query, "[N, D]"), ("target_emb", target_emb, "[N, D]"),
                            ("neg_emb", neg_emb, "[K, D]")):
        if t.dim() != 2:
            raise ValueError(f"{_OP}: {name} must be a 2-D tensor {layout}; got a {t.dim()}-D "
                             f"tensor of shape {_shape(t)}")
    n, d = query.shape
    k = neg_emb.shape[0]
    if tuple(target_emb.shape) != (n, d):
        raise ValueError(f"{_OP}: target_emb must have the shape of query [{n}, {d}]; got shape "
                         f"{_shape(target_emb)}")
    if neg_emb.shape[1] != d:
        raise ValueError(f"{_OP}: neg_emb must have shape [K, {d}] (D = query.size(1)); got shape "
                         f"{_shape(neg_emb)}")
    if query.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{_OP}: query must be float32, float64, bfloat16 or float16; got dtype "
                        f"{query.dtype}")
    for name, t in (("target_emb", target_emb), ("neg_emb", neg_emb)):
        if t.dtype != query.dtype:
            raise TypeError(f"{_OP}: {name} must have query's dtype {query.dtype}; got {t.dtype}")
    for name, t, size, what in (("target_ids", target_ids, n, "N = query.size(0)"),
                                ("neg_ids", neg_ids, k, "K = neg_emb.size(0)")):
        if t.dtype != torch.int64:
            raise TypeError(f"{_OP}: {name} must be int64 (torch.long); got dtype {t.dtype}")
        if t.dim() != 1 or t.shape[0] != size:
            raise ValueError(f"{_OP}: {name} must have shape [{size}] ({what}); got shape {_shape(t)}")
    if label.dtype not in _LABEL_DTYPES:
        raise TypeError(f"{_OP}: label must be a signed integer tensor (int8/16/32/64) holding "
                        f"-1, 0 or +1; got dtype {label.dtype}")
    if label.dim() != 1 or label.shape[0] != n:
        raise ValueError(f"{_OP}: label must have shape [{n}] (N = query.size(0)); got shape "
                         f"{_shape(label)}")
    for name, t, size, what in (("weight", weight, n, "N = query.size(0)"),
                                ("target_logq", target_logq, n, "N = query.size(0)"),
                                ("neg_logq", neg_logq, k, "K = neg_emb.size(0)")):
        if t is None:
            continue
        if not t.is_floating_point():
            raise TypeError(f"{_OP}: {name} must be a floating-point tensor; got dtype {t.dtype}")
        if t.dim() != 1 or t.shape[0] != size:
            raise ValueError(f"{_OP}: {name} must have shape [{size}] ({what}); got shape {_shape(t)}")
    for name, t in (("target_emb", target_emb), ("neg_emb", neg_emb), ("target_ids", target_ids),
                    ("neg_ids", neg_ids), ("label", label), ("weight", weight),
                    ("target_logq", target_logq), ("neg_logq", neg_logq)):
        if t is not None and t.device != query.device:
            raise RuntimeError(f"{_OP}: all tensors must be on query's device {query.device}; "
                               f"{name} is on {t.device}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{_OP}: temperature must be a finite number > 0; got {temperature}")
    acc = torch.float64 if query.dtype == torch.float64 else torch.float32
    # 1/T is used in the accumulation dtype: it must not overflow there (T < ~2.9e-39 in
    # float32); a 1/T that underflows to 0 (huge T) is fine, every logit is then -logq.
    smallest = 1.0 / torch.finfo(acc).max
    if temperature < smallest:
        raise ValueError(f"{_OP}: temperature must be >= {smallest:.6g} (1/temperature must be "
                         f"finite in {_acc_name(acc)}, the accumulation dtype); got {temperature}")
    if not check_values:
        return
    bad = (label < -1) | (label > 1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{_OP}: label must hold only -1 (negative feedback), 0 (ignore) or +1 "
                         f"(positive); got {int(label[i])} at index {i}")
    for name, t in (("weight", weight), ("target_logq", target_logq), ("neg_logq", neg_logq)):
        if t is not None and not bool(torch.isfinite(t).all()):
            i = int((~torch.isfinite(t)).nonzero()[0, 0])
            raise ValueError(f"{_OP}: {name} must be finite; got {float(t[i])} at index {i}")
    for name, t in (("target_logq", target_logq), ("neg_logq", neg_logq)):
        if t is not None and not bool(torch.isfinite(t.to(acc)).all()):
            i = int((~torch.isfinite(t.to(acc))).nonzero()[0, 0])
            raise ValueError(f"{_OP}: {name} must be finite in {_acc_name(acc)} (the "
                             f"accumulation dtype); got {float(t[i])} at index {i}, which "
                             "overflows it")
    if weight is not None and bool((weight < 0).any()):
        i = int((weight < 0).nonzero()[0, 0])
        raise ValueError(f"{_OP}: weight must be >= 0; got {float(weight[i])} at index {i}")


def _mean_shares(w: Tensor) -> Tensor:
    """w_i / sum(w) (0 where the sum is 0), formed as the native op does: normalised by the
    largest weight first, so neither the sum (weights near the float64 maximum) nor 1 / sum
    (denormal weights) overflows."""
    zero = torch.zeros((), dtype=w.dtype, device=w.device)
    scale = w.amax() if w.numel() else zero
    normalised = torch.where(scale > 0, w / torch.where(scale > 0, scale, 1.0), zero)
    denom = normalised.sum()
    return torch.where(denom > 0, normalised / torch.where(denom > 0, denom, 1.0), zero)


def fused_loss_reference(
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
    upcast: bool = True,
    return_lse: bool = False,
    check_values: bool = True,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Same arguments and result as :func:`negrec.ops.fused_loss`, in plain PyTorch.

    Materialises the [N, K] logits. ``upcast=True`` computes in the accumulation dtype of the
    native op (float64 for float64 inputs, float32 otherwise), with the weights, the weighted
    per-row losses and their reductions in float64 as the native op keeps them (a float32 cast
    would turn a weight of 1e39 into inf and one of 1e-50 into 0); ``upcast=False`` computes
    everything in the input dtype (the "naive same-dtype" baseline for low-precision error
    bounds).
    ``return_lse=True`` also returns the per-row log-sum-exps (lse_all, lse_neg) of the op.
    ``check_values=False`` skips the data-dependent input checks (they break torch.compile
    graphs); shapes, dtypes and devices are always checked.
    """
    validate_fused_loss_inputs(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                               target_logq, neg_logq, temperature, reduction,
                               check_values=check_values)
    acc = query.dtype
    if upcast:
        acc = torch.float64 if query.dtype == torch.float64 else torch.float32
    q, t, n = query.to(acc), target_emb.to(acc), neg_emb.to(acc)
    inv_t = 1.0 / temperature

    z0 = (q * t).sum(-1) * inv_t
    if target_logq is not None:
        z0 = z0 - target_logq.to(acc)
    zn = (q @ n.T) * inv_t
    if neg_logq is not None:
        zn = zn - neg_logq.to(acc)[None, :]
    hit = target_ids[:, None] == neg_ids[None, :]  # accidental hits
    zn = zn.masked_fill(hit, float("-inf"))
    has_neg = (~hit).any(dim=1)
    # Rows without any negative get lse_neg = -inf; logsumexp over them would give NaN
    # gradients, so it is taken over a harmless stand-in and replaced afterwards.
    safe = torch.where(has_neg[:, None], zn, torch.zeros((), dtype=acc, device=zn.device))
    lse_neg = torch.where(has_neg, torch.logsumexp(safe, dim=1),
                          torch.full((), float("-inf"), dtype=acc, device=zn.device))
    lse_neg_safe = torch.where(has_neg, lse_neg, torch.zeros((), dtype=acc, device=zn.device))

    pos = label == 1
    neg = (label == -1) & has_neg  # a negative row with no negative left has 1 - p = 0: skipped
    # -log p = LSE(z) - z0 = softplus(B - z0);  -log(1 - p) = LSE(z) - B = softplus(z0 - B)
    # softplus(x) = logaddexp(x, 0): exact, unlike F.softplus, which returns x above its
    # threshold (an error of e^-20 relative at x = 20).
    zero = torch.zeros((), dtype=acc, device=z0.device)
    loss_pos = torch.logaddexp(lse_neg - z0, zero)
    loss_neg = torch.logaddexp(z0 - lse_neg_safe, zero)

    wdt = torch.float64 if upcast else acc  # dtype of the weights and the weighted losses
    w = torch.ones_like(z0, dtype=wdt) if weight is None else weight.to(wdt)
    wzero = torch.zeros((), dtype=wdt, device=z0.device)
    nll = torch.where(pos, loss_pos.to(wdt), torch.where(neg, loss_neg.to(wdt), wzero))
    if reduction == "mean":
        loss = (_mean_shares(torch.where(pos | neg, w, wzero)) * nll).sum()
    else:
        row = torch.where(pos | neg, w * nll, wzero)
        loss = row if reduction == "none" else row.sum()
    loss = loss.to(acc)
    if not return_lse:
        return loss
    lse_all = torch.logaddexp(z0, lse_neg)
    active = label != 0
    return (loss, torch.where(active, lse_all, zero).detach(),
            torch.where(active, lse_neg, zero).detach())
