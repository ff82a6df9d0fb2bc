"""torch.ops.negrec.fused_loss on CPU: the native kernel against the reference, autograd,
torch.library registration, torch.compile, numerical properties and every input check."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from fused_loss_inputs import make_inputs, op_args, split
from negrec.ops import fused_loss, fused_loss_reference

REDUCTIONS = ("mean", "sum", "none")
# Tile configurations: the default, and tiny ones that force many row blocks and candidate
# tiles (and partial ones) on small inputs.
TILES = [None, (3, 5), (1, 1), (7, 64)]


@pytest.fixture(params=TILES, ids=lambda t: "default-tiles" if t is None else f"tiles{t[0]}x{t[1]}")
def tiles(request, native):
    old = native._get_cpu_tile_config()
    if request.param is not None:
        native._set_cpu_tile_config(*request.param)
    yield request.param
    native._set_cpu_tile_config(*old)


def tolerances(dtype):
    if dtype == torch.float64:
        return dict(rtol=1e-10, atol=1e-12)
    # float32: the native op sums in a different order (tiles, online LSE, vector lanes).
    return dict(rtol=2e-5, atol=2e-6)


def loss_and_grads(fn, inputs, temperature, reduction, upstream_seed=1):
    (q, t, n), kw = split(inputs)
    loss = fn(q, t, n, temperature=temperature, reduction=reduction, **kw)
    g = torch.Generator().manual_seed(upstream_seed)
    upstream = torch.randn(loss.shape, generator=g, dtype=torch.float64).to(loss.dtype)
    grads = torch.autograd.grad((loss * upstream).sum(), [q, t, n], allow_unused=True)
    return loss.detach(), [torch.zeros_like(x) if gx is None else gx for x, gx in zip((q, t, n), grads)]


def assert_matches_reference(inputs, temperature, reduction, dtype):
    got, got_g = loss_and_grads(fused_loss, inputs, temperature, reduction)
    want, want_g = loss_and_grads(fused_loss_reference, inputs, temperature, reduction)
    tol = tolerances(dtype)
    torch.testing.assert_close(got, want, **tol)
    for name, a, b in zip(("query", "target_emb", "neg_emb"), got_g, want_g):
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"grad {name}: {m}")


# ---- agreement with the reference ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 31, 13), (64, 200, 32), (5, 3, 64)])
def test_matches_reference(tiles, dtype, reduction, shape):
    n, k, d = shape
    inputs = make_inputs(n, k, d, dtype=dtype, seed=n * 1000 + k, id_range=max(2, k // 3))
    assert_matches_reference(inputs, 0.7, reduction, dtype)


@pytest.mark.parametrize("logq", [False, True])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("temperature", [0.05, 1.0, 3.0])
def test_matches_reference_options(native, logq, weight, temperature):
    inputs = make_inputs(23, 41, 8, dtype=torch.float64, seed=7, logq=logq, weight=weight,
                         id_range=10)
    for reduction in REDUCTIONS:
        assert_matches_reference(inputs, temperature, reduction, torch.float64)


@given(
    n=st.integers(0, 40), k=st.integers(0, 70), d=st.integers(1, 24),
    id_range=st.integers(1, 60), seed=st.integers(0, 2**31 - 1),
    reduction=st.sampled_from(REDUCTIONS), temperature=st.floats(0.05, 5.0),
    logq=st.booleans(), weight=st.booleans(), scale=st.sampled_from([0.1, 1.0, 4.0]),
)
def test_matches_reference_property(native, n, k, d, id_range, seed, reduction, temperature,
                                    logq, weight, scale):
    inputs = make_inputs(n, k, d, dtype=torch.float64, seed=seed, id_range=id_range, logq=logq,
                         weight=weight, scale=scale)
    assert_matches_reference(inputs, temperature, reduction, torch.float64)


def test_lse_outputs_match_reference(native):
    inputs = make_inputs(30, 50, 8, dtype=torch.float64, seed=3, id_range=12)
    loss, lse_all, lse_neg = torch.ops.negrec.fused_loss(*op_args(inputs, 0.5, "sum"))
    (q, t, n), kw = split(inputs)
    ref, ref_all, ref_neg = fused_loss_reference(q, t, n, temperature=0.5, reduction="sum",
                                                 return_lse=True, **kw)
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(lse_all, ref_all)
    torch.testing.assert_close(lse_neg, ref_neg)
    assert not lse_all.requires_grad and not lse_neg.requires_grad


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(native, dtype):
    inputs = make_inputs(40, 90, 16, dtype=dtype, seed=11, id_range=30)
    (q, t, n), kw = split(inputs)
    loss = fused_loss(q, t, n, reduction="none", **kw)
    assert loss.dtype == torch.float32
    grads = torch.autograd.grad(loss.sum(), [q, t, n])
    assert all(g.dtype == dtype for g in grads)
    # The kernel upcasts once and computes in float32: it must match the float32 reference
    # on the same (rounded) inputs, up to float32 error plus the final rounding of gradients.
    q32, t32, n32 = (x.detach().float().requires_grad_() for x in (q, t, n))
    ref = fused_loss_reference(q32, t32, n32, reduction="none", **kw)
    ref_grads = torch.autograd.grad(ref.sum(), [q32, t32, n32])
    torch.testing.assert_close(loss, ref, rtol=2e-5, atol=2e-6)
    # The gradients are float32 values rounded once to the input dtype: within one ulp of the
    # reference's (float32 sums in another order can round to the neighbouring value).
    for g, r in zip(grads, ref_grads):
        eps = torch.finfo(dtype).eps
        assert (g.float() - r).abs().max() <= eps * r.abs().max() + 1e-6


def test_scalar_and_vector_row_kernels_agree(native):
    inputs = make_inputs(50, 333, 19, dtype=torch.float32, seed=5, id_range=40)
    native._force_scalar_cpu_kernels(True)
    try:
        assert native.cpu_float_isa() == "scalar"
        a, ga = loss_and_grads(fused_loss, inputs, 0.8, "none")
    finally:
        native._force_scalar_cpu_kernels(False)
    b, gb = loss_and_grads(fused_loss, inputs, 0.8, "none")
    # Both are float32 computations of the same values (different exp implementations and
    # summation orders): each within float32 error of the float64 answer.
    as64 = {k: (v.detach().double().requires_grad_(v.requires_grad) if v.is_floating_point() else v)
            for k, v in inputs.items()}
    want, want_g = loss_and_grads(fused_loss_reference, as64, 0.8, "none")
    for got, got_g in ((a, ga), (b, gb)):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
        for x, y in zip(got_g, want_g):
            # gradients are sums of 334 terms of either sign: error relative to their scale
            torch.testing.assert_close(x.double(), y, rtol=1e-5, atol=1e-6 * y.abs().max().item())


def test_thread_count_does_not_change_results(native):
    inputs = make_inputs(300, 500, 16, dtype=torch.float64, seed=9, id_range=100)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, ga = loss_and_grads(fused_loss, inputs, 1.0, "mean")
    finally:
        torch.set_num_threads(old)
    b, gb = loss_and_grads(fused_loss, inputs, 1.0, "mean")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


def test_non_contiguous_inputs(native):
    base = make_inputs(40, 60, 12, dtype=torch.float64, seed=13, id_range=20, requires_grad=False)
    # The same values through transposed, strided and expanded views.
    q = base["query"].T.contiguous().T
    t = torch.stack([base["target_emb"], base["target_emb"]], dim=2)[:, :, 1]
    nb = torch.zeros(120, 12, dtype=torch.float64)
    nb[::2] = base["neg_emb"]
    n = nb[::2]
    assert not q.is_contiguous() and not t.is_contiguous() and not n.is_contiguous()
    ids2 = torch.stack([base["target_ids"], base["target_ids"]], 1)[:, 0]
    lab2 = torch.stack([base["label"], base["label"]], 1)[:, 1]
    w2 = torch.stack([base["weight"], base["weight"]], 1)[:, 0]
    assert not ids2.is_contiguous() and not lab2.is_contiguous()
    kw = dict(target_ids=ids2, neg_ids=base["neg_ids"], label=lab2, weight=w2,
              target_logq=base["target_logq"], neg_logq=base["neg_logq"], reduction="none")
    got = fused_loss(q, t, n, **kw)
    (q0, t0, n0), kw0 = split(base)
    want = fused_loss(q0, t0, n0, reduction="none", **kw0)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# ---- autograd, registration, compile --------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(native, reduction):
    inputs = make_inputs(6, 7, 4, dtype=torch.float64, seed=21, id_range=5)
    (q, t, n), kw = split(inputs)

    def f(q, t, n):
        return fused_loss(q, t, n, temperature=0.9, reduction=reduction, **kw)

    assert torch.autograd.gradcheck(f, (q, t, n), eps=1e-6, atol=1e-8, rtol=1e-6)


def _opcheck_samples():
    samples = []
    for dtype, rg, red, seed in [(torch.float32, True, "mean", 1), (torch.float64, True, "none", 2),
                                 (torch.float32, False, "sum", 3), (torch.float64, True, "sum", 4)]:
        inputs = make_inputs(9, 13, 5, dtype=dtype, seed=seed, id_range=6, requires_grad=rg)
        samples.append(op_args(inputs, 0.8, red))
    no_opt = make_inputs(4, 6, 3, seed=5, id_range=3, logq=False, weight=False)
    samples.append(op_args(no_opt, 1.0, "mean"))
    return samples


@pytest.mark.parametrize("args", _opcheck_samples())
def test_opcheck_forward(native, args):
    torch.library.opcheck(torch.ops.negrec.fused_loss.default, args)


def test_opcheck_backward(native):
    inputs = make_inputs(9, 13, 5, dtype=torch.float64, seed=8, id_range=6, requires_grad=False)
    for reduction in REDUCTIONS:
        args = op_args(inputs, 0.8, reduction)
        _, lse_all, lse_neg = torch.ops.negrec.fused_loss(*args)
        grad = torch.ones(9, dtype=torch.float64) if reduction == "none" else torch.tensor(1.0, dtype=torch.float64)
        torch.library.opcheck(torch.ops.negrec.fused_loss_backward.default,
                              (grad, *args, lse_all, lse_neg))


def test_torch_compile_fullgraph(native):
    inputs = make_inputs(33, 47, 16, seed=17, id_range=20)
    (q, t, n), kw = split(inputs)

    def step(q, t, n):
        return fused_loss(q * 1.5, t, n, temperature=0.5, **kw) + 0.1 * q.pow(2).mean()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    got = compiled(q, t, n)
    got_g = torch.autograd.grad(got, [q, t, n])
    want = step(q, t, n)
    want_g = torch.autograd.grad(want, [q, t, n])
    torch.testing.assert_close(got, want)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b)


def test_torch_compile_inductor(native):
    inputs = make_inputs(20, 30, 8, seed=18, id_range=10)
    (q, t, n), kw = split(inputs)
    compiled = torch.compile(lambda q, t, n: fused_loss(q, t, n, **kw).exp(), fullgraph=True)
    torch.testing.assert_close(compiled(q, t, n), fused_loss(q, t, n, **kw).exp())


# ---- numerical properties -------------------------------------------------------------------

def identity_problem(z: torch.Tensor, label: torch.Tensor, weight: torch.Tensor):
    """Inputs whose logits are exactly z [N, 1 + K]: query = z, target = e_0, negatives = e_k,
    so d loss / d query = d loss / d z."""
    n, k1 = z.shape
    eye = torch.eye(k1, dtype=z.dtype)
    q = z.clone().requires_grad_()
    return q, eye[:1].expand(n, k1).clone(), eye[1:].clone(), dict(
        target_ids=torch.zeros(n, dtype=torch.long), neg_ids=torch.arange(1, k1),
        label=label, weight=weight)


logit = st.floats(-60.0, 60.0, allow_nan=False)


@given(
    rows=st.lists(st.tuples(st.sampled_from([-1, 1]), st.floats(0.0, 3.0),
                            st.lists(logit, min_size=2, max_size=9)),
                  min_size=1, max_size=12),
    extreme=st.sampled_from([None, "p_to_0", "p_to_1"]),
)
def test_gradient_is_bounded(native, rows, extreme):
    k1 = max(len(r[2]) for r in rows)
    z = torch.full((len(rows), k1), -30.0, dtype=torch.float64)
    for i, (_, _, zs) in enumerate(rows):
        z[i, : len(zs)] = torch.tensor(zs, dtype=torch.float64)
    if extreme == "p_to_0":
        z[:, 0] = -200.0  # target far below the negatives: p ~ e^-200
    elif extreme == "p_to_1":
        z[:, 0] = 200.0
    label = torch.tensor([r[0] for r in rows])
    weight = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    q, t, n, kw = identity_problem(z, label, weight)
    loss = fused_loss(q, t, n, reduction="sum", **kw)
    assert torch.isfinite(loss)
    (g,) = torch.autograd.grad(loss, [q])
    l1 = g.abs().sum(dim=1)
    assert torch.all(l1 <= 2 * weight * (1 + 1e-9) + 1e-12), (l1, weight)
    # The bound is attained where the loss is largest: p -> 0 for positives, p -> 1 for NTR.
    if extreme == "p_to_0":
        torch.testing.assert_close(l1[label == 1], 2 * weight[label == 1])
        assert torch.all(l1[label == -1] <= 1e-50)
    if extreme == "p_to_1":
        torch.testing.assert_close(l1[label == -1], 2 * weight[label == -1])
        assert torch.all(l1[label == 1] <= 1e-50)


def test_ntr_gradient_stays_bounded_where_negative_weighted_ce_explodes(native):
    # A disliked item with p -> 0: NTR's gradient vanishes, while negative-weighted
    # cross-entropy (-w * -log p) pushes with the same constant force forever, and its loss
    # is unbounded below.
    z = torch.tensor([[-40.0, 0.0, 1.0, -2.0]], dtype=torch.float64)
    q, t, n, kw = identity_problem(z, torch.tensor([-1]), torch.tensor([1.0], dtype=torch.float64))
    loss = fused_loss(q, t, n, reduction="sum", **kw)
    (g,) = torch.autograd.grad(loss, [q])
    assert g.abs().sum() < 1e-15
    assert 0 <= loss.item() < 1e-15


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 20), k=st.integers(1, 30))
def test_ntr_step_lowers_p(native, seed, n, k):
    inputs = make_inputs(n, k, 6, dtype=torch.float64, seed=seed, id_range=10**6, logq=False,
                         scale=1.0, label_choices=(-1,))
    (q, t, nn), kw = split(inputs)
    loss = fused_loss(q, t, nn, reduction="sum", **kw)
    (gq,) = torch.autograd.grad(loss, [q])

    def p_target(qv):
        z = torch.cat([(qv * t).sum(-1, keepdim=True), qv @ nn.T], dim=1)
        return z.softmax(dim=1)[:, 0]

    p0 = p_target(q.detach())
    p1 = p_target(q.detach() - 1e-3 * gq)
    moved = p0 > 1e-6  # p that is already ~0 has a ~0 gradient
    assume(bool(moved.any()))
    assert torch.all(p1[moved] < p0[moved])


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 30), k=st.integers(0, 30),
       id_range=st.integers(1, 8))
def test_reductions_are_consistent(native, seed, n, k, id_range):
    inputs = make_inputs(n, k, 4, dtype=torch.float64, seed=seed, id_range=id_range,
                         requires_grad=False)
    (q, t, nn), kw = split(inputs)
    rows = fused_loss(q, t, nn, reduction="none", **kw)
    total = fused_loss(q, t, nn, reduction="sum", **kw)
    mean = fused_loss(q, t, nn, reduction="mean", **kw)
    torch.testing.assert_close(total, rows.sum())
    label, w = kw["label"], kw["weight"]
    has_neg = (kw["target_ids"][:, None] != kw["neg_ids"][None, :]).any(dim=1)
    contributes = (label == 1) | ((label == -1) & has_neg)
    denom = w[contributes].sum()
    want = total / denom if denom > 0 else torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(mean, want)
    assert torch.all(rows[~contributes] == 0)
    assert torch.all(rows >= 0)


def test_negative_row_with_every_candidate_masked_is_left_out(native):
    # Row 0: label -1 and every negative is its own target -> 1 - p = 0: contributes nothing.
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    n = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    kw = dict(target_ids=torch.tensor([5, 1, 2]), neg_ids=torch.tensor([5, 5]),
              label=torch.tensor([-1, 1, -1]), weight=torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    rows = fused_loss(q, t, n, reduction="none", **kw)
    assert rows[0].item() == 0.0 and torch.all(rows[1:] > 0)
    mean = fused_loss(q, t, n, reduction="mean", **kw)
    torch.testing.assert_close(mean, (rows[1] + rows[2]) / 3.0)  # weights 1 + 2
    (gq, gt) = torch.autograd.grad(mean, [q, t])
    assert torch.all(gq[0] == 0) and torch.all(gt[0] == 0)
    # ...and the same row with label +1 has p = 1: loss 0, but it does count in the mean.
    kw["label"] = torch.tensor([1, 1, -1])
    rows = fused_loss(q, t, n, reduction="none", **kw)
    assert rows[0].item() == 0.0
    mean = fused_loss(q, t, n, reduction="mean", **kw)
    torch.testing.assert_close(mean, (rows[1] + rows[2]) / 6.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(native, reduction):
    for n, k in [(0, 5), (4, 0), (0, 0)]:
        inputs = make_inputs(n, k, 3, dtype=torch.float64, seed=n + k)
        (q, t, nn), kw = split(inputs)
        loss = fused_loss(q, t, nn, reduction=reduction, **kw)
        assert loss.shape == ((n,) if reduction == "none" else ())
        assert torch.all(torch.isfinite(loss))
        if k == 0:
            # no negatives: positives have p = 1 (loss 0), negatives have 1 - p = 0 (left out)
            assert torch.all(loss == 0)
        grads = torch.autograd.grad(loss.sum(), [q, t, nn], allow_unused=True)
        for x, g in zip((q, t, nn), grads):
            assert g is None or (g.shape == x.shape and torch.all(g == 0))


def test_no_contributing_row_gives_zero_not_nan(native):
    inputs = make_inputs(8, 5, 3, dtype=torch.float64, seed=2, label_choices=(0,))
    (q, t, n), kw = split(inputs)
    loss = fused_loss(q, t, n, **kw)
    assert loss.item() == 0.0
    grads = torch.autograd.grad(loss, [q, t, n])
    assert all(torch.all(g == 0) for g in grads)
    kw["weight"] = torch.zeros(8, dtype=torch.float64)
    kw["label"] = torch.ones(8, dtype=torch.long)
    assert fused_loss(q, t, n, **kw).item() == 0.0


def test_full_softmax_equals_cross_entropy(native):
    g = torch.Generator().manual_seed(4)
    v, d, n = 500, 16, 64
    table = torch.randn(v, d, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    loss = fused_loss(h, table[y], table, target_ids=y, neg_ids=torch.arange(v),
                      label=torch.ones(n, dtype=torch.long))
    want = F.cross_entropy(h @ table.T, y)
    torch.testing.assert_close(loss, want)
    got_g = torch.autograd.grad(loss, [h, table])
    want_g = torch.autograd.grad(want, [h, table])
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b)


def test_nan_embeddings_propagate(native):
    inputs = make_inputs(6, 9, 4, dtype=torch.float32, seed=1, id_range=100, requires_grad=False,
                         label_choices=(1, -1))
    (q, t, n), kw = split(inputs)
    q = q.clone()
    q[2, 1] = float("nan")
    rows = fused_loss(q, t, n, reduction="none", **kw)
    assert torch.isnan(rows[2]) and torch.all(torch.isfinite(rows[[0, 1, 3, 4, 5]]))
    assert torch.isnan(fused_loss(q, t, n, reduction="mean", **kw))
    # Inf embeddings: +inf logits give inf - inf = NaN, -inf logits are a legitimate p = 0;
    # either way the native op agrees with the reference, NaN for NaN.
    for where in [(4, 0), (0, 3), (8, 1)]:
        n_inf = n.clone()
        n_inf[where] = float("inf")
        got = fused_loss(q, t, n_inf, reduction="none", **kw)
        want = fused_loss_reference(q, t, n_inf, reduction="none", **kw)
        torch.testing.assert_close(got, want, equal_nan=True)
        assert torch.isnan(got).any()
    # a whole NaN tile of candidates must not be skipped as if it were masked
    n_nan = torch.full_like(n, float("nan"))
    assert torch.all(torch.isnan(fused_loss(q, t, n_nan, reduction="none", **kw)))


# ---- input checks ------------------------------------------------------------------------------

def _bad_cases():
    def base():
        return make_inputs(4, 6, 3, dtype=torch.float32, seed=0, id_range=5, requires_grad=False)

    cases = []

    def case(name, exc, pattern, mutate, temperature=1.0, reduction="mean"):
        cases.append(pytest.param(base, mutate, temperature, reduction, exc, pattern, id=name))

    def setk(key, value):
        def m(d):
            d[key] = value(d) if callable(value) else value
        return m

    case("query-rank", ValueError, r"query must be a 2-D tensor \[N, D\]; got a 1-D tensor of shape \[4\]",
         setk("query", lambda d: d["query"][:, 0]))
    case("target-shape", ValueError, r"target_emb must have the shape of query \[4, 3\]; got shape \[4, 2\]",
         setk("target_emb", lambda d: d["target_emb"][:, :2]))
    case("neg-width", ValueError, r"neg_emb must have shape \[K, 3\] \(D = query.size\(1\)\); got shape \[6, 2\]",
         setk("neg_emb", lambda d: d["neg_emb"][:, :2]))
    case("neg-rank", ValueError, r"neg_emb must be a 2-D tensor \[K, D\]; got a 3-D tensor",
         setk("neg_emb", lambda d: d["neg_emb"][None]))
    case("int-query", TypeError, r"query must be float32, float64, bfloat16 or float16; got dtype (Long|torch.int64)",
         lambda d: d.update(query=d["query"].long(), target_emb=d["target_emb"].long(),
                            neg_emb=d["neg_emb"].long()))
    case("dtype-mix", TypeError, r"neg_emb must have query's dtype (Float|torch.float32); got (Double|torch.float64)",
         setk("neg_emb", lambda d: d["neg_emb"].double()))
    case("target-ids-dtype", TypeError, r"target_ids must be int64 \(torch.long\); got dtype (Int|torch.int32)",
         setk("target_ids", lambda d: d["target_ids"].int()))
    case("neg-ids-len", ValueError, r"neg_ids must have shape \[6\] \(K = neg_emb.size\(0\)\); got shape \[5\]",
         setk("neg_ids", lambda d: d["neg_ids"][:5]))
    case("label-float", TypeError, r"label must be a signed integer tensor",
         setk("label", lambda d: d["label"].float()))
    case("label-len", ValueError, r"label must have shape \[4\] \(N = query.size\(0\)\); got shape \[3\]",
         setk("label", lambda d: d["label"][:3]))
    case("label-value", ValueError, r"label must hold only -1 \(negative feedback\), 0 \(ignore\) or \+1 \(positive\); got 2 at index 1",
         setk("label", torch.tensor([1, 2, 0, -1])))
    case("negative-weight", ValueError, r"weight must be >= 0; got -0.5 at index 2",
         setk("weight", torch.tensor([1.0, 1.0, -0.5, 1.0])))
    case("nan-weight", ValueError, r"weight must be finite; got nan at index 0",
         setk("weight", torch.tensor([float("nan"), 1.0, 1.0, 1.0])))
    case("weight-len", ValueError, r"weight must have shape \[4\] \(N = query.size\(0\)\); got shape \[5\]",
         setk("weight", torch.ones(5)))
    case("inf-neg-logq", ValueError, r"neg_logq must be finite; got -inf at index 3",
         setk("neg_logq", torch.tensor([0.0, 0.0, 0.0, float("-inf"), 0.0, 0.0])))
    case("nan-target-logq", ValueError, r"target_logq must be finite; got nan at index 1",
         setk("target_logq", torch.tensor([0.0, float("nan"), 0.0, 0.0])))
    case("int-logq", TypeError, r"neg_logq must be a floating-point tensor; got dtype",
         setk("neg_logq", torch.zeros(6, dtype=torch.long)))
    case("zero-temperature", ValueError, r"temperature must be a finite number > 0; got 0", lambda d: None,
         temperature=0.0)
    case("negative-temperature", ValueError, r"temperature must be a finite number > 0; got -1", lambda d: None,
         temperature=-1.0)
    case("nan-temperature", ValueError, r"temperature must be a finite number > 0; got nan", lambda d: None,
         temperature=float("nan"))
    case("reduction", ValueError, r"reduction must be 'none', 'sum' or 'mean'; got 'avg'", lambda d: None,
         reduction="avg")
    case("meta-device", RuntimeError, r"all tensors must be on query's device cpu; neg_ids is on meta",
         setk("neg_ids", lambda d: d["neg_ids"].to("meta")))
    return cases


@pytest.mark.parametrize("make, mutate, temperature, reduction, exc, pattern", _bad_cases())
@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_inputs(native, impl, make, mutate, temperature, reduction, exc, pattern):
    inputs = make()
    mutate(inputs)
    (q, t, n), kw = split(inputs)
    fn = fused_loss if impl == "native" else fused_loss_reference
    with pytest.raises(exc, match=r"negrec\.fused_loss: " + pattern):
        fn(q, t, n, temperature=temperature, reduction=reduction, **kw)


def test_bad_inputs_through_torch_ops(native):
    inputs = make_inputs(4, 6, 3, requires_grad=False)
    inputs["label"] = torch.tensor([0, 0, 3, 0])
    with pytest.raises(ValueError, match="got 3 at index 2"):
        torch.ops.negrec.fused_loss(*op_args(inputs))


def test_weight_and_logq_do_not_take_gradients(native):
    inputs = make_inputs(4, 6, 3)
    (q, t, n), kw = split(inputs)
    for name in ("weight", "target_logq", "neg_logq"):
        bad = dict(kw)
        bad[name] = kw[name].clone().requires_grad_()
        with pytest.raises(ValueError, match=re.escape(f"{name} receives no gradient")):
            fused_loss(q, t, n, **bad)


def test_backward_checks_its_own_arguments(native):
    inputs = make_inputs(4, 6, 3, requires_grad=False)
    args = op_args(inputs, 1.0, "none")
    _, lse_all, lse_neg = torch.ops.negrec.fused_loss(*args)
    with pytest.raises(ValueError, match=r"grad_loss must have shape \[4\] for reduction='none'"):
        torch.ops.negrec.fused_loss_backward(torch.ones(()), *args, lse_all, lse_neg)
    with pytest.raises(ValueError, match=r"lse_neg must have shape \[4\]"):
        torch.ops.negrec.fused_loss_backward(torch.ones(4), *args, lse_all, lse_neg[:2])
    with pytest.raises(TypeError, match=r"lse_all and lse_neg must have the accumulation dtype"):
        torch.ops.negrec.fused_loss_backward(torch.ones(4), *args, lse_all.double(), lse_neg)


def test_math_identity_of_the_stable_form(native):
    # -log(1 - p) computed as softplus(z0 - B) stays accurate where 1 - p rounds to 0 in
    # float64: z0 - B = 40 gives -log(1 - p) = 40 + log1p(e^-40).
    z = torch.tensor([[40.0, 0.0]], dtype=torch.float64)
    q, t, n, kw = identity_problem(z, torch.tensor([-1]), torch.tensor([1.0], dtype=torch.float64))
    loss = fused_loss(q, t, n, reduction="sum", **kw)
    assert loss.item() == pytest.approx(40.0 + math.log1p(math.exp(-40.0)), rel=1e-15)
