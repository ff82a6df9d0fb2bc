"""Fuzzing of the native entry points with adversarial inputs (hypothesis).

Targets: ``negrec.ops.fused_loss`` / ``torch.ops.negrec.fused_loss`` (+ its backward op), the
collator (``negrec._C.collate`` and :class:`negrec.data.Collator`) and the samplers
(``negrec._C.AliasTable``, :class:`PopularitySampler`, ...). Every example must end in a
correct result -- checked against the plain-PyTorch / plain-Python references, not merely
"no crash" -- or in a clean Python exception (ValueError / TypeError / RuntimeError naming the
problem), never a crash or an out-of-bounds access (tools/sanitize.sh runs this file under
ASan + UBSan).

Profiles (registered here as ``fuzz-ci`` and ``fuzz-long``, chosen by NEGREC_FUZZ_PROFILE):

- ``ci`` (default): a few dozen examples per target, the whole file well under a minute;
- ``long``: at least 10,000 examples per target::

      NEGREC_FUZZ_PROFILE=long pytest tests/test_fuzz_native.py -p no:randomly -q

Run counts: every target counts the examples it executed; at the end of the module the counts
are printed (terminal summary line ``fuzz examples per target``) and written as JSON to
``$NEGREC_FUZZ_COUNTS`` (default: ``fuzz_counts.json`` in pytest's base temporary folder).
"""

from __future__ import annotations

import collections
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from negrec.data import (CollateConfig, Collator, EventLog, Feedback, InBatchSampler,
                         PopularitySampler, TargetRule, UniformSampler)
from negrec.data.collate_reference import collate_python, window
from negrec.data.log import ItemMeta
from negrec.ops import fused_loss, fused_loss_reference

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("fuzz-ci", max_examples=int(os.environ.get("NEGREC_FUZZ_EXAMPLES", 25)),
                          **_COMMON)
settings.register_profile("fuzz-long", max_examples=int(os.environ.get("NEGREC_FUZZ_EXAMPLES", 10_000)),
                          **_COMMON)
PROFILE = os.environ.get("NEGREC_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"NEGREC_FUZZ_PROFILE must be 'ci' or 'long'; got {PROFILE!r}")
FUZZ = settings(settings.get_profile(f"fuzz-{PROFILE}"))

COUNTS: collections.Counter = collections.Counter()
CLEAN = (ValueError, TypeError, RuntimeError, IndexError)


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request, tmp_path_factory, native):
    yield
    path = os.environ.get("NEGREC_FUZZ_COUNTS") or str(tmp_path_factory.getbasetemp() / "fuzz_counts.json")
    data = {"profile": PROFILE, "max_examples": FUZZ.max_examples, "examples": dict(COUNTS)}
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    lines = [f"fuzz examples per target (profile {PROFILE}, max_examples {FUZZ.max_examples}; "
             f"written to {path}):"] + [f"  {name:40s} {n}" for name, n in sorted(COUNTS.items())]
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if capman is not None and tr is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line("")
            for line in lines:
                tr.write_line(line)


def clean_error(exc: BaseException, one_line: bool = True) -> None:
    """A clean failure: a Python exception of the expected kinds, with a one-line message (no
    C++ trace, no dispatcher or pybind11 listing of backends / overloads)."""
    assert isinstance(exc, CLEAN), f"unexpected exception type {type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg, "an exception without a message"
    assert "Exception raised from" not in msg, f"C++ backtrace in the message: {msg[:300]}"
    if one_line:
        assert "\n" not in msg, f"a message of several lines: {msg[:600]}"


# ============================================================================================
# fused loss
# ============================================================================================

ID_MODES = {
    "small": lambda g, n: torch.randint(0, 4, (n,), generator=g),
    "negative": lambda g, n: -torch.randint(1, 5, (n,), generator=g),
    "huge": lambda g, n: torch.randint(0, 3, (n,), generator=g) + (2**63 - 4),
    "mixed": lambda g, n: torch.tensor([(-2**63, -1, 0, 1, 2**62, 2**63 - 1)[i]
                                        for i in torch.randint(0, 6, (n,), generator=g).tolist()],
                                       dtype=torch.int64),
}


def _layout(base: torch.Tensor, rows: int, cols: int, kind: str) -> torch.Tensor:
    """A [rows, cols] view of a leaf parameter ``base``, with the memory layout ``kind``."""
    if kind == "contiguous":
        return base
    if kind == "transposed":   # base is [cols, rows]
        return base.t()
    if kind == "strided":      # base is [2 * rows, cols + 3]: every other row, a column window
        return base[::2, 1:cols + 1]
    if kind == "expanded":     # base is [1, cols]: all rows alias the same memory (stride 0)
        return base.expand(rows, cols)
    raise AssertionError(kind)


def _base_shape(rows: int, cols: int, kind: str) -> tuple[int, int]:
    return {"contiguous": (rows, cols), "transposed": (cols, rows), "strided": (2 * rows, cols + 3),
            "expanded": (1, cols)}[kind]


LAYOUTS = ["contiguous", "transposed", "strided", "expanded"]
TILES = [None, (1, 1), (3, 5), (7, 64), (64, 2)]


@st.composite
def fused_inputs(draw, nonfinite: bool = False):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n, k, d = draw(st.integers(0, 20)), draw(st.integers(0, 40)), draw(st.integers(0, 12))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.05, 0.5, 2.0] if dtype == torch.float64 else [0.05, 0.5]))
    bases, views = [], []
    for rows in (n, n, k):
        kind = draw(st.sampled_from(LAYOUTS))
        base = (torch.randn(_base_shape(rows, d, kind), generator=g, dtype=torch.float64) * scale).to(dtype)
        if nonfinite and base.numel():
            for _ in range(draw(st.integers(0, 3))):
                i = draw(st.integers(0, base.numel() - 1))
                base.view(-1)[i] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30]))
        base.requires_grad_(True)
        bases.append(base)
        views.append(_layout(base, rows, d, kind))
    ids = draw(st.sampled_from(sorted(ID_MODES)))
    tid, nid = ID_MODES[ids](g, n), ID_MODES[ids](g, k)
    if draw(st.booleans()) and n:   # force accidental hits: every negative is some row's target
        nid = tid[torch.randint(0, n, (k,), generator=g)]
    if draw(st.booleans()):         # ids as non-contiguous / overlapping views
        tid = torch.stack([tid, tid], 1)[:, 0]
        nid = nid[:1].expand(k) if k else nid
    label = torch.randint(-1, 2, (n,), generator=g).to(
        draw(st.sampled_from([torch.int8, torch.int16, torch.int32, torch.int64])))
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    kw = dict(target_ids=tid, neg_ids=nid, label=label)
    if draw(st.booleans()):
        w = torch.rand(n, generator=g, dtype=torch.float64) * 3
        w[torch.rand(n, generator=g) < 0.2] = 0.0
        kw["weight"] = w.to(draw(st.sampled_from([acc, torch.float64, torch.float16])))
    if draw(st.booleans()):
        kw["target_logq"] = (-torch.rand(n, generator=g, dtype=torch.float64) * 8).to(acc)
    if draw(st.booleans()):
        kw["neg_logq"] = (-torch.rand(k, generator=g, dtype=torch.float64) * 8).to(acc)
    kw["temperature"] = draw(st.sampled_from([0.05, 0.3, 1.0, 7.0]))
    kw["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    tiles = draw(st.sampled_from(TILES))
    return dtype, bases, views, kw, tiles


def _run_both(native, bases, views, kw, tiles, upstream_seed=0):
    old = native._get_cpu_tile_config()
    if tiles is not None:
        native._set_cpu_tile_config(*tiles)
    try:
        out = []
        for fn in (fused_loss, fused_loss_reference):
            loss = fn(*views, **kw)
            up = torch.randn(loss.shape, generator=torch.Generator().manual_seed(upstream_seed),
                             dtype=torch.float64).to(loss.dtype)
            grads = torch.autograd.grad((loss * up).sum(), bases, allow_unused=True)
            out.append((loss.detach(), [torch.zeros_like(b) if gr is None else gr
                                        for b, gr in zip(bases, grads)]))
        return out
    finally:
        native._set_cpu_tile_config(*old)


@FUZZ
@given(fused_inputs())
def test_fuzz_fused_loss_matches_reference(native, case):
    """Valid inputs of every layout, id range, dtype and option: loss and gradients equal the
    reference's (float64 to round-off, float32 to float32 round-off)."""
    COUNTS["fused_loss.valid"] += 1
    dtype, bases, views, kw, tiles = case
    (got, got_g), (want, want_g) = _run_both(native, bases, views, kw, tiles)
    if dtype == torch.float64:
        tol = dict(rtol=1e-9, atol=1e-10)
    else:
        tol = dict(rtol=1e-4, atol=1e-5 * (1 + views[0].shape[0]))
    torch.testing.assert_close(got, want, **tol)
    for name, a, b in zip(("query", "target_emb", "neg_emb"), got_g, want_g):
        gtol = dict(tol)
        if dtype == torch.float32:
            # A gradient entry is a float32 sum of terms as large as the largest gradient (an
            # expanded, stride-0 base sums over all rows): its rounding error scales with that
            # size, e.g. 4e-5 in the reference itself at a largest gradient of 30 (T = 0.05).
            gtol["atol"] = tol["atol"] * max(1.0, float(b.abs().max()) if b.numel() else 1.0)
        torch.testing.assert_close(a, b, **gtol, msg=lambda m: f"grad {name}: {m}")


def _row_logit_bounds(views, kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: whether the target logit and all unmasked candidate logits are finite (in the
    kernel's dtype), and the largest of their magnitudes (float64, from the inputs)."""
    q, t, n = (v.detach().double() for v in views)
    T = kw["temperature"]
    z0 = (q * t).sum(-1) / T
    zn = q @ n.T / T
    hit = kw["target_ids"][:, None] == kw["neg_ids"][None, :]
    limit = math.inf if views[0].dtype == torch.float64 else 3e38  # float32 overflow
    fin = lambda z: torch.isfinite(z) & (z.abs() < limit)  # noqa: E731
    ok = fin(z0) & torch.where(hit, True, fin(zn)).all(1)
    mag = torch.maximum(z0.abs(), torch.where(hit, 0.0, zn.abs()).amax(1) if zn.numel()
                        else torch.zeros_like(z0))
    return ok, torch.where(ok, mag, 0.0)


@FUZZ
@given(fused_inputs(nonfinite=True))
def test_fuzz_fused_loss_nonfinite_embeddings(native, case):
    """NaN / +-Inf / 1e30 entries in the embeddings: never a crash; rows whose logits are all
    finite still equal the reference to the precision of their logits (a float32 logit of 1e30
    is only known to ~1e23), the rest may be non-finite (NaN/Inf propagate)."""
    COUNTS["fused_loss.nonfinite_embeddings"] += 1
    dtype, bases, views, kw, tiles = case
    kw = dict(kw, reduction="none")
    (got, got_g), (want, _) = _run_both(native, bases, views, kw, tiles)
    assert got.shape == want.shape == (views[0].shape[0],)
    ok, mag = _row_logit_bounds(views, kw)
    note(f"rows with finite logits: {ok.tolist()}, logit magnitudes {mag.tolist()}")
    eps = torch.finfo(dtype).eps
    rtol, atol = (1e-9, 1e-10) if dtype == torch.float64 else (1e-4, 1e-5)
    err = (got[ok].double() - want[ok].double()).abs()
    bound = atol + rtol * want[ok].double().abs() + 16 * eps * mag[ok]
    assert bool((err <= bound).all()), (got[ok], want[ok], bound)
    for gr, b in zip(got_g, bases):
        assert gr.shape == b.shape and gr.dtype == b.dtype


# ---- invalid inputs: the native op and the reference raise the same clean error ------------

def _valid_args(g: torch.Generator, n: int, k: int, d: int):
    return dict(query=torch.randn(n, d, generator=g), target_emb=torch.randn(n, d, generator=g),
                neg_emb=torch.randn(k, d, generator=g),
                target_ids=torch.randint(0, 5, (n,), generator=g),
                neg_ids=torch.randint(0, 5, (k,), generator=g),
                label=torch.randint(-1, 2, (n,), generator=g),
                weight=torch.rand(n, generator=g), target_logq=-torch.rand(n, generator=g),
                neg_logq=-torch.rand(k, generator=g), temperature=1.0, reduction="mean")


def _mutations(a: dict, draw) -> None:
    """Applies one adversarial change that makes the call invalid."""
    n, d = a["query"].shape
    k = a["neg_emb"].shape[0]
    kind = draw(st.sampled_from([
        "dtype_query", "dtype_target", "dtype_neg", "ids_dtype", "label_dtype", "weight_dtype",
        "rank_query", "rank_neg", "rank_ids", "shape_target", "shape_neg_d", "shape_tids",
        "shape_nids", "shape_label", "shape_weight", "shape_tlogq", "shape_nlogq",
        "label_value", "weight_negative", "weight_nonfinite", "tlogq_nonfinite",
        "nlogq_nonfinite", "temperature", "reduction", "device", "not_a_tensor",
        "none_tensor", "sparse", "temperature_reciprocal_overflow", "logq_overflows_float32",
    ]))
    note(f"mutation {kind}")

    def ensure(key):  # the optional tensor a mutation changes must be present
        if a[key] is None:
            a[key] = torch.zeros(k if key == "neg_logq" else n)

    for key in ("weight", "target_logq", "neg_logq"):
        if key in kind or {"shape_tlogq": "target_logq", "shape_nlogq": "neg_logq",
                           "tlogq_nonfinite": "target_logq", "nlogq_nonfinite": "neg_logq"}.get(kind) == key:
            ensure(key)
    bad_float = draw(st.sampled_from([torch.int64, torch.int32, torch.bool, torch.complex64,
                                      torch.uint8]))
    if kind == "dtype_query":
        for key in ("query", "target_emb", "neg_emb"):
            a[key] = a[key].to(bad_float) if bad_float != torch.bool else a[key] > 0
    elif kind == "dtype_target":
        a["target_emb"] = a["target_emb"].to(draw(st.sampled_from([torch.float64, torch.float16, torch.int64])))
    elif kind == "dtype_neg":
        a["neg_emb"] = a["neg_emb"].to(draw(st.sampled_from([torch.float64, torch.bfloat16, torch.int32])))
    elif kind == "ids_dtype":
        key = draw(st.sampled_from(["target_ids", "neg_ids"]))
        a[key] = a[key].to(draw(st.sampled_from([torch.int32, torch.int16, torch.float32, torch.uint8])))
    elif kind == "label_dtype":
        a["label"] = a["label"].to(draw(st.sampled_from([torch.uint8, torch.bool, torch.float32, torch.float64])))
    elif kind == "weight_dtype":
        key = draw(st.sampled_from(["weight", "target_logq", "neg_logq"]))
        ensure(key)
        a[key] = a[key].to(draw(st.sampled_from([torch.int64, torch.int8, torch.bool, torch.complex64])))
    elif kind == "rank_query":
        a["query"] = a["query"][None] if draw(st.booleans()) else a["query"].reshape(-1)
    elif kind == "rank_neg":
        a["neg_emb"] = a["neg_emb"][None]
    elif kind == "rank_ids":
        key = draw(st.sampled_from(["target_ids", "neg_ids", "label"]))
        a[key] = a[key][None] if draw(st.booleans()) else a[key].sum()
    elif kind == "shape_target":
        a["target_emb"] = torch.randn(n + draw(st.sampled_from([-1, 1])) if n else 1, d)
    elif kind == "shape_neg_d":
        a["neg_emb"] = torch.randn(k, d + 1)
    elif kind in ("shape_tids", "shape_label", "shape_weight", "shape_tlogq"):
        key = {"shape_tids": "target_ids", "shape_label": "label", "shape_weight": "weight",
               "shape_tlogq": "target_logq"}[kind]
        a[key] = torch.cat([a[key], a[key][:1] if n else torch.zeros(1, dtype=a[key].dtype)])
    elif kind in ("shape_nids", "shape_nlogq"):
        key = "neg_ids" if kind == "shape_nids" else "neg_logq"
        a[key] = torch.cat([a[key], torch.zeros(1, dtype=a[key].dtype)])
    elif kind == "label_value":
        assume(n > 0)
        a["label"] = a["label"].clone()
        a["label"][draw(st.integers(0, n - 1))] = draw(st.sampled_from([2, -2, 127, -128]))
    elif kind == "weight_negative":
        assume(n > 0)
        a["weight"] = a["weight"].clone()
        a["weight"][draw(st.integers(0, n - 1))] = -draw(st.sampled_from([1e-30, 0.5, 1e30]))
    elif kind in ("weight_nonfinite", "tlogq_nonfinite", "nlogq_nonfinite"):
        key = {"weight_nonfinite": "weight", "tlogq_nonfinite": "target_logq",
               "nlogq_nonfinite": "neg_logq"}[kind]
        assume(a[key].numel() > 0)
        a[key] = a[key].clone()
        a[key][draw(st.integers(0, a[key].numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif kind == "temperature":
        a["temperature"] = draw(st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]))
    elif kind == "reduction":
        a["reduction"] = draw(st.sampled_from(["", "avg", "MEAN", "none ", "sum\x00"]))
    elif kind == "device":
        key = draw(st.sampled_from(["target_emb", "neg_emb", "target_ids", "label", "neg_logq"]))
        ensure(key) if key == "neg_logq" else None
        a[key] = a[key].to("meta")
    elif kind == "not_a_tensor":
        key = draw(st.sampled_from(["neg_emb", "target_ids", "label"]))
        a[key] = a[key].tolist()
    elif kind == "none_tensor":  # the dispatcher turns None into an undefined tensor
        a[draw(st.sampled_from(["target_emb", "neg_emb", "target_ids", "neg_ids", "label"]))] = None
    elif kind == "sparse":
        key = draw(st.sampled_from(["query", "target_emb", "neg_emb", "target_ids", "neg_ids",
                                    "label", "weight", "target_logq", "neg_logq"]))
        ensure(key) if key in ("weight", "target_logq", "neg_logq") else None
        a[key] = a[key].to_sparse()
    elif kind == "temperature_reciprocal_overflow":  # 1/T not finite in float32
        a["temperature"] = draw(st.sampled_from([1e-39, 2.9e-39, 1e-45, 5e-324]))
    elif kind == "logq_overflows_float32":  # finite in float64, not in the float32 kernels
        key = draw(st.sampled_from(["target_logq", "neg_logq"]))
        ensure(key)
        assume(a[key].numel() > 0)
        a[key] = a[key].double()
        a[key][draw(st.integers(0, a[key].numel() - 1))] = draw(st.sampled_from([1e39, -1e39, 1e300, -3.5e38]))
    return kind


@st.composite
def invalid_calls(draw):
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    a = _valid_args(g, draw(st.integers(0, 9)), draw(st.integers(0, 9)), draw(st.integers(1, 6)))
    for key in ("weight", "target_logq", "neg_logq"):
        if draw(st.booleans()):
            a[key] = None
    return a, _mutations(a, draw)


def _call_native_op(a):
    return torch.ops.negrec.fused_loss(a["query"], a["target_emb"], a["neg_emb"], a["target_ids"],
                                       a["neg_ids"], a["label"], a["weight"], a["target_logq"],
                                       a["neg_logq"], a["temperature"], a["reduction"])


def _call(fn, a):
    kw = {k: v for k, v in a.items() if k not in ("query", "target_emb", "neg_emb")}
    return fn(a["query"], a["target_emb"], a["neg_emb"], **kw)


@FUZZ
@given(invalid_calls())
def test_fuzz_fused_loss_rejects_bad_inputs(native, case):
    """Wrong dtypes, ranks, shapes, devices, values, temperatures and reductions: the native
    op (wrapper and raw torch.ops call) raises a clean exception of the same type as the
    reference, or -- where the mutation left the call valid -- computes the reference's loss."""
    COUNTS["fused_loss.invalid_inputs"] += 1
    a, kind = case
    outcomes = []
    for name, fn in (("wrapper", lambda: _call(fused_loss, a)),
                     ("op", lambda: _call_native_op(a)[0]),
                     ("reference", lambda: _call(fused_loss_reference, a))):
        try:
            outcomes.append(fn().detach())
        except Exception as exc:  # noqa: BLE001 - classified below
            # A list where the schema says Tensor is rejected by torch's argument parser for
            # torch.ops calls before any negrec code runs; that message spans several lines.
            clean_error(exc, one_line=not (name == "op" and kind == "not_a_tensor"))
            outcomes.append(type(exc))
    wrapper, raw, ref = outcomes
    if isinstance(ref, torch.Tensor):
        # some mutations leave the call valid (e.g. fp16 weight): then all three agree
        for x in (wrapper, raw):
            assert isinstance(x, torch.Tensor), f"native raised {x} where the reference computed"
            torch.testing.assert_close(x, ref, rtol=1e-5, atol=1e-6)
    else:
        assert isinstance(raw, type), f"native op computed {raw} where the reference raised {ref}"
        # the op goes through the dispatcher: a Python list where a Tensor belongs is a
        # TypeError/RuntimeError from torch's argument parser, so compare types only for tensors
        if kind != "not_a_tensor":
            assert raw is ref or issubclass(raw, ref) or issubclass(ref, raw), (raw, ref)


@st.composite
def backward_calls(draw):
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    n, k, d = draw(st.integers(0, 8)), draw(st.integers(0, 8)), draw(st.integers(1, 5))
    a = _valid_args(g, n, k, d)
    red = draw(st.sampled_from(["mean", "sum", "none"]))
    _, lse_all, lse_neg = torch.ops.negrec.fused_loss(
        a["query"], a["target_emb"], a["neg_emb"], a["target_ids"], a["neg_ids"], a["label"],
        a["weight"], a["target_logq"], a["neg_logq"], 1.0, red)
    grad = torch.ones(n) if red == "none" else torch.ones(())
    kind = draw(st.sampled_from(["valid", "grad_shape", "grad_dtype", "lse_shape", "lse_dtype",
                                 "lse_nonfinite", "grad_nonfinite", "reduction_mismatch"]))
    note(f"backward mutation {kind}")
    if kind == "grad_shape":
        grad = torch.ones(n + 1) if red == "none" else torch.ones(2)
    elif kind == "grad_dtype":
        grad = grad.long()
    elif kind == "lse_shape":
        lse_all = torch.cat([lse_all, lse_all[:1] if n else torch.zeros(1)])
    elif kind == "lse_dtype":
        lse_neg = lse_neg.double()
    elif kind == "lse_nonfinite":
        lse_all, lse_neg = lse_all.clone(), lse_neg.clone()
        if n:
            lse_neg[draw(st.integers(0, n - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif kind == "grad_nonfinite":
        grad = grad * draw(st.sampled_from([math.nan, math.inf]))
    elif kind == "reduction_mismatch":
        red = {"none": "sum", "sum": "none", "mean": "none"}[red]
    return a, grad, red, lse_all, lse_neg, kind


@FUZZ
@given(backward_calls())
def test_fuzz_fused_loss_backward_op(native, case):
    """torch.ops.negrec.fused_loss_backward called directly with inconsistent saved state:
    a clean exception, or gradients of the right shapes (non-finite saved values propagate)."""
    COUNTS["fused_loss_backward.direct"] += 1
    a, grad, red, lse_all, lse_neg, kind = case
    try:
        gq, gt, gn = torch.ops.negrec.fused_loss_backward(
            grad, a["query"], a["target_emb"], a["neg_emb"], a["target_ids"], a["neg_ids"],
            a["label"], a["weight"], a["target_logq"], a["neg_logq"], 1.0, red, lse_all, lse_neg)
    except Exception as exc:  # noqa: BLE001
        clean_error(exc)
        assert kind not in ("valid", "lse_nonfinite", "grad_nonfinite"), exc
        return
    assert kind in ("valid", "lse_nonfinite", "grad_nonfinite") or (
        kind == "reduction_mismatch" and red != "none" and grad.numel() == 1), kind
    assert gq.shape == a["query"].shape and gt.shape == a["target_emb"].shape
    assert gn.shape == a["neg_emb"].shape
    if kind == "valid":
        q, t, n = (x.clone().requires_grad_(True) for x in (a["query"], a["target_emb"], a["neg_emb"]))
        kw = {key: a[key] for key in ("target_ids", "neg_ids", "label", "weight", "target_logq", "neg_logq")}
        loss = fused_loss_reference(q, t, n, reduction=red, **kw)
        want = torch.autograd.grad((loss * grad).sum(), (q, t, n), allow_unused=True)
        for x, y in zip((gq, gt, gn), want):
            torch.testing.assert_close(x, torch.zeros_like(x) if y is None else y, rtol=1e-4, atol=1e-5)


@FUZZ
@given(n=st.integers(1, 3), k=st.sampled_from([50_000, 200_000]), d=st.integers(0, 2),
       seed=st.integers(0, 2**32 - 1))
def test_fuzz_fused_loss_huge_k(native, n, k, d, seed):
    """Hundreds of thousands of candidates (many tiles), including all-duplicate ids and
    D = 0: equals the reference."""
    COUNTS["fused_loss.huge_k"] += 1
    g = torch.Generator().manual_seed(seed)
    q, t = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    neg = torch.randn(1, d, generator=g, dtype=torch.float64).expand(k, d)
    nid = torch.zeros(k, dtype=torch.int64) if seed % 2 else torch.arange(k)
    kw = dict(target_ids=torch.arange(n), neg_ids=nid, label=torch.tensor([1, -1, 0][:n]),
              reduction="none")
    torch.testing.assert_close(fused_loss(q, t, neg, **kw), fused_loss_reference(q, t, neg, **kw),
                               rtol=1e-9, atol=1e-9)


@st.composite
def extreme_scalar_inputs(draw):
    """Small problems (with accidental hits) under extreme temperatures and float64 weights /
    logQ at and beyond the float32 range; ``valid`` says whether the call is legal."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n, k, d = draw(st.integers(0, 8)), draw(st.integers(0, 12)), draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    views = [(torch.randn(rows, d, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_(True)
             for rows in (n, n, k)]
    tid = torch.randint(0, 4, (n,), generator=g)
    nid = torch.randint(0, 4, (k,), generator=g)  # ids 0-3: hits in most rows
    kw = dict(target_ids=tid, neg_ids=nid, label=torch.randint(-1, 2, (n,), generator=g))
    valid = True
    # 1/T rounds to 0 (float32: 2e45, 1e300) or to a denormal (1e38) -- valid; 1/T overflows the
    # accumulation dtype (1e-310 always, 1e-39 in float32) -- invalid.
    temperatures = [1.0, 1e38, 2e45, 1e300, 1e-310] + ([1e-39] if dtype == torch.float32 else [])
    kw["temperature"] = draw(st.sampled_from(temperatures))
    valid &= kw["temperature"] >= 1.0 / torch.finfo(dtype).max
    if draw(st.booleans()):
        kw["weight"] = torch.tensor(draw(st.lists(st.sampled_from(
            [0.0, 5e-324, 1e-300, 1e-50, 0.5, 2.0, 1e39, 1e300]), min_size=n, max_size=n)),
            dtype=torch.float64)
    for key, size in (("target_logq", n), ("neg_logq", k)):
        if draw(st.booleans()):
            # moderate values, and (float32 inputs only) float64 values that overflow float32;
            # huge valid logQ would make the comparison one of rounding noise, not of semantics
            pool = [0.0, -1e-50, -5.0, -30.0] + ([1e39, -1e39, 1e300] if dtype == torch.float32 else [])
            vals = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
            valid &= all(abs(v) < 3e38 for v in vals)
            kw[key] = torch.tensor(vals, dtype=torch.float64)
    kw["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    return dtype, views, kw, bool(valid)


@FUZZ
@given(extreme_scalar_inputs())
def test_fuzz_fused_loss_extreme_scalars(native, case):
    """Temperatures whose 1/T underflows or overflows, float64 weights from 5e-324 to 1e300 and
    float64 logQ beyond the float32 range: the native op raises exactly where the reference
    does (same type), else equals it (results clamped to the dtype's range: both overflow to
    inf on the same rows), with finite-wherever-the-reference-is-finite gradients for "mean"."""
    COUNTS["fused_loss.extreme_scalars"] += 1
    dtype, views, kw, valid = case
    outcomes = []
    for fn in (fused_loss, fused_loss_reference):
        try:
            outcomes.append(fn(*views, **kw))
        except Exception as exc:  # noqa: BLE001 - classified below
            clean_error(exc)
            outcomes.append(type(exc))
    got, want = outcomes
    if not valid:
        assert got is ValueError and want is ValueError, (got, want)
        return
    assert isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor), (got, want)
    big = torch.finfo(got.dtype).max
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.detach().clamp(-big, big), want.detach().clamp(-big, big), **tol)
    assert bool((torch.isnan(got) == torch.isnan(want)).all())
    if kw["reduction"] == "mean":
        grads = torch.autograd.grad(got, views, allow_unused=True)
        ref = torch.autograd.grad(want, views, allow_unused=True)
        for a, b, v in zip(grads, ref, views):
            a = torch.zeros_like(v) if a is None else a
            b = torch.zeros_like(v) if b is None else b
            torch.testing.assert_close(a, b, **tol)


# ============================================================================================
# collator
# ============================================================================================

FIELDS = ("input_items", "input_feedback", "mask", "lengths", "target_items", "target_labels",
          "target_weights")
RAW_FIELDS = ("input_items", "input_feedback", "target_items", "target_labels", "target_weights",
              "mask", "lengths")  # the order of negrec._C.collate's result


def _raw_reference(offsets, items, feedback, users, ends, num_items, L, left_pad, pad_item,
                   allowed, label_of, weight_of, with_targets):
    """The native collator's documented contract on raw (possibly corrupt) arrays: raises
    ValueError exactly when it reads something invalid, else the batch."""
    U, E = len(offsets) - 1, len(items)
    if U < 0:
        raise ValueError("offsets empty")
    all_allowed = all(allowed[1:5])

    def check(k):
        if not 1 <= feedback[k] <= 4 or not 0 <= items[k] < num_items:
            raise ValueError(f"bad event {k}")

    B = len(users)
    out = {"input_items": np.full((B, L), pad_item, np.int64), "input_feedback": np.zeros((B, L), np.int8),
           "mask": np.zeros((B, L), bool), "lengths": np.zeros(B, np.int64)}
    if with_targets:
        out.update(target_items=np.full((B, L), pad_item, np.int64),
                   target_labels=np.zeros((B, L), np.int8), target_weights=np.zeros((B, L), np.float32))
    for b, u in enumerate(users):
        if not 0 <= u < U:
            raise ValueError("user out of range")
        s, e = offsets[u], offsets[u + 1]
        if not 0 <= s <= e <= E:
            raise ValueError("bad offsets")
        if all_allowed:
            kept = list(range(s, e))
        else:
            kept = []
            for k in range(s, e):
                check(k)
                if allowed[feedback[k]]:
                    kept.append(k)
        n = len(kept)
        if ends is not None and ends[b] >= 0:
            n = min(n, int(ends[b]))
        first, m = window(n, L, with_targets)
        if all_allowed and m > 0:
            for r in range(first, first + m + (1 if with_targets else 0)):
                check(kept[r])
        p0 = L - m if left_pad else 0
        for j in range(m):
            k = kept[first + j]
            out["input_items"][b, p0 + j] = items[k]
            out["input_feedback"][b, p0 + j] = feedback[k]
            out["mask"][b, p0 + j] = True
            if with_targets:
                kt = kept[first + j + 1]
                lab = label_of[feedback[kt]]
                out["target_items"][b, p0 + j] = items[kt]
                out["target_labels"][b, p0 + j] = lab
                out["target_weights"][b, p0 + j] = weight_of[feedback[kt]] if lab != 0 else 0.0
        out["lengths"][b] = m
    return out


@st.composite
def raw_collate_calls(draw):
    """A CSR log, users and options, then zero or more corruptions of the arrays."""
    num_items = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(0, 9), min_size=1, max_size=6))
    E = sum(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.asarray(draw(st.lists(st.integers(0, num_items - 1), min_size=E, max_size=E)), np.int64)
    feedback = np.asarray(draw(st.lists(st.integers(1, 4), min_size=E, max_size=E)), np.int8)
    U = len(lengths)
    users = np.asarray(draw(st.lists(st.integers(0, U - 1), min_size=0, max_size=8)), np.int64)
    ends = None
    if draw(st.booleans()):
        ends = np.asarray(draw(st.lists(st.sampled_from([-5, -1, 0, 1, 2, 3, 7, 2**62]),
                                        min_size=len(users), max_size=len(users))), np.int64)
    corruptions = draw(st.lists(st.sampled_from([
        "user_high", "user_negative", "user_min", "offset_high", "offset_negative",
        "offset_decreasing", "item_high", "item_negative", "feedback_zero", "feedback_high",
        "feedback_negative"]), max_size=2))
    note(f"corruptions {corruptions}")
    for c in corruptions:
        if c.startswith("user") and len(users):
            i = draw(st.integers(0, len(users) - 1))
            users[i] = {"user_high": U + draw(st.integers(0, 3)), "user_negative": -1,
                        "user_min": -2**63}[c]
        elif c.startswith("offset") and U:
            i = draw(st.integers(1, U))
            offsets[i] = {"offset_high": E + 1 + draw(st.integers(0, 100)), "offset_negative": -3,
                          "offset_decreasing": max(offsets[i - 1] - 1, -1)}[c]
        elif c.startswith("item") and E:
            items[draw(st.integers(0, E - 1))] = num_items if c == "item_high" else -1
        elif c.startswith("feedback") and E:
            feedback[draw(st.integers(0, E - 1))] = {"feedback_zero": 0, "feedback_high": 5,
                                                     "feedback_negative": -7}[c]
    allowed = [False] + draw(st.lists(st.booleans(), min_size=4, max_size=4))
    label_of = [0] + draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=4, max_size=4))
    weight_of = [0.0] + draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=4, max_size=4))
    opts = dict(num_items=num_items, L=draw(st.sampled_from([1, 2, 3, 5, 8, 64])),
                left_pad=draw(st.booleans()), pad_item=draw(st.sampled_from([num_items, -1, 2**62])),
                allowed=allowed, label_of=label_of, weight_of=weight_of,
                with_targets=draw(st.booleans()))
    threads = draw(st.sampled_from([1, 2, 3]))
    return offsets, items, feedback, users, ends, opts, threads


@FUZZ
@given(raw_collate_calls())
def test_fuzz_raw_collate(native, case):
    """negrec._C.collate on raw CSR arrays, corrupt or not: raises ValueError exactly when the
    contract says it reads invalid data, otherwise returns exactly the reference batch."""
    COUNTS["collate.raw"] += 1
    offsets, items, feedback, users, ends, o, threads = case
    try:
        want = _raw_reference(offsets, items, feedback, users, ends, o["num_items"], o["L"],
                              o["left_pad"], o["pad_item"], o["allowed"], o["label_of"],
                              o["weight_of"], o["with_targets"])
    except (ValueError, IndexError):
        want = None
    try:
        got = native.collate(torch.from_numpy(offsets), torch.from_numpy(items),
                             torch.from_numpy(feedback), torch.from_numpy(users),
                             None if ends is None else torch.from_numpy(ends), o["num_items"],
                             o["L"], o["left_pad"], o["pad_item"], o["allowed"], o["label_of"],
                             o["weight_of"], False, o["with_targets"], 0, threads)
    except ValueError as exc:
        clean_error(exc)
        assert want is None, f"native raised {exc!r} on input the reference accepts"
        return
    assert want is not None, "native accepted input the reference rejects"
    for name, x in zip(RAW_FIELDS, got):
        if x is None:
            assert name not in want
            continue
        np.testing.assert_array_equal(x.numpy(), want[name], err_msg=name)


@st.composite
def bad_collate_args(draw):
    """Type, rank and configuration errors of negrec._C.collate (on a random valid log)."""
    lengths = draw(st.lists(st.integers(0, 6), min_size=2, max_size=6))
    E, num_items = sum(lengths), draw(st.integers(2, 50))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    offsets = torch.tensor([0] + np.cumsum(lengths).tolist(), dtype=torch.int64)
    args = dict(offsets=offsets, items=torch.randint(0, num_items, (E,), generator=g),
                feedback=torch.randint(1, 5, (E,), generator=g).to(torch.int8),
                users=torch.randint(0, len(lengths), (2,), generator=g),
                ends=None, num_items=num_items, max_len=draw(st.integers(1, 9)),
                left_pad=draw(st.booleans()), pad_item=num_items,
                input_allowed=[False, True, True, True, True], label_of=[0, 1, 0, 0, -1],
                weight_of=[0.0, 1.0, 0.0, 0.0, 1.0], random_crop=False, with_targets=True,
                seed=0, threads=1)
    kind = draw(st.sampled_from([
        "offsets_dtype", "items_dtype", "feedback_dtype", "users_dtype", "ends_dtype",
        "offsets_2d", "users_2d", "ends_len", "offsets_empty", "len_mismatch", "max_len",
        "num_items", "table_len", "label_value", "weight_negative", "weight_nan", "seed_negative",
        "meta_device", "list_not_tensor"]))
    note(f"mutation {kind}")
    if kind in ("offsets_dtype", "items_dtype", "users_dtype"):
        key = kind.split("_")[0]
        args[key] = args[key].to(draw(st.sampled_from([torch.int32, torch.float64, torch.int8])))
    elif kind == "feedback_dtype":
        args["feedback"] = args["feedback"].to(draw(st.sampled_from([torch.uint8, torch.int64, torch.float32])))
    elif kind == "ends_dtype":
        args["ends"] = torch.tensor([1.0, 2.0])
    elif kind == "offsets_2d":
        args["offsets"] = args["offsets"][None]
    elif kind == "users_2d":
        args["users"] = args["users"][:, None]
    elif kind == "ends_len":
        args["ends"] = torch.tensor([1, 2, 3])
    elif kind == "offsets_empty":
        args["offsets"] = torch.zeros(0, dtype=torch.int64)
    elif kind == "len_mismatch":
        args["feedback"] = torch.cat([args["feedback"], torch.ones(draw(st.integers(1, 3)), dtype=torch.int8)])
    elif kind == "max_len":
        args["max_len"] = draw(st.sampled_from([0, -1, -2**62]))
    elif kind == "num_items":
        args["num_items"] = draw(st.sampled_from([0, -5]))
    elif kind == "table_len":
        key = draw(st.sampled_from(["input_allowed", "label_of", "weight_of"]))
        args[key] = args[key][:draw(st.integers(0, 4))] if draw(st.booleans()) else args[key] + args[key][:1]
    elif kind == "label_value":
        args["label_of"][draw(st.integers(0, 4))] = draw(st.sampled_from([2, -2, 127, -128]))
    elif kind == "weight_negative":
        args["weight_of"][draw(st.integers(0, 4))] = -draw(st.floats(1e-30, 1e30))
    elif kind == "weight_nan":
        args["weight_of"][draw(st.integers(0, 4))] = math.nan
    elif kind == "seed_negative":
        args["seed"] = -1
    elif kind == "meta_device":
        args["items"] = args["items"].to("meta")
    elif kind == "list_not_tensor":
        args["users"] = [0, 1]
    return args


@FUZZ
@given(bad_collate_args())
def test_fuzz_collate_rejects_bad_arguments(native, args):
    COUNTS["collate.bad_arguments"] += 1
    with pytest.raises(CLEAN) as info:
        native.collate(**args)
    clean_error(info.value)


@st.composite
def logs_and_batches(draw):
    num_items = draw(st.integers(1, 15))
    lengths = draw(st.lists(st.integers(0, 20), min_size=1, max_size=8))
    users, items, ts, fb = [], [], [], []
    for u, n in enumerate(lengths):
        for _ in range(n):
            users.append(u)
            items.append(draw(st.integers(0, num_items - 1)))
            ts.append(draw(st.integers(-5, 5)))   # ties and out-of-order times
            fb.append(draw(st.integers(1, 4)))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    order = np.lexsort((np.arange(len(ts)), ts, users)) if ts else np.zeros(0, np.int64)
    log = EventLog(offsets=offsets, items=np.asarray(items, np.int64)[order],
                   timestamps=np.asarray(ts, np.int64)[order], feedback=np.asarray(fb, np.int8)[order],
                   user_ids=np.arange(len(lengths)), item_meta=ItemMeta.anonymous(np.arange(num_items)))
    config = CollateConfig(
        max_len=draw(st.sampled_from([1, 2, 4, 7, 30])),
        input_feedback=frozenset(draw(st.sets(st.sampled_from(
            [Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.SKIP, Feedback.DISLIKE]), min_size=1))),
        targets={Feedback.POSITIVE: TargetRule(1, draw(st.sampled_from([0.0, 1.0, 2.5]))),
                 Feedback.DISLIKE: TargetRule(draw(st.sampled_from([-1, 0])), 2.0),
                 Feedback.SKIP: TargetRule(draw(st.sampled_from([-1, 0])), 0.5)},
        left_pad=draw(st.booleans()))
    batch_users = draw(st.lists(st.integers(0, len(lengths) - 1), max_size=10))
    ends = None
    if draw(st.booleans()):
        ends = draw(st.lists(st.sampled_from([-1, 0, 1, 2, 5, 10**6]), min_size=len(batch_users),
                             max_size=len(batch_users)))
    return log, config, batch_users, ends, draw(st.booleans()), draw(st.sampled_from([1, 2, 4]))


@FUZZ
@given(logs_and_batches())
def test_fuzz_collator_matches_python_reference(native, case):
    """Collator (native) on valid logs with empty users, duplicate users in a batch, every
    input filter, ends of every size and threads 1-4: equal to collate_python."""
    COUNTS["collate.collator_valid"] += 1
    log, config, users, ends, with_targets, threads = case
    got = Collator(log, config, with_targets=with_targets, threads=threads)(
        users, ends=None if ends is None else torch.tensor(ends))
    want = collate_python(log, users, config, with_targets=with_targets, ends=ends)
    for f in FIELDS:
        a, b = getattr(got, f), getattr(want, f)
        if not with_targets and f.startswith("target"):
            assert a is None
            continue
        assert torch.equal(a, b), f


@FUZZ
@given(logs_and_batches(), st.sampled_from(["out_of_range", "negative", "2d", "min_int"]))
def test_fuzz_collator_bad_users(native, case, kind):
    """Collator called with user indices that do not exist: a ValueError naming them."""
    COUNTS["collate.collator_bad_users"] += 1
    log, config, users, ends, with_targets, threads = case
    bad = {"out_of_range": [log.num_users], "negative": [-1], "2d": [[0]], "min_int": [-2**63]}[kind]
    with pytest.raises(ValueError) as info:
        Collator(log, config, with_targets=with_targets, threads=threads)(users + bad if kind != "2d" else bad)
    clean_error(info.value)


# ============================================================================================
# samplers
# ============================================================================================

weights_st = st.lists(st.one_of(
    st.floats(0, 1e6, allow_nan=False), st.sampled_from([0.0, 1e-300, 5e-324, 1e300, 1.7e308])),
    min_size=1, max_size=40)


@FUZZ
@given(weights_st, st.integers(0, 3000), st.integers(0, 2**64 - 1))
def test_fuzz_alias_table_valid(native, weights, k, seed):
    """Any finite non-negative weights with a positive sum (denormals, 1e308s whose sum
    overflows): exact probabilities, draws in range and never of a zero-weight item,
    reproducible per seed, picklable."""
    assume(sum(w > 0 for w in weights) > 0)
    COUNTS["sampler.alias_valid"] += 1
    w = torch.tensor(weights, dtype=torch.float64)
    table = native.AliasTable(w)
    want = (w / w.max()) / (w / w.max()).sum()
    # rtol: summation order; atol: denormal weights round differently on the two paths
    torch.testing.assert_close(table.probabilities(), want, rtol=1e-12, atol=1e-300)
    s = table.sample(k, seed)
    assert s.dtype == torch.int64 and s.shape == (k,)
    if k:
        assert int(s.min()) >= 0 and int(s.max()) < len(weights)
        assert bool((w[s] > 0).all()), "drew an item of weight 0"
    assert torch.equal(s, table.sample(k, seed))
    back = pickle.loads(pickle.dumps(table))
    assert torch.equal(back.sample(k, seed), s)


@FUZZ
@given(st.sampled_from(["empty", "2d", "negative", "nan", "inf", "zero_sum", "k_negative",
                        "seed_negative", "int_k_huge", "pickle_garbage"]),
       st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=20))
def test_fuzz_alias_table_invalid(native, kind, weights):
    COUNTS["sampler.alias_invalid"] += 1
    v = len(weights)
    w = torch.tensor(weights, dtype=torch.float64)
    table = native.AliasTable(w)
    calls = {
        "empty": lambda: native.AliasTable(torch.zeros(0, dtype=torch.float64)),
        "2d": lambda: native.AliasTable(w[None]),
        "negative": lambda: native.AliasTable(torch.cat([w, torch.tensor([-1e-300], dtype=torch.float64)])),
        "nan": lambda: native.AliasTable(torch.cat([w, torch.tensor([math.nan], dtype=torch.float64)])),
        "inf": lambda: native.AliasTable(torch.cat([w, torch.tensor([math.inf], dtype=torch.float64)])),
        "zero_sum": lambda: native.AliasTable(w * 0),
        "k_negative": lambda: table.sample(-v, v),
        "seed_negative": lambda: table.sample(3, -1),
        "int_k_huge": lambda: table.sample(2**62, 0),
        "pickle_garbage": lambda: native.AliasTable.__new__(native.AliasTable).__setstate__(("x",)),
    }
    with pytest.raises(CLEAN) as info:
        calls[kind]()
    clean_error(info.value)


ALIAS_OPS = ["new", "init_valid", "init_garbage", "setstate_valid", "setstate_garbage", "sample",
             "len", "probabilities", "getstate", "pickle", "deepcopy"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(ALIAS_OPS), st.lists(st.floats(0.5, 10.0), min_size=1,
                                                                max_size=5)), min_size=1, max_size=12))
def test_fuzz_alias_table_construction_states(native, ops):
    """Random sequences of __new__, __init__ / __setstate__ (valid or garbage), the methods,
    pickling and copying on one AliasTable object. Model: the object is unconstructed (every
    method a TypeError, never a crash or a garbage read) until the first successful
    construction, then immutable (a second construction is a TypeError) and equal to a table
    freshly built from those weights."""
    COUNTS["sampler.alias_states"] += 1
    import copy

    A = native.AliasTable
    x, built = A.__new__(A), None  # built: the weights of the constructed table, or None
    for op, ws in ops:
        w = torch.tensor(ws, dtype=torch.float64)
        note(f"{op} {ws} (built: {built})")
        if op == "new":
            x, built = A.__new__(A), None
            continue
        if op.startswith(("init", "setstate")):
            arg = w if op.endswith("valid") else draw_garbage_state(ws)
            call = x.__init__ if op.startswith("init") else x.__setstate__
            try:
                call(arg if op.startswith("init") or not op.endswith("valid") else (arg,))
            except (TypeError, ValueError) as exc:
                clean_error(exc)
                if built is not None:
                    assert "already initialised" in str(exc)
                else:
                    assert not op.endswith("_valid"), exc
                continue
            assert built is None and op.endswith("_valid"), f"{op} accepted on {built}"
            built = ws
            continue
        calls = {"sample": lambda: x.sample(7, 3), "len": lambda: len(x),
                 "probabilities": lambda: x.probabilities(), "getstate": lambda: x.__getstate__()[0],
                 "pickle": lambda: pickle.loads(pickle.dumps(x)).sample(7, 3),
                 "deepcopy": lambda: copy.deepcopy(x).sample(7, 3)}
        if built is None:
            with pytest.raises(TypeError, match="was never initialised") as info:
                calls[op]()
            clean_error(info.value)
            continue
        fresh = A(torch.tensor(built, dtype=torch.float64))
        want = {"sample": lambda: fresh.sample(7, 3), "len": lambda: len(fresh),
                "probabilities": lambda: fresh.probabilities(), "getstate": lambda: fresh.__getstate__()[0],
                "pickle": lambda: fresh.sample(7, 3), "deepcopy": lambda: fresh.sample(7, 3)}[op]()
        got = calls[op]()
        assert (got == want) if isinstance(got, int) else torch.equal(got, want), (op, got, want)


def draw_garbage_state(ws: list) -> object:
    """A deterministic invalid constructor argument / pickle state derived from ws."""
    return [None, "weights", ws, (ws,), torch.tensor([-1.0]), (torch.zeros(0),),
            torch.tensor(ws).to_sparse()][int(ws[0] * 7) % 7]


# Bad Python values per kind of argument of negrec._C's entry points (each one invalid).
_NOT_INT = [None, True, 2.5, "3", [1], float("nan")]
BAD_VALUES = {
    "tensor": [None, 3, 2.5, "x", [0, 1], {"a": 1}, np.arange(3)],
    "optional_tensor": [3, "x", [0, 1], np.arange(3)],
    "int_nonneg": _NOT_INT + [-1, -2**63, 2**63, 2**100],
    "int_pos": _NOT_INT + [0, -1, -2**63, 2**63],
    "int_any": _NOT_INT + [2**63, -2**63 - 1],
    "uint64": _NOT_INT + [-1, -2**63, 2**64, 2**100],
    "bool": [None, 0, 1, 1.0, "True", [True]],
    "tile_rows": _NOT_INT + [0, -1, 65537, 2**64],
    "tile_cols": _NOT_INT + [0, -1, 2**20 + 1, 2**64],
    "table_bool": [None, "TTTTT", [True] * 4, [True] * 6, [True, None, True, True, True],
                   [True, 1, True, True, True]],
    "table_label": [None, "01000", [0] * 4, [0, 1, 0, 0, 2], [0, 1, None, 0, 0], [0, 1.0, 0, 0, 0],
                    [0, -2**70, 0, 0, 0]],
    "table_weight": [None, [0.0] * 6, [0.0, -1.0, 0, 0, 0], [0.0, math.nan, 0, 0, 0],
                     [0.0, math.inf, 0, 0, 0], [0.0, 1e39, 0, 0, 0], [0.0, "1", 0, 0, 0],
                     [0.0, 10**400, 0, 0, 0]],
}

# entry point -> (callable(**args), valid args, {argument: kind})
def _entry_points(native):
    table = native.AliasTable(torch.tensor([1.0, 2.0], dtype=torch.float64))
    collate_args = dict(offsets=torch.tensor([0, 2, 3]), items=torch.tensor([0, 1, 1]),
                        feedback=torch.tensor([1, 1, 1], dtype=torch.int8),
                        users=torch.tensor([0, 1]), ends=None, num_items=2, max_len=3,
                        left_pad=True, pad_item=2, input_allowed=[False, True, True, True, True],
                        label_of=[0, 1, 0, 0, -1], weight_of=[0.0, 1.0, 0.0, 0.0, 1.0],
                        random_crop=True, with_targets=True, seed=0, threads=1)
    collate_kinds = dict(offsets="tensor", items="tensor", feedback="tensor", users="tensor",
                         ends="optional_tensor", num_items="int_pos", max_len="int_pos",
                         left_pad="bool", pad_item="int_any", input_allowed="table_bool",
                         label_of="table_label", weight_of="table_weight", random_crop="bool",
                         with_targets="bool", seed="uint64", threads="int_pos")
    return {
        "AliasTable": (lambda **a: native.AliasTable(**a),
                       dict(weights=torch.ones(2, dtype=torch.float64)), dict(weights="tensor")),
        "AliasTable.sample": (lambda **a: table.sample(**a), dict(k=3, seed=0),
                              dict(k="int_nonneg", seed="uint64")),
        "collate": (lambda **a: native.collate(**a), collate_args, collate_kinds),
        "_set_cpu_tile_config": (lambda **a: native._set_cpu_tile_config(**a),
                                 dict(rows=128, cols=1024), dict(rows="tile_rows", cols="tile_cols")),
        "_force_scalar_cpu_kernels": (lambda **a: native._force_scalar_cpu_kernels(**a),
                                      dict(force=False), dict(force="bool")),
    }


@FUZZ
@given(st.sampled_from(["AliasTable", "AliasTable.sample", "collate", "_set_cpu_tile_config",
                        "_force_scalar_cpu_kernels"]), st.data())
def test_fuzz_c_entry_points_reject_bad_python_values(native, entry, data):
    """Every argument of every Python-facing function of negrec._C, given None, a value of the
    wrong Python type, a negative or out-of-range int, or a bad table entry: a TypeError or
    ValueError in one line that names the function and the argument (pybind11 answered with a
    multi-line "incompatible function arguments", or accepted -1 / 1e39 silently)."""
    COUNTS["native.bad_python_values"] += 1
    fn, valid, kinds = _entry_points(native)[entry]
    arg = data.draw(st.sampled_from(sorted(kinds)))
    value = data.draw(st.sampled_from(BAD_VALUES[kinds[arg]]))
    note(f"{entry}({arg}={value!r})")
    old = native._get_cpu_tile_config()
    try:
        with pytest.raises((TypeError, ValueError)) as info:
            fn(**dict(valid, **{arg: value}))
    finally:
        native._set_cpu_tile_config(*old)
        native._force_scalar_cpu_kernels(False)
    clean_error(info.value)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(entry.split(".")[0]) and arg in msg, msg


@FUZZ
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=30), st.integers(1, 500),
       st.sampled_from([0.0, 0.5, 0.75, 1.0, 2.0]), st.integers(0, 2**31))
def test_fuzz_popularity_sampler(native, counts, num_negatives, alpha, seed):
    """PopularitySampler: ids in range, log q = log of the exact probability of each id."""
    COUNTS["sampler.popularity"] += 1
    s = PopularitySampler(np.asarray(counts), num_negatives, alpha=alpha)
    ids, logq = s.sample(None, torch.Generator().manual_seed(seed))
    assert ids.shape == (num_negatives,) and int(ids.min()) >= 0 and int(ids.max()) < len(counts)
    w = (torch.tensor(counts, dtype=torch.float64) + 1.0) ** alpha
    torch.testing.assert_close(logq, (w / w.sum()).log().float()[ids])
    torch.testing.assert_close(s.log_prob(ids), logq)


@FUZZ
@given(st.sampled_from(["pop_empty", "pop_negative", "pop_nan", "pop_2d", "pop_k0", "pop_alpha",
                        "pop_smoothing", "uni_items", "uni_k", "inbatch_empty", "inbatch_none",
                        "pop_alpha_overflow"]),
       st.lists(st.integers(1, 10**6), min_size=1, max_size=20), st.integers(-10**6, 0))
def test_fuzz_sampler_constructors_reject(native, kind, counts, k_bad):
    COUNTS["sampler.bad_construction"] += 1
    c = np.asarray(counts, dtype=np.float64)
    calls = {
        "pop_empty": lambda: PopularitySampler(np.zeros(0), 5),
        "pop_negative": lambda: PopularitySampler(np.append(c, -1.0), 5),
        "pop_nan": lambda: PopularitySampler(np.append(c, np.nan), 5),
        "pop_2d": lambda: PopularitySampler(np.stack([c, c]), 5),
        "pop_k0": lambda: PopularitySampler(c, k_bad),
        "pop_alpha": lambda: PopularitySampler(c, 5, alpha=k_bad - 0.5),
        "pop_smoothing": lambda: PopularitySampler(np.append(c, 0.0), 5, smoothing=0.0),
        "pop_alpha_overflow": lambda: PopularitySampler(np.append(c, 1e300), 5, alpha=2.0),
        "uni_items": lambda: UniformSampler(k_bad, 5),
        "uni_k": lambda: UniformSampler(len(counts), k_bad),
        "inbatch_empty": lambda: InBatchSampler(np.zeros(0)),
        "inbatch_none": lambda: InBatchSampler(c).sample(None),
    }
    with pytest.raises(CLEAN) as info:
        calls[kind]()
    clean_error(info.value)
