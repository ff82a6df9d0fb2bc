"""torch.ops.negrec.fused_loss on CUDA: the kernels against the float64 reference and the CPU
kernel, low-precision error bounded by a naive same-dtype implementation's, autograd,
registration (opcheck), torch.compile, input checks, N*K beyond 2^31, and the special rows.

Skipped as a whole without a GPU or without CUDA kernels in the build; benches/gpu_check.sh
builds the extension with NEGREC_CUDA=ON and runs this file on a GPU machine.
"""

from __future__ import annotations

import os

import pytest
import torch

import negrec


def _skip_or_fail(reason: str) -> None:
    # benches/gpu_check.sh sets NEGREC_REQUIRE_CUDA=1: there, skipping would hide a broken setup.
    if os.environ.get("NEGREC_REQUIRE_CUDA") == "1":
        raise RuntimeError(f"NEGREC_REQUIRE_CUDA=1 but the CUDA tests cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)


if not torch.cuda.is_available():
    _skip_or_fail(f"no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda})")
if not negrec.cuda_kernels_available():
    _info = negrec.build_info()
    _skip_or_fail("negrec._C was built without its CUDA kernels ("
                  + str(_info.get("CUDA_REASON", _info.get("reason"))) + "); rebuild with NEGREC_CUDA=ON")

import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fused_loss_inputs import make_inputs, op_args, split  # noqa: E402
from negrec.ops import fused_loss, fused_loss_reference  # noqa: E402

pytestmark = pytest.mark.cuda

DEV = torch.device("cuda")
REDUCTIONS = ("mean", "sum", "none")
LOW = (torch.bfloat16, torch.float16)


def on(inputs: dict, device, dtype=None) -> dict:
    """A copy of make_inputs' dict on `device` (embeddings optionally cast), leaves preserved."""
    out = {}
    for k, v in inputs.items():
        if v is None:
            out[k] = None
        elif k in ("query", "target_emb", "neg_emb"):
            x = v.detach().to(device=device, dtype=dtype or v.dtype)
            out[k] = x.requires_grad_(v.requires_grad)
        else:
            out[k] = v.detach().to(device)
    return out


def as_float64(inputs: dict) -> dict:
    """Float64 copies of the embeddings and float vectors (same values, rounded inputs kept)."""
    out = {}
    for k, v in inputs.items():
        if v is not None and v.is_floating_point():
            x = v.detach().double()
            out[k] = x.requires_grad_(v.requires_grad) if k in ("query", "target_emb", "neg_emb") else x
        else:
            out[k] = v
    return out


def loss_and_grads(fn, inputs, temperature, reduction, upstream_seed=1, **extra):
    (q, t, n), kw = split(inputs)
    loss = fn(q, t, n, temperature=temperature, reduction=reduction, **kw, **extra)
    g = torch.Generator().manual_seed(upstream_seed)
    upstream = torch.randn(loss.shape, generator=g, dtype=torch.float64).to(loss.device, loss.dtype)
    grads = torch.autograd.grad((loss * upstream).sum(), [q, t, n], allow_unused=True)
    return loss.detach(), [torch.zeros_like(x) if gx is None else gx for x, gx in zip((q, t, n), grads)]


def amax(t: torch.Tensor) -> float:
    """Largest |entry| (0 for an empty tensor): the scale of a gradient's errors."""
    return t.detach().abs().max().item() if t.numel() else 0.0


def assert_same(a, b, rtol, atol, what):
    torch.testing.assert_close(a.cpu().double(), b.cpu().double(), rtol=rtol, atol=atol,
                               equal_nan=True, msg=lambda m: f"{what}: {m}")


# ---- agreement with the CPU kernel (float64: every semantic detail) ---------------------------

SHAPES = [
    (1, 1, 1), (17, 31, 13), (64, 200, 32), (5, 3, 64),
    (130, 70, 65),       # several SIMT D chunks, partial row and candidate tiles
    (3, 5000, 8),        # few rows, many candidates: the forward/grad-query splits
    (5000, 3, 8),        # many rows, few candidates: the grad-neg splits
    (200, 300, 129),     # three gradient column slices
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_float64_matches_cpu_kernel(reduction, shape):
    n, k, d = shape
    base = make_inputs(n, k, d, dtype=torch.float64, seed=n * 7 + k, id_range=max(2, k // 3))
    want, want_g = loss_and_grads(fused_loss, base, 0.7, reduction)
    got, got_g = loss_and_grads(fused_loss, on(base, DEV), 0.7, reduction)
    # Same float64 math, different summation orders (tiles, splits, warp reductions).
    assert_same(got, want, 1e-10, 1e-12, "loss")
    for name, a, b in zip(("query", "target_emb", "neg_emb"), got_g, want_g):
        assert_same(a, b, 1e-9, 1e-11 * max(1.0, amax(b)), f"grad {name}")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 150), k=st.integers(0, 150), d=st.integers(0, 80),
    id_range=st.integers(1, 60), seed=st.integers(0, 2**31 - 1),
    reduction=st.sampled_from(REDUCTIONS), temperature=st.floats(0.05, 5.0),
    logq=st.booleans(), weight=st.booleans(), scale=st.sampled_from([0.1, 1.0, 4.0]),
)
def test_float64_matches_cpu_kernel_property(n, k, d, id_range, seed, reduction, temperature,
                                             logq, weight, scale):
    base = make_inputs(n, k, d, dtype=torch.float64, seed=seed, id_range=id_range, logq=logq,
                       weight=weight, scale=scale)
    want, want_g = loss_and_grads(fused_loss, base, temperature, reduction)
    got, got_g = loss_and_grads(fused_loss, on(base, DEV), temperature, reduction)
    assert_same(got, want, 1e-10, 1e-12, "loss")
    for a, b in zip(got_g, want_g):
        assert_same(a, b, 1e-9, 1e-11 * max(1.0, amax(b)), "grad")


def test_lse_outputs_match_cpu_kernel():
    base = make_inputs(300, 500, 24, dtype=torch.float64, seed=3, id_range=40, requires_grad=False)
    want = torch.ops.negrec.fused_loss(*op_args(base, 0.5, "none"))
    got = torch.ops.negrec.fused_loss(*op_args(on(base, DEV), 0.5, "none"))
    for name, a, b in zip(("loss", "lse_all", "lse_neg"), got, want):
        assert a.device.type == "cuda" and a.dtype == torch.float64
        assert_same(a, b, 1e-10, 1e-12, name)
    # rows with label 0 are not computed: both log-sum-exps are exactly 0 there
    idle = base["label"] == 0
    assert torch.all(got[1].cpu()[idle] == 0) and torch.all(got[2].cpu()[idle] == 0)


# ---- float32 (SIMT) against float64 --------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(64, 200, 32), (300, 2000, 100), (8, 20000, 16)],
                         ids=lambda s: "x".join(map(str, s)))
def test_float32_matches_float64_reference(reduction, shape):
    n, k, d = shape
    base = make_inputs(n, k, d, dtype=torch.float32, seed=k, id_range=k // 2)
    got, got_g = loss_and_grads(fused_loss, on(base, DEV), 0.8, reduction)
    want, want_g = loss_and_grads(fused_loss_reference, as_float64(on(base, DEV)), 0.8, reduction)
    # float32 accumulation of D-term dot products and K-term sums: ~1e-6 relative.
    assert_same(got, want, 2e-5, 2e-6, "loss")
    for name, a, b in zip(("query", "target_emb", "neg_emb"), got_g, want_g):
        # gradients are sums of K (or N) terms of either sign: error relative to their scale
        assert_same(a, b, 1e-4, 2e-6 * amax(b), f"grad {name}")


# ---- bfloat16 / float16 (tensor cores) against float64, bounded by a naive same-dtype run -----

# Error bounds relative to the largest gradient entry: the outputs are rounded once to the input
# dtype (2^-9 relative for bf16, 2^-12 for fp16) and the backward's probabilities are rounded
# to it for the tensor cores (same orders), so a few units of those roundings.
GRAD_REL_BOUND = {torch.bfloat16: 2.0**-6, torch.float16: 2.0**-8}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("d", [13, 64, 128, 256, 300])  # 300: wider than the tensor-core tiles
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_low_precision_error_bounded_by_naive(dtype, d, reduction):
    n, k = 700, 1500
    base = make_inputs(n, k, d, dtype=dtype, seed=d, id_range=1000, scale=0.3)
    native = on(base, DEV)
    got, got_g = loss_and_grads(fused_loss, native, 0.5, reduction)
    # The reference in float64 on exactly the same (rounded) inputs.
    want, want_g = loss_and_grads(fused_loss_reference, as_float64(native), 0.5, reduction)
    # The naive same-dtype implementation: everything (logits, LSE, softmax, gradients) in dtype.
    naive, naive_g = loss_and_grads(fused_loss_reference, on(base, DEV), 0.5, reduction,
                                    upcast=False)
    # The loss accumulates in float32 from exact products of the rounded inputs.
    assert got.dtype == torch.float32
    assert_same(got, want, 2e-5, 2e-6, "loss")
    naive_loss_err = (naive.double() - want).abs().nan_to_num(float("inf")).item()
    assert (got.double() - want).abs().item() <= naive_loss_err + 1e-6
    for name, a, b, c in zip(("query", "target_emb", "neg_emb"), got_g, want_g, naive_g):
        assert a.dtype == dtype
        err = (a.double() - b).abs()
        naive_err = (c.double() - b).abs().nan_to_num(float("inf"))
        scale = amax(b)
        ulp = torch.finfo(dtype).eps * scale  # one output rounding at the largest entry
        assert err.max().item() <= naive_err.max().item() + ulp, (name, err.max(), naive_err.max())
        assert err.mean().item() <= naive_err.mean().item() + ulp / 4, (name, err.mean(), naive_err.mean())
        assert err.max().item() <= GRAD_REL_BOUND[dtype] * scale + 1e-30, (name, err.max(), scale)


def test_float16_small_gradients_do_not_underflow():
    # A mean over many rows makes every dL/dz entry ~ 1 / (N K) ~ 1e-9, below float16's
    # smallest subnormal (6e-8): a naive float16 backward returns zeros for grad_neg. The
    # kernels scale the tensor-core operand by a power of two and keep float32 accumulators.
    base = make_inputs(8192, 1024, 32, dtype=torch.float16, seed=4, id_range=10**6, scale=0.3,
                       label_choices=(1, -1))
    got, got_g = loss_and_grads(fused_loss, on(base, DEV), 1.0, "mean")
    want, want_g = loss_and_grads(fused_loss_reference, as_float64(on(base, DEV)), 1.0, "mean")
    for a, b in zip(got_g, want_g):
        scale = amax(b)
        assert scale > 0
        # float16's subnormal spacing (6e-8) is far coarser than these entries: compare
        # against float16's own resolution of the result (its outputs are rounded to it).
        torch.testing.assert_close(a.double(), b, rtol=2.0**-8, atol=max(2.0**-8 * scale, 6e-8))


# ---- autograd, registration, compile ------------------------------------------------------------

def _opcheck_samples():
    samples = []
    for dtype, rg, red, seed in [(torch.float32, True, "mean", 1), (torch.float64, True, "none", 2),
                                 (torch.bfloat16, True, "sum", 3), (torch.float16, False, "mean", 4)]:
        inputs = make_inputs(9, 13, 16, dtype=dtype, seed=seed, id_range=6, requires_grad=rg,
                             device=DEV)
        samples.append(op_args(inputs, 0.8, red))
    no_opt = make_inputs(4, 6, 3, seed=5, id_range=3, logq=False, weight=False, device=DEV)
    samples.append(op_args(no_opt, 1.0, "mean"))
    return samples


@pytest.mark.parametrize("idx", range(5))
def test_opcheck_forward(idx):
    torch.library.opcheck(torch.ops.negrec.fused_loss.default, _opcheck_samples()[idx])


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_opcheck_backward(dtype):
    inputs = make_inputs(9, 13, 16, dtype=dtype, seed=8, id_range=6, requires_grad=False, device=DEV)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    for reduction in REDUCTIONS:
        args = op_args(inputs, 0.8, reduction)
        _, lse_all, lse_neg = torch.ops.negrec.fused_loss(*args)
        grad = (torch.ones(9, dtype=acc, device=DEV) if reduction == "none"
                else torch.tensor(1.0, dtype=acc, device=DEV))
        torch.library.opcheck(torch.ops.negrec.fused_loss_backward.default,
                              (grad, *args, lse_all, lse_neg))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    inputs = make_inputs(6, 7, 4, dtype=torch.float64, seed=21, id_range=5, device=DEV)
    (q, t, n), kw = split(inputs)

    def f(q, t, n):
        return fused_loss(q, t, n, temperature=0.9, reduction=reduction, **kw)

    assert torch.autograd.gradcheck(f, (q, t, n), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_torch_compile_fullgraph(backend, dtype):
    inputs = make_inputs(33, 47, 16, dtype=dtype, seed=17, id_range=20, device=DEV)
    (q, t, n), kw = split(inputs)

    def step(q, t, n):
        return fused_loss(q * 1.5, t, n, temperature=0.5, **kw) + 0.1 * q.float().pow(2).mean()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    got = compiled(q, t, n)
    got_g = torch.autograd.grad(got, [q, t, n])
    want = step(q, t, n)
    want_g = torch.autograd.grad(want, [q, t, n])
    # Both run the same kernels on the same values (inductor may fuse q * 1.5 differently,
    # which can change one rounding of the scaled low-precision query).
    tol = {} if dtype == torch.float32 else dict(rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(got, want, **tol)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b, **tol)


def test_results_are_deterministic():
    # No atomics: split partials are merged in a fixed order, so reruns agree bit for bit.
    for dtype in (torch.float32, torch.bfloat16):
        inputs = make_inputs(700, 3000, 64, dtype=dtype, seed=2, id_range=500, device=DEV)
        a, ga = loss_and_grads(fused_loss, inputs, 0.7, "mean")
        b, gb = loss_and_grads(fused_loss, inputs, 0.7, "mean")
        assert torch.equal(a, b)
        for x, y in zip(ga, gb):
            assert torch.equal(x, y)


def test_runs_on_the_current_stream():
    inputs = make_inputs(200, 300, 32, seed=6, id_range=50, device=DEV)
    want, want_g = loss_and_grads(fused_loss, inputs, 1.0, "sum")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        got, got_g = loss_and_grads(fused_loss, inputs, 1.0, "sum")
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(got, want)
    for a, b in zip(got_g, want_g):
        assert torch.equal(a, b)


# ---- input layouts and checks ---------------------------------------------------------------------

def test_non_contiguous_and_misaligned_inputs():
    base = make_inputs(40, 60, 16, dtype=torch.bfloat16, seed=13, id_range=20, requires_grad=False,
                       device=DEV)
    (q0, t0, n0), kw0 = split(base)
    want = fused_loss(q0, t0, n0, reduction="none", **kw0)
    q = q0.T.contiguous().T                      # transposed layout
    flat = torch.zeros(40 * 16 + 1, dtype=torch.bfloat16, device=DEV)
    t = flat[1:].view(40, 16)                     # contiguous rows, base 2 bytes off alignment
    t.copy_(t0)
    assert t.data_ptr() % 16 != 0 and not q.is_contiguous()
    n = torch.zeros(120, 16, dtype=torch.bfloat16, device=DEV)
    n[::2] = n0
    got = fused_loss(q, t, n[::2], reduction="none", **kw0)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["target_emb", "neg_ids", "label", "weight", "neg_logq"])
def test_mixed_devices_name_the_argument(name):
    inputs = make_inputs(4, 6, 3, seed=0, id_range=5, requires_grad=False, device=DEV)
    inputs[name] = inputs[name].cpu()
    (q, t, n), kw = split(inputs)
    with pytest.raises(RuntimeError, match=rf"negrec\.fused_loss: all tensors must be on query's "
                                           rf"device cuda:\d+; {name} is on cpu"):
        fused_loss(q, t, n, **kw)
    with pytest.raises(RuntimeError, match=rf"{name} is on cpu"):
        torch.ops.negrec.fused_loss(*op_args(inputs))


def test_query_on_cpu_and_the_rest_on_cuda():
    inputs = make_inputs(4, 6, 3, seed=0, id_range=5, requires_grad=False, device=DEV)
    inputs["query"] = inputs["query"].cpu()
    (q, t, n), kw = split(inputs)
    with pytest.raises(RuntimeError, match=r"all tensors must be on query's device cpu; "
                                           r"target_emb is on cuda"):
        fused_loss(q, t, n, **kw)


def test_value_checks_on_cuda():
    inputs = make_inputs(4, 6, 3, requires_grad=False, device=DEV)
    inputs["label"] = torch.tensor([0, 0, 3, 0], device=DEV)
    with pytest.raises(ValueError, match="label must hold only .* got 3 at index 2"):
        torch.ops.negrec.fused_loss(*op_args(inputs))
    inputs = make_inputs(4, 6, 3, requires_grad=False, device=DEV)
    inputs["weight"] = torch.tensor([1.0, 1.0, -0.5, 1.0], device=DEV)
    with pytest.raises(ValueError, match="weight must be >= 0; got -0.5 at index 2"):
        torch.ops.negrec.fused_loss(*op_args(inputs))


def test_backward_checks_its_own_arguments():
    inputs = make_inputs(4, 6, 3, requires_grad=False, device=DEV)
    args = op_args(inputs, 1.0, "none")
    _, lse_all, lse_neg = torch.ops.negrec.fused_loss(*args)
    with pytest.raises(ValueError, match=r"grad_loss must have shape \[4\] for reduction='none'"):
        torch.ops.negrec.fused_loss_backward(torch.ones((), device=DEV), *args, lse_all, lse_neg)
    with pytest.raises(RuntimeError, match=r"grad_loss is on cpu"):
        torch.ops.negrec.fused_loss_backward(torch.ones(4), *args, lse_all, lse_neg)


# ---- N * K beyond 2^31 ---------------------------------------------------------------------------

def chunked_float64_reference(inputs: dict, temperature: float, rows_per_chunk: int = 4096):
    """Sum-reduced loss, per-row lse and gradients in float64, row chunk by row chunk (each
    chunk materialises only [chunk, K]); valid because a sum over rows splits over chunks."""
    x64 = as_float64(inputs)
    n_rows = x64["query"].shape[0]
    neg = x64["neg_emb"].detach().requires_grad_()
    total = torch.zeros((), dtype=torch.float64, device=DEV)
    lse_all = torch.empty(n_rows, dtype=torch.float64, device=DEV)
    lse_neg = torch.empty_like(lse_all)
    gq = torch.empty_like(x64["query"])
    gt = torch.empty_like(x64["target_emb"])
    gn = torch.zeros_like(neg)
    for r0 in range(0, n_rows, rows_per_chunk):
        sl = slice(r0, min(n_rows, r0 + rows_per_chunk))
        q = x64["query"][sl].detach().requires_grad_()
        t = x64["target_emb"][sl].detach().requires_grad_()
        kw = dict(target_ids=x64["target_ids"][sl], neg_ids=x64["neg_ids"], label=x64["label"][sl],
                  weight=x64["weight"][sl], target_logq=x64["target_logq"][sl],
                  neg_logq=x64["neg_logq"])
        loss, la, ln = fused_loss_reference(q, t, neg, temperature=temperature, reduction="sum",
                                            return_lse=True, **kw)
        gq[sl], gt[sl], gn_chunk = torch.autograd.grad(loss, [q, t, neg])
        gn += gn_chunk
        total += loss.detach()
        lse_all[sl], lse_neg[sl] = la, ln
    return total, lse_all, lse_neg, [gq, gt, gn]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_more_than_2_31_logits(dtype):
    n, k, d = 70000, 32768, 8
    assert n * k > 2**31
    inputs = make_inputs(n, k, d, dtype=dtype, seed=31, scale=0.5, device=DEV)
    loss, lse_all, lse_neg = torch.ops.negrec.fused_loss(*op_args(inputs, 0.5, "sum"))
    (q, t, nn), kw = split(inputs)
    grads = torch.autograd.grad(fused_loss(q, t, nn, temperature=0.5, reduction="sum", **kw),
                                [q, t, nn])
    want, want_all, want_neg, want_g = chunked_float64_reference(inputs, 0.5)
    active = inputs["label"] != 0
    assert_same(loss, want, 2e-5, 0, "loss")
    assert_same(lse_all[active], want_all[active], 2e-5, 2e-5, "lse_all")
    assert_same(lse_neg[active], want_neg[active], 2e-5, 2e-5, "lse_neg")
    rel = 1e-4 if dtype == torch.float32 else GRAD_REL_BOUND[dtype]
    for name, a, b in zip(("query", "target_emb", "neg_emb"), grads, want_g):
        scale = amax(b)
        assert (a.double() - b).abs().max().item() <= rel * scale, name


# ---- special rows and shapes ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_full_softmax_equals_cross_entropy(dtype):
    g = torch.Generator().manual_seed(4)
    v, d, n = 3000, 64, 256
    table = (torch.randn(v, d, generator=g, dtype=torch.float64) * 0.5).to(DEV, dtype).requires_grad_()
    h = (torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5).to(DEV, dtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g).to(DEV)
    loss = fused_loss(h, table[y], table, target_ids=y, neg_ids=torch.arange(v, device=DEV),
                      label=torch.ones(n, dtype=torch.long, device=DEV))
    t64, h64 = table.detach().double().requires_grad_(), h.detach().double().requires_grad_()
    want = F.cross_entropy(h64 @ t64.T, y)
    if dtype == torch.float64:
        tol = dict(rtol=1e-10, atol=1e-12)
    else:  # float32 accumulation of the same (rounded) values
        tol = dict(rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(loss.double(), want, **tol)
    got_g = torch.autograd.grad(loss, [h, table])
    want_g = torch.autograd.grad(want, [h64, t64])
    for a, b in zip(got_g, want_g):
        rel = {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, GRAD_REL_BOUND.get(dtype))
        assert (a.double() - b).abs().max().item() <= rel * amax(b)


def test_negative_row_with_every_candidate_masked_is_left_out():
    q = torch.randn(3, 4, dtype=torch.float64, device=DEV, requires_grad=True)
    t = torch.randn(3, 4, dtype=torch.float64, device=DEV, requires_grad=True)
    n = torch.randn(2, 4, dtype=torch.float64, device=DEV, requires_grad=True)
    kw = dict(target_ids=torch.tensor([5, 1, 2], device=DEV), neg_ids=torch.tensor([5, 5], device=DEV),
              label=torch.tensor([-1, 1, -1], device=DEV),
              weight=torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64, device=DEV))
    rows = fused_loss(q, t, n, reduction="none", **kw)
    assert rows[0].item() == 0.0 and torch.all(rows[1:] > 0)
    mean = fused_loss(q, t, n, reduction="mean", **kw)
    torch.testing.assert_close(mean, (rows[1] + rows[2]) / 3.0)
    gq, gt = torch.autograd.grad(mean, [q, t])
    assert torch.all(gq[0] == 0) and torch.all(gt[0] == 0)
    kw["label"] = torch.tensor([1, 1, -1], device=DEV)
    rows = fused_loss(q, t, n, reduction="none", **kw)
    assert rows[0].item() == 0.0
    torch.testing.assert_close(fused_loss(q, t, n, reduction="mean", **kw), (rows[1] + rows[2]) / 6.0)


def test_no_contributing_row_gives_zero_not_nan():
    for dtype in (torch.float32, torch.bfloat16):
        inputs = make_inputs(8, 5, 16, dtype=dtype, seed=2, label_choices=(0,), device=DEV)
        (q, t, n), kw = split(inputs)
        loss = fused_loss(q, t, n, **kw)
        assert loss.item() == 0.0
        assert all(torch.all(g == 0) for g in torch.autograd.grad(loss, [q, t, n]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(dtype, reduction):
    for n, k in [(0, 5), (4, 0), (0, 0)]:
        inputs = make_inputs(n, k, 8, dtype=dtype, seed=n + k, device=DEV)
        (q, t, nn), kw = split(inputs)
        loss = fused_loss(q, t, nn, reduction=reduction, **kw)
        assert loss.shape == ((n,) if reduction == "none" else ())
        assert torch.all(torch.isfinite(loss))
        if k == 0:
            assert torch.all(loss == 0)  # positives have p = 1, negatives are left out
        grads = torch.autograd.grad(loss.sum(), [q, t, nn], allow_unused=True)
        for x, g in zip((q, t, nn), grads):
            assert g is None or (g.shape == x.shape and torch.all(g == 0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_non_finite_embeddings_propagate_like_the_cpu_kernel(dtype):
    base = make_inputs(6, 9, 16, dtype=dtype, seed=1, id_range=100, requires_grad=False,
                       label_choices=(1, -1))
    (q, t, n), kw = split(base)
    q = q.clone()
    q[2, 1] = float("nan")
    cases = [(q, t, n)]
    for where in [(4, 0), (0, 3), (8, 1)]:
        n_inf = n.clone()
        n_inf[where] = float("inf")
        cases.append((q, t, n_inf))
    cases.append((q, t, torch.full_like(n, float("nan"))))
    for qq, tt, nn in cases:
        want = fused_loss(qq.float(), tt.float(), nn.float(), reduction="none", **kw)
        got = fused_loss(qq.to(DEV), tt.to(DEV), nn.to(DEV), reduction="none",
                         **{k: v.to(DEV) for k, v in kw.items()})
        assert torch.equal(torch.isnan(got.cpu()), torch.isnan(want))
        assert torch.equal(torch.isinf(got.cpu()), torch.isinf(want))
        finite = torch.isfinite(want)
        torch.testing.assert_close(got.cpu()[finite], want[finite], rtol=2e-5, atol=2e-6)
