"""Regression tests of issue 16 ("Reliability, round 2") for the native extension negrec._C.

- C1: bound pybind11 objects are unusable until constructed and constructed only once, also
  through crafted pickles (run in subprocesses: a segfault must fail a test, not kill pytest);
- C2: the CPU tile configuration (and the float32 instruction-set switch) may change while
  kernels run in other threads: no memory corruption, unchanged results;
- W2: huge temperatures (1/T rounding to 0 in float32) with accidental hits: no NaN, the
  reference's values; temperatures whose 1/T overflows are rejected;
- W3: float64 weights and logQ beyond the float32 range with float32 inputs;
- W4: higher-order gradients raise instead of silently returning nothing;
- unclear errors: None, wrong Python types, non-dense tensors, negative or out-of-range ints
  at every Python-facing entry point of negrec._C: one-line errors naming the argument.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fused_loss_inputs import make_inputs, op_args, split
from negrec.ops import fused_loss, fused_loss_reference


TESTS_DIR = Path(__file__).resolve().parent


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    assert "Exception raised from" not in msg, msg
    return msg


def run_python(code: str, tmp_path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (outside the repository, so the installed negrec is
    imported) and returns the finished process; a crash shows as a non-zero return code."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def assert_clean_exit(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (f"the child process died with return code {proc.returncode} "
                                  f"(-11 / 139: segfault, -6 / 134: abort)\nstdout:\n"
                                  f"{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc.stdout


# ============================================================================================
# C1: bound objects
# ============================================================================================

UNCONSTRUCTED_CALLS = ["x.sample(3, 0)", "len(x)", "x.probabilities()", "x.__getstate__()",
                       "pickle.dumps(x)", "copy.deepcopy(x)"]


def test_unconstructed_alias_table_raises_instead_of_crashing(native, tmp_path):
    """AliasTable.__new__(AliasTable) has no C++ object: every method raises a TypeError
    (it used to segfault in sample() and read garbage in len() / probabilities())."""
    out = assert_clean_exit(run_python(f"""
        import copy, pickle
        import torch  # (negrec._C links against torch's libraries)
        import negrec._C as C
        A = C.AliasTable
        for call in {UNCONSTRUCTED_CALLS!r}:
            x = A.__new__(A)
            try:
                exec(call)
            except TypeError as e:
                print("TypeError", call, "|", e, flush=True)
            else:
                print("NO ERROR", call, flush=True)
        """, tmp_path))
    lines = out.strip().splitlines()
    assert len(lines) == len(UNCONSTRUCTED_CALLS), out
    for line in lines:
        assert line.startswith("TypeError"), line
        assert "was never initialised" in line and "create it as AliasTable(...)" in line, line


def test_crafted_pickles_cannot_make_an_unconstructed_or_twice_constructed_table(native, tmp_path):
    """A pickle without state (NEWOBJ, no BUILD) gives an unconstructed table whose methods
    raise; a pickle that sets the state twice (two BUILDs) raises instead of silently keeping
    the first state."""
    out = assert_clean_exit(run_python("""
        import pickle
        import torch
        import negrec._C as C

        no_state = b"\\x80\\x02cnegrec._C\\nAliasTable\\n)\\x81."  # PROTO GLOBAL () NEWOBJ STOP
        x = pickle.loads(no_state)
        try:
            x.sample(5, 1)
        except TypeError as e:
            print("no-state sample:", e)

        def state_ops(weights):
            body = pickle.dumps((torch.tensor(weights, dtype=torch.float64),), protocol=2)
            return body[2:-1]  # without PROTO and STOP
        twice = (b"\\x80\\x02cnegrec._C\\nAliasTable\\n)\\x81" + state_ops([1.0, 2.0]) + b"b"
                 + state_ops([5.0, 0.0, 0.0]) + b"b.")
        try:
            t = pickle.loads(twice)
        except TypeError as e:
            print("two BUILDs:", e)
        else:
            print("two BUILDs: loaded a table of", len(t), "items")
        """, tmp_path))
    assert "no-state sample: AliasTable.sample: this AliasTable was never initialised" in out, out
    assert ("two BUILDs: AliasTable.__setstate__: this object is already initialised" in out), out


def test_alias_table_is_constructed_once(native):
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    t = native.AliasTable(w)
    want = t.sample(50, 9)
    for call in (lambda: t.__init__(torch.ones(7, dtype=torch.float64)),
                 lambda: t.__setstate__((torch.ones(7, dtype=torch.float64),))):
        with pytest.raises(TypeError, match="already initialised") as info:
            call()
        one_line(info.value)
    assert len(t) == 3 and torch.equal(t.sample(50, 9), want)  # unchanged
    # the normal paths still work: construction, pickling, a subclass that calls __init__
    back = pickle.loads(pickle.dumps(t))
    assert torch.equal(back.sample(50, 9), want)

    class Sub(native.AliasTable):
        def __init__(self, weights):
            super().__init__(weights)

    assert torch.equal(Sub(w).sample(50, 9), want)
    with pytest.raises(TypeError, match="was never initialised"):
        Sub.__new__(Sub).probabilities()


# ============================================================================================
# C2: tuning knobs changed while kernels run
# ============================================================================================

def test_tile_config_flips_while_kernels_run_in_threads(native, tmp_path):
    """Worker threads run forward + backward while another thread keeps changing the tile
    shape (and forcing / releasing the scalar float32 kernels). Each call uses one snapshot:
    no write past a tile buffer (a glibc abort or a segfault before the fix) and results equal
    those of an undisturbed run."""
    out = assert_clean_exit(run_python("""
        import sys, threading, time
        sys.path.insert(0, TESTS_DIR)
        import torch
        import negrec._C as C
        from negrec.ops import fused_loss
        from fused_loss_inputs import make_inputs, split

        torch.set_num_threads(1)
        cases = []
        for dtype in (torch.float64, torch.float32):
            (q, t, n), kw = split(make_inputs(96, 2000, 8, dtype=dtype, seed=3, id_range=500))
            kw["reduction"] = "none"
            loss = fused_loss(q, t, n, **kw)
            grads = torch.autograd.grad(loss.sum(), [q, t, n])
            cases.append((q, t, n, kw, loss.detach(), grads))

        # small tiles next to large ones: a call whose buffers were sized for (4, 16) and that
        # read cols = 4096 again wrote far past them
        configs = [(4, 16), (64, 4096), (3, 50), (128, 1024), (256, 65536), (2, 20000)]
        stop = threading.Event()
        errors = []

        def flip():
            i = 0
            while not stop.is_set():
                C._set_cpu_tile_config(*configs[i % len(configs)])
                C._force_scalar_cpu_kernels(i % 3 == 0)
                i += 1
                # a flip every ~0.1 ms is still many within each call (each takes milliseconds)
                # and leaves the cores to the workers instead of spinning on one of them
                time.sleep(1e-4)
            C._set_cpu_tile_config(128, 1024)
            C._force_scalar_cpu_kernels(False)

        def work(seed):
            try:
                for it in range(12):
                    q, t, n, kw, want, want_g = cases[(seed + it) % 2]
                    loss = fused_loss(q, t, n, **kw)
                    grads = torch.autograd.grad(loss.sum(), [q, t, n])
                    tol = dict(rtol=1e-9, atol=1e-12) if q.dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
                    torch.testing.assert_close(loss.detach(), want, **tol)
                    for a, b in zip(grads, want_g):
                        torch.testing.assert_close(a, b, **tol)
            except Exception as e:
                errors.append(repr(e))

        flipper = threading.Thread(target=flip)
        workers = [threading.Thread(target=work, args=(s,)) for s in range(3)]
        flipper.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        flipper.join()
        print("errors:", errors)
        print("config after:", C._get_cpu_tile_config())
        """.replace("TESTS_DIR", repr(str(TESTS_DIR))), tmp_path, timeout=600))
    assert "errors: []" in out, out


def test_tile_config_values_are_validated(native):
    old = native._get_cpu_tile_config()
    try:
        for rows, cols, exc, pattern in [
                (0, 5, ValueError, r"rows must be an int in \[1, 65536\]; got int 0"),
                (5, -1, ValueError, r"cols must be an int in \[1, 1048576\]; got int -1"),
                (None, 5, TypeError, r"rows must be an int in \[1, 65536\]; got None"),
                (4.0, 5, TypeError, r"rows must be an int .*; got float 4.0"),
                (65536, 1048576, ValueError, r"rows \* cols must be <= 16777216"),
                (2**70, 1, ValueError, r"rows must be an int in \[1, 65536\]; got int 1180591620717411303424")]:
            with pytest.raises(exc, match=r"_set_cpu_tile_config: " + pattern) as info:
                native._set_cpu_tile_config(rows, cols)
            one_line(info.value)
            assert native._get_cpu_tile_config() == old  # a rejected value changes nothing
        with pytest.raises(TypeError, match="force must be a bool; got None"):
            native._force_scalar_cpu_kernels(None)  # used to mean False
        assert native.cpu_float_isa() in ("avx2+fma", "scalar")
    finally:
        native._set_cpu_tile_config(*old)


# ============================================================================================
# W2: temperature extremes
# ============================================================================================

def _hit_heavy_inputs(dtype: torch.dtype) -> tuple[tuple, dict]:
    """Inputs where most rows have accidental hits, in several candidate tiles."""
    (q, t, n), kw = split(make_inputs(13, 40, 5, dtype=dtype, seed=4, id_range=6, logq=False))
    return (q, t, n), kw


@pytest.mark.parametrize("tiles", [None, (3, 7)])
@pytest.mark.parametrize("temperature", [1e38, 2e45, 1e300])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_temperature_with_accidental_hits(native, dtype, temperature, tiles):
    """1/T rounds to 0 in float32 for T >= ~1.4e45 (to a denormal at 1e38): hits masked before
    the scaling became -inf * 0 = NaN. Now the rows equal the reference, and where 1/T = 0 they
    are exact: every logit is -logq = 0, so a positive row with m unmasked negatives has loss
    log(1 + m) and a negative row log((1 + m) / m)."""
    old = native._get_cpu_tile_config()
    if tiles is not None:
        native._set_cpu_tile_config(*tiles)
    try:
        (q, t, n), kw = _hit_heavy_inputs(dtype)
        kw = dict(kw, temperature=temperature, reduction="none")
        got = fused_loss(q, t, n, **kw)
        want = fused_loss_reference(q, t, n, **kw)
        assert bool(torch.isfinite(got).all()), got
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        if dtype == torch.float32 and float(torch.tensor(1 / temperature, dtype=dtype)) == 0.0:
            m = (kw["target_ids"][:, None] != kw["neg_ids"][None, :]).sum(1).double()
            lab = kw["label"]
            exact = torch.where(lab == 1, torch.log1p(m), torch.where(
                (lab == -1) & (m > 0), torch.log((1 + m) / m.clamp(min=1)), 0.0))
            torch.testing.assert_close(got.double(), kw["weight"].double() * exact, rtol=1e-6, atol=0)
        grads = torch.autograd.grad((got * torch.linspace(-1, 1, len(got), dtype=got.dtype)).sum(), [q, t, n])
        ref_grads = torch.autograd.grad((want * torch.linspace(-1, 1, len(got), dtype=got.dtype)).sum(), [q, t, n])
        for a, b in zip(grads, ref_grads):
            assert bool(torch.isfinite(a).all())
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-30)
    finally:
        native._set_cpu_tile_config(*old)


@pytest.mark.parametrize("dtype, temperature, bound", [
    (torch.float32, 1e-39, "2.93874e-39"), (torch.float16, 1e-39, "2.93874e-39"),
    (torch.float64, 1e-310, "5.56268e-309")])
def test_temperature_whose_reciprocal_overflows_is_rejected(native, dtype, temperature, bound):
    (q, t, n), kw = split(make_inputs(3, 4, 2, dtype=dtype, requires_grad=False))
    pattern = (rf"negrec\.fused_loss: temperature must be >= {bound} \(1/temperature must be "
               rf"finite in float(32|64), the accumulation dtype\); got {temperature}")
    for fn in (fused_loss, fused_loss_reference):
        with pytest.raises(ValueError, match=pattern) as info:
            fn(q, t, n, temperature=temperature, **kw)
        one_line(info.value)
    if dtype == torch.float64:  # the float32 bound does not apply to float64 inputs
        assert torch.isfinite(fused_loss(q, t, n, temperature=1e-39, **kw))


# ============================================================================================
# W3: float64 weights and logQ with float32 inputs
# ============================================================================================

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weights", [[1e39] * 6, [1e-50] * 6, [1e39, 1e-50, 2.0, 0.0, 1e300, 1e-300]])
def test_float64_weights_beyond_the_float32_range(native, weights, reduction):
    """Weights are used in float64: 1e39 no longer becomes inf (a NaN mean), 1e-50 no longer 0
    (a mean of 0). Expected: the float64 weighting of the unweighted per-row losses."""
    (q, t, n), kw = split(make_inputs(6, 9, 4, dtype=torch.float32, seed=2, id_range=50,
                                      weight=False, label_choices=(1, -1)))
    w = torch.tensor(weights, dtype=torch.float64)
    rows = fused_loss(q, t, n, reduction="none", **kw).detach().double()
    contributes = rows > 0  # every row contributes here (no row without a negative)
    assert bool(contributes.all())
    want = {"none": w * rows, "sum": (w * rows).sum(),
            "mean": (w * rows).sum() / w.sum()}[reduction].float()
    got = fused_loss(q, t, n, weight=w, reduction=reduction, **kw)
    ref = fused_loss_reference(q, t, n, weight=w, reduction=reduction, **kw)
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=0)
    torch.testing.assert_close(ref.detach(), want, rtol=1e-5, atol=0)
    if reduction == "mean":  # the mean and its gradients stay finite
        grads = torch.autograd.grad(got, [q, t, n])
        ref_grads = torch.autograd.grad(ref, [q, t, n])
        for a, b in zip(grads, ref_grads):
            assert bool(torch.isfinite(a).all())
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_weight_scale_does_not_change_the_mean(native):
    """The mean is invariant to scaling all weights: 2.15 stays 2.15 at 1e-50 and 1e39."""
    (q, t, n), kw = split(make_inputs(5, 7, 3, dtype=torch.float32, seed=8, id_range=40,
                                      requires_grad=False, weight=False, label_choices=(1,)))
    w = torch.rand(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5
    base = fused_loss(q, t, n, weight=w, **kw)
    for scale in (1e-50, 1e-300, 1e39, 1e300):
        torch.testing.assert_close(fused_loss(q, t, n, weight=w * scale, **kw), base, rtol=1e-6, atol=0)


@pytest.mark.parametrize("which", ["target_logq", "neg_logq"])
@pytest.mark.parametrize("value", [1e39, -1e39, 1e300])
def test_float64_logq_overflowing_float32_is_rejected(native, which, value):
    """logQ is used in the accumulation dtype: a float64 value that overflows float32 is an
    error (it used to pass the float64 check and become +-inf, hence NaN, in the kernel)."""
    inputs = make_inputs(4, 5, 3, dtype=torch.float32, requires_grad=False)
    inputs[which] = inputs[which].double().clone()
    inputs[which][2] = value
    (q, t, n), kw = split(inputs)
    pattern = (rf"negrec\.fused_loss: {which} must be finite in float32 \(the accumulation "
               rf"dtype\); got {re_float(value)} at index 2, which overflows it")
    for call in (lambda: fused_loss(q, t, n, **kw), lambda: torch.ops.negrec.fused_loss(*op_args(inputs)),
                 lambda: fused_loss_reference(q, t, n, **kw)):
        with pytest.raises(ValueError, match=pattern) as info:
            call()
        one_line(info.value)
    # float64 inputs accumulate in float64, where the value is finite
    inputs64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
    (q, t, n), kw = split(inputs64)
    assert fused_loss(q, t, n, **kw).dtype == torch.float64


def re_float(x: float) -> str:
    return repr(float(x)).replace("+", r"\+")


# ============================================================================================
# W4: higher-order gradients
# ============================================================================================

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_double_backward_raises(native, reduction):
    (q, t, n), kw = split(make_inputs(5, 6, 3, dtype=torch.float64, seed=1, id_range=4))
    loss = fused_loss(q, t, n, reduction=reduction, **kw).sum()
    gq, gt, gn = torch.autograd.grad(loss, [q, t, n], create_graph=True)
    # first-order results are unchanged by create_graph=True
    want = torch.autograd.grad(fused_loss(q, t, n, reduction=reduction, **kw).sum(), [q, t, n])
    for a, b in zip((gq, gt, gn), want):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    for target in (gq.sum(), (gq * gq).sum() + gn.sum()):
        with pytest.raises(RuntimeError, match="negrec.fused_loss: higher-order gradients are "
                                               "not supported") as info:
            torch.autograd.grad(target, [q, t, n], allow_unused=True)
        one_line(info.value)


def test_gradient_penalty_raises_and_reference_supports_it(native):
    (q, t, n), kw = split(make_inputs(4, 5, 3, dtype=torch.float64, seed=5, id_range=4))
    (gq,) = torch.autograd.grad(fused_loss_reference(q, t, n, **kw), [q], create_graph=True)
    assert torch.autograd.grad(gq.pow(2).sum(), [q])[0].shape == q.shape  # what the message suggests
    (gq,) = torch.autograd.grad(fused_loss(q, t, n, **kw), [q], create_graph=True)
    with pytest.raises(RuntimeError, match="higher-order gradients are not supported"):
        gq.pow(2).sum().backward()


# ============================================================================================
# Unclear errors: every Python-facing entry point
# ============================================================================================

TENSOR_ARGS = [("query", "[N, D]"), ("target_emb", "[N, D]"), ("neg_emb", "[K, D]"),
               ("target_ids", "[N]"), ("neg_ids", "[K]"), ("label", "[N]")]
OP_ORDER = ["query", "target_emb", "neg_emb", "target_ids", "neg_ids", "label", "weight",
            "target_logq", "neg_logq"]


def _valid_inputs():
    return make_inputs(4, 5, 3, dtype=torch.float32, seed=0, id_range=5, requires_grad=False)


def _call_op(inputs: dict):
    return torch.ops.negrec.fused_loss(*[inputs.get(k) for k in OP_ORDER], 1.0, "mean")


@pytest.mark.parametrize("name, shape", TENSOR_ARGS)
def test_missing_tensor_is_named(native, name, shape):
    """fused_loss(label=None) said "got dtype UNKNOWN_SCALAR"."""
    inputs = _valid_inputs()
    inputs[name] = None
    (q, t, n), kw = split(inputs)
    pattern = rf"^negrec\.fused_loss: {name} must be a tensor of shape {re_shape(shape)}; got None$"
    calls = [lambda: fused_loss(q, t, n, **kw), lambda: fused_loss_reference(q, t, n, **kw)]
    if name != "query":  # the dispatcher needs one tensor to pick a kernel: query stays
        calls.append(lambda: _call_op(inputs))
    for call in calls:
        with pytest.raises(TypeError, match=pattern) as info:
            call()
        one_line(info.value)


def re_shape(shape: str) -> str:
    return shape.replace("[", r"\[").replace("]", r"\]")


def _non_dense(t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sparse_coo":
        return t.to_sparse()
    if kind == "sparse_csr":
        return (t if t.dim() == 2 else t[None]).to_sparse_csr()
    raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.parametrize("kind", ["sparse_coo", "sparse_csr"])
@pytest.mark.parametrize("name", OP_ORDER)
def test_non_dense_tensor_is_named(native, name, kind):
    """A sparse argument reached the dispatcher: "Could not run 'negrec::fused_loss' with
    arguments from the 'SparseCPU' backend ..." over many lines."""
    inputs = _valid_inputs()
    inputs[name] = _non_dense(inputs[name], kind)
    (q, t, n), kw = split(inputs)
    pattern = (rf"^negrec\.fused_loss: {name} must be a dense \(strided\) tensor; got a sparse "
               rf"tensor \(layout torch\.{kind}\)$")
    for call in (lambda: fused_loss(q, t, n, **kw), lambda: _call_op(inputs),
                 lambda: fused_loss_reference(q, t, n, **kw)):
        with pytest.raises(TypeError, match=pattern) as info:
            call()
        one_line(info.value)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantized_and_mkldnn_tensors_are_named(native):
    inputs = _valid_inputs()
    for make, what in [(lambda x: torch.quantize_per_tensor(x, 0.1, 0, torch.qint8),
                        r"a quantized tensor \(dtype (QInt8|torch\.qint8)\)"),
                       (lambda x: x.to_mkldnn(), r"an MKL-DNN tensor \(layout torch\._mkldnn\)")]:
        bad = dict(inputs, neg_emb=make(inputs["neg_emb"]))
        (q, t, n), kw = split(bad)
        for call in (lambda: _call_op(bad), lambda: fused_loss_reference(q, t, n, **kw)):
            with pytest.raises(TypeError, match=r"neg_emb must be a dense \(strided\) tensor; got " + what):
                call()


def test_backward_op_names_non_dense_and_missing_arguments(native):
    inputs = _valid_inputs()
    args = op_args(inputs, 1.0, "none")
    _, lse_all, lse_neg = torch.ops.negrec.fused_loss(*args)
    with pytest.raises(TypeError, match=r"^negrec\.fused_loss_backward: lse_neg must be a dense "
                                        r"\(strided\) tensor; got a sparse tensor"):
        torch.ops.negrec.fused_loss_backward(torch.ones(4), *args, lse_all, lse_neg.to_sparse())
    with pytest.raises(TypeError, match=r"^negrec\.fused_loss_backward: grad_loss must be a tensor "
                                        r"of shape \[N\]; got None$"):
        torch.ops.negrec.fused_loss_backward(None, *args, lse_all, lse_neg)


@pytest.mark.parametrize("key, value, exc, pattern", [
    ("label", [1, 0, -1, 1], TypeError, r"label must be a tensor of shape \[N\]; got list of length 4"),
    ("weight", 1.0, TypeError, r"weight must be a tensor of shape \[N\] or None; got float 1.0"),
    ("temperature", None, TypeError, r"temperature must be a finite number > 0; got None"),
    ("temperature", "1.0", TypeError, r"temperature must be a finite number > 0; got str '1.0'"),
    ("temperature", True, TypeError, r"temperature must be a finite number > 0; got bool True"),
    ("reduction", None, TypeError, r"reduction must be 'none', 'sum' or 'mean'; got None"),
    ("reduction", 1, TypeError, r"reduction must be 'none', 'sum' or 'mean'; got int 1"),
])
def test_wrong_python_types_are_named(native, key, value, exc, pattern):
    (q, t, n), kw = split(_valid_inputs())
    kw[key] = value
    for fn in (fused_loss, fused_loss_reference):
        with pytest.raises(exc, match=r"^negrec\.fused_loss: " + pattern + "$") as info:
            fn(q, t, n, **kw)
        one_line(info.value)


def test_numpy_scalar_temperature_is_accepted(native):
    (q, t, n), kw = split(_valid_inputs())
    torch.testing.assert_close(fused_loss(q, t, n, temperature=np.float32(0.5), **kw),
                               fused_loss(q, t, n, temperature=0.5, **kw))


# ---- alias table ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, exc, pattern", [
    ((3, -1), ValueError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got int -1"),
    ((3, 2**64), ValueError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got int 18446744073709551616"),
    ((3, None), TypeError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got None"),
    ((3, 1.0), TypeError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got float 1.0"),
    ((-1, 0), ValueError, r"k must be an int in \[0, 2\*\*63 - 1\]; got int -1"),
    ((None, 0), TypeError, r"k must be an int in \[0, 2\*\*63 - 1\]; got None"),
    (("3", 0), TypeError, r"k must be an int in \[0, 2\*\*63 - 1\]; got str '3'"),
    ((True, 0), TypeError, r"k must be an int in \[0, 2\*\*63 - 1\]; got bool True"),
])
def test_alias_table_sample_arguments(native, args, exc, pattern):
    """seed=-1 gave pybind11's multi-line "incompatible function arguments"."""
    table = native.AliasTable(torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(exc, match=r"^AliasTable\.sample: " + pattern + "$") as info:
        table.sample(*args)
    one_line(info.value)


def test_alias_table_sample_accepts_the_whole_seed_range(native):
    table = native.AliasTable(torch.tensor([1.0, 2.0], dtype=torch.float64))
    for seed in (0, 2**63, 2**64 - 1, np.uint64(2**64 - 1), np.int64(5)):
        assert table.sample(4, seed).shape == (4,)
    assert torch.equal(table.sample(np.int32(7), 3), table.sample(7, 3))


@pytest.mark.parametrize("weights, exc, pattern", [
    (None, TypeError, r"weights must be a non-empty 1-D CPU tensor; got None"),
    ([1.0, 2.0], TypeError, r"weights must be a non-empty 1-D CPU tensor; got list of length 2"),
    (torch.ones(3, dtype=torch.float64).to_sparse(), TypeError,
     r"weights must be a dense \(strided\) tensor; got a sparse tensor \(layout torch\.sparse_coo\)"),
    (torch.ones(3, dtype=torch.complex64), TypeError,
     r"weights must be a real \(integer or floating-point\) tensor; got dtype ComplexFloat"),
    (torch.ones(3, device="meta"), ValueError, r"weights must be a CPU tensor; got meta"),
])
def test_alias_table_weights_argument(native, weights, exc, pattern):
    with pytest.raises(exc, match=r"^AliasTable: " + pattern + "$") as info:
        native.AliasTable(weights)
    one_line(info.value)


# ---- collator ---------------------------------------------------------------------------------

def _collate_args() -> dict:
    return dict(offsets=torch.tensor([0, 2, 3]), items=torch.tensor([0, 1, 1]),
                feedback=torch.tensor([1, 1, 1], dtype=torch.int8), users=torch.tensor([0, 1]),
                ends=None, num_items=2, max_len=3, left_pad=True, pad_item=2,
                input_allowed=[False, True, True, True, True], label_of=[0, 1, 0, 0, -1],
                weight_of=[0.0, 1.0, 0.0, 0.0, 1.0], random_crop=True, with_targets=True,
                seed=0, threads=1)


COLLATE_BAD = [
    ("seed", -1, ValueError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got int -1"),
    ("seed", None, TypeError, r"seed must be an int in \[0, 2\*\*64 - 1\]; got None"),
    ("threads", 0, ValueError, r"threads must be an int in \[1, 2\*\*63 - 1\]; got int 0"),
    ("threads", -2, ValueError, r"threads must be an int in \[1, 2\*\*63 - 1\]; got int -2"),
    ("num_items", -5, ValueError, r"num_items must be an int in \[1, 2\*\*63 - 1\]; got int -5"),
    ("max_len", 2.0, TypeError, r"max_len must be an int in \[1, 2\*\*63 - 1\]; got float 2.0"),
    ("pad_item", 2**63, ValueError, r"pad_item must be an int in \[-2\*\*63, 2\*\*63 - 1\]; got int 9223372036854775808"),
    ("left_pad", None, TypeError, r"left_pad must be a bool; got None"),
    ("random_crop", 1, TypeError, r"random_crop must be a bool; got int 1"),
    ("with_targets", "yes", TypeError, r"with_targets must be a bool; got str 'yes'"),
    ("users", None, TypeError, r"users must be a 1-D int64 CPU tensor; got None"),
    ("users", [0, 1], TypeError, r"users must be a 1-D int64 CPU tensor; got list of length 2"),
    ("offsets", np.array([0, 2, 3]), TypeError, r"offsets must be a 1-D int64 CPU tensor; got ndarray of length 3"),
    ("ends", [1, 1], TypeError, r"ends must be a 1-D int64 CPU tensor or None; got list of length 2"),
    ("items", torch.tensor([0, 1, 1]).to_sparse(), TypeError,
     r"items must be a dense \(strided\) tensor; got a sparse tensor \(layout torch\.sparse_coo\)"),
    ("label_of", [0, 1, 0, 0, 300], ValueError, r"label_of\[4\] must be an int in \[-1, 1\]; got int 300"),
    ("label_of", None, TypeError, r"label_of must be a list of 5 labels -1, 0 or \+1 \(one per feedback code\); got None"),
    ("input_allowed", [False, True], ValueError, r"input_allowed must be a list of 5 bools \(one per feedback code\); got list of length 2"),
    ("input_allowed", [0, 1, 1, 1, 1], TypeError, r"input_allowed\[0\] must be a bool; got int 0"),
    ("weight_of", [0.0, 1e39, 0.0, 0.0, 1.0], ValueError, r"weight_of\[1\] must be a number >= 0 that is finite in float32; got float 1e\+39"),
    ("weight_of", [0.0, None, 0.0, 0.0, 1.0], TypeError, r"weight_of\[1\] must be a number >= 0 that is finite in float32; got None"),
    ("weight_of", [0.0, -0.5, 0.0, 0.0, 1.0], ValueError, r"weight_of\[1\] must be a number >= 0 that is finite in float32; got float -0.5"),
]


@pytest.mark.parametrize("key, value, exc, pattern", COLLATE_BAD,
                         ids=[f"{k}-{i}" for i, (k, _, _, _) in enumerate(COLLATE_BAD)])
def test_collate_arguments(native, key, value, exc, pattern):
    """Each argument of negrec._C.collate: None, wrong Python types, negative or out-of-range
    ints give one line naming it (pybind11 gave "incompatible function arguments", and a
    weight of 1e39 became an inf target weight)."""
    args = dict(_collate_args(), **{key: value})
    with pytest.raises(exc, match=r"^collate: " + pattern + "$") as info:
        native.collate(**args)
    one_line(info.value)


def test_collate_accepts_numpy_scalars_and_the_whole_seed_range(native):
    base = native.collate(**_collate_args())
    for seed in (2**64 - 1, np.uint64(7)):
        native.collate(**dict(_collate_args(), seed=seed))
    same = native.collate(**dict(_collate_args(), num_items=np.int64(2), max_len=np.int32(3),
                                 left_pad=np.True_, seed=np.int64(0)))
    for a, b in zip(base, same):
        assert torch.equal(a, b)

