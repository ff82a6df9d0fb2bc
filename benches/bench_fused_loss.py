#!/usr/bin/env python
"""Benchmark of torch.ops.negrec.fused_loss against its baselines, measured in one run.

Variants (interleaved round-robin in every repeat, so machine noise hits all alike):
  native  : negrec.ops.fused_loss (the compiled kernels)
  eager   : negrec.ops.reference.fused_loss_reference (materialises [N, K])
  compile : the same reference under torch.compile (inductor)
  floor   : three plain matrix products of the same shapes, the work any materialising
            implementation must do: S = Q @ N^T (forward), G @ N and G^T @ Q (backward)

Times are medians over repeats of forward, backward and forward+backward; peak extra memory
is measured per variant in a fresh subprocess (peak RSS minus RSS before the call; CPU torch
has no allocator statistics). Results are appended to a long CSV (op, impl, mode, metric,
p20/p50/p80, shape, machine, version). The last line printed holds the headline ratios at
N=16384, D=64, K=8192 (or the largest shape run) as key=value pairs.

  python benches/bench_fused_loss.py            # full grid (several minutes)
  python benches/bench_fused_loss.py --quick    # headline shape only, memory of native and
                                                # eager only (under a minute)
  python benches/bench_fused_loss.py --tune     # sweep the CPU kernel's tile sizes
  python benches/bench_fused_loss.py --device cuda [--quick]
        # the CUDA columns: bfloat16 at N=32768, D=128, K=16384 and a full softmax over
        # 200,000 items, timed with CUDA events; peak extra memory from the allocator's
        # statistics (max_memory_allocated minus memory allocated before the call). Ends with
        # cuda_speedup_vs_eager=.. cuda_speedup_vs_compile=.. cuda_floor_ratio=..
        # cuda_memory_ratio=.. (headline shape) and the same with cuda_full_ for the full softmax.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import negrec
from negrec.files import append_csv
from negrec.ops import fused_loss
from negrec.ops.reference import fused_loss_reference
from negrec.threads import configure as apply_thread_policy

HEADLINE = (16384, 64, 8192, False)
FULL_GRID = [(n, d, k, False) for n in (4096, 16384) for d in (64, 128) for k in (1024, 8192)]
FULL_SOFTMAX = (4096, 64, 20000, True)  # 20,000-item catalogue, every row scored against all
VARIANTS = ("native", "eager", "compile", "floor")
# CUDA: the headline sampled-softmax shape and a full softmax over a 200,000-item catalogue.
CUDA_HEADLINE = (32768, 128, 16384, False)
CUDA_FULL_SOFTMAX = (8192, 128, 200000, True)
CUDA_DTYPE = torch.bfloat16


def shape_name(shape) -> str:
    n, d, k, full = shape
    return f"N={n},D={d},{'V' if full else 'K'}={k}{',full' if full else ''}"


def build_inputs(shape, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """float32 inputs with logQ, weights, mixed labels (85% positive, 15% negative feedback,
    no padding rows, so that every variant does the full work) and some accidental hits.
    Generated on the CPU (the same values on every device); embeddings cast to `dtype`."""
    if device != "cpu" or dtype != torch.float32:
        cpu = build_inputs(shape, seed)
        out = {}
        for k, v in cpu.items():
            if v is None:
                out[k] = None
            elif k in ("query", "target_emb", "neg_emb"):
                out[k] = v.detach().to(device=device, dtype=dtype).requires_grad_()
            else:
                out[k] = v.to(device)
        return out
    n, d, k, full = shape
    g = torch.Generator().manual_seed(seed)
    num_items = k if full else 10 * k
    target_ids = torch.randint(0, num_items, (n,), generator=g)
    if full:
        table = torch.randn(num_items, d, generator=g) * 0.3
        neg_ids = torch.arange(num_items)
        neg_emb = table.clone()
        target_emb = table[target_ids].clone()
        neg_logq = None
        target_logq = None
    else:
        neg_ids = torch.randint(0, num_items, (k,), generator=g)
        neg_emb = torch.randn(k, d, generator=g) * 0.3
        target_emb = torch.randn(n, d, generator=g) * 0.3
        neg_logq = -torch.rand(k, generator=g) * 3 - 8
        target_logq = -torch.rand(n, generator=g) * 3 - 8
    label = torch.where(torch.rand(n, generator=g) < 0.85, 1, -1)
    return dict(
        query=(torch.randn(n, d, generator=g) * 0.3).requires_grad_(),
        target_emb=target_emb.requires_grad_(),
        neg_emb=neg_emb.requires_grad_(),
        target_ids=target_ids, neg_ids=neg_ids, label=label,
        weight=torch.rand(n, generator=g) + 0.5, target_logq=target_logq, neg_logq=neg_logq,
    )


def make_runner(variant: str, inputs: dict):
    """A function running forward (returning what backward needs) and one running backward."""
    q, t, n = inputs["query"], inputs["target_emb"], inputs["neg_emb"]
    kw = {k: v for k, v in inputs.items() if k not in ("query", "target_emb", "neg_emb")}
    if variant == "floor":
        # stands in for dL/dz
        grad = (torch.randn(q.shape[0], n.shape[0], device=q.device) * 1e-3).to(q.dtype)

        def fwd():
            with torch.no_grad():
                return q @ n.T

        def bwd(_):
            with torch.no_grad():
                grad @ n
                grad.T @ q
        return fwd, bwd

    if variant == "native":
        fn = fused_loss
    elif variant == "eager":
        fn = fused_loss_reference
    elif variant == "compile":
        # The reference minus its data-dependent input checks, which would break the graph.
        # One static graph per shape: dynamo's code cache is reset first, else the full grid
        # hits its recompile limit (8 shapes of one function) and fullgraph=True fails hard.
        torch._dynamo.reset()
        compiled = torch.compile(fused_loss_reference, dynamic=False, fullgraph=True)

        def fn(*a, **k):
            return compiled(*a, check_values=False, **k)
    else:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")

    def fwd():
        return fn(q, t, n, temperature=0.5, reduction="mean", **kw)

    def bwd(loss):
        loss.backward()
        q.grad = t.grad = n.grad = None
    return fwd, bwd


def time_interleaved(shape, variants, repeats: int, warmup: int) -> dict:
    inputs = build_inputs(shape)
    runners = {v: make_runner(v, inputs) for v in variants}
    for v, (fwd, bwd) in runners.items():  # compile, caches, first-touch
        for _ in range(warmup):
            bwd(fwd())
    times = {v: {"forward": [], "backward": [], "forward+backward": []} for v in variants}
    for _ in range(repeats):
        for v, (fwd, bwd) in runners.items():
            gc.collect()
            t0 = time.perf_counter()
            out = fwd()
            t1 = time.perf_counter()
            bwd(out)
            t2 = time.perf_counter()
            del out
            times[v]["forward"].append(t1 - t0)
            times[v]["backward"].append(t2 - t1)
            times[v]["forward+backward"].append(t2 - t0)
    return times


def time_cuda(inputs: dict, variants, repeats: int, warmup: int) -> dict:
    """Like time_interleaved, on the GPU: CUDA events around forward and backward, the device
    synchronised before each call (so no queued work of another variant is timed)."""
    runners = {v: make_runner(v, inputs) for v in variants}
    for v, (fwd, bwd) in runners.items():  # compile, autotuning, allocator warm-up
        for _ in range(warmup):
            bwd(fwd())
    torch.cuda.synchronize()
    times = {v: {"forward": [], "backward": [], "forward+backward": []} for v in variants}
    for _ in range(repeats):
        for v, (fwd, bwd) in runners.items():
            e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            torch.cuda.synchronize()
            e0.record()
            out = fwd()
            e1.record()
            bwd(out)
            e2.record()
            del out
            torch.cuda.synchronize()
            f, b = e0.elapsed_time(e1) / 1e3, e1.elapsed_time(e2) / 1e3
            times[v]["forward"].append(f)
            times[v]["backward"].append(b)
            times[v]["forward+backward"].append(f + b)
    return times


def cuda_memory(variant: str, inputs: dict) -> float:
    """Peak extra device memory (MiB) of one forward + backward: max_memory_allocated during
    the call minus memory_allocated just before it (after a warm-up call)."""
    fwd, bwd = make_runner(variant, inputs)
    bwd(fwd())
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    bwd(fwd())
    torch.cuda.synchronize()
    return max(0, torch.cuda.max_memory_allocated() - before) / 2**20


def run_cuda(args) -> None:
    if not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device visible to torch")
    if not negrec.cuda_kernels_available():
        sys.exit(f"--device cuda: negrec._C was built without its CUDA kernels "
                 f"({negrec.build_info().get('CUDA_REASON')}); rebuild with NEGREC_CUDA=ON")
    shapes = [CUDA_HEADLINE, CUDA_FULL_SOFTMAX]
    repeats = args.repeats or (3 if args.quick else 10)
    machine = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    version = negrec.__version__
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"negrec {version}, torch {torch.__version__}, {machine}, {CUDA_DTYPE}")
    print(f"{'shape':<32} {'variant':<8} {'fwd ms':>9} {'bwd ms':>9} {'fwd+bwd ms':>11} "
          f"{'x floor':>8} {'extra MiB':>10}")
    headline = {}
    rows = []
    for shape in shapes:
        inputs = build_inputs(shape, device="cuda", dtype=CUDA_DTYPE)
        times = time_cuda(inputs, VARIANTS, repeats, warmup=1 if args.quick else 2)
        mem = {} if args.no_memory else {v: cuda_memory(v, inputs) for v in VARIANTS}
        name = shape_name(shape) + ",bf16"
        floor_fb = statistics.median(times["floor"]["forward+backward"])
        for v in VARIANTS:
            med = {m: statistics.median(ts) for m, ts in times[v].items()}
            extra = mem.get(v, float("nan"))
            print(f"{name:<32} {v:<8} {med['forward'] * 1e3:9.2f} {med['backward'] * 1e3:9.2f} "
                  f"{med['forward+backward'] * 1e3:11.2f} {med['forward+backward'] / floor_fb:8.2f} "
                  f"{extra:10.1f}")
            common = dict(timestamp=stamp, op="fused_loss", impl=v, shape=name, machine=machine,
                          version=version, torch=torch.__version__, threads=0)
            for mode, ts in times[v].items():
                p20, p50, p80 = quantiles(ts)
                rows.append(dict(common, mode=mode, metric="seconds", p20=p20, p50=p50, p80=p80))
            if v in mem:
                rows.append(dict(common, mode="forward+backward", metric="peak_extra_mb",
                                 p20=extra, p50=extra, p80=extra))
        fb = {v: statistics.median(times[v]["forward+backward"]) for v in VARIANTS}
        prefix = "cuda_" if shape == CUDA_HEADLINE else "cuda_full_"
        headline[prefix + "speedup_vs_eager"] = fb["eager"] / fb["native"]
        headline[prefix + "speedup_vs_compile"] = fb["compile"] / fb["native"]
        headline[prefix + "floor_ratio"] = fb["native"] / fb["floor"]
        if mem:
            headline[prefix + "memory_ratio"] = (mem["native"] / mem["eager"] if mem["eager"] > 0
                                                 else float("nan"))
            headline[prefix + "native_extra_mib"] = mem["native"]
        del inputs
        torch.cuda.empty_cache()
    append_csv(args.csv, rows, CSV_FIELDS)
    print(f"appended {len(rows)} rows to {args.csv}")
    print(" ".join(f"{k}={v:.3f}" for k, v in headline.items()))


def _read_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(variant: str, shape) -> None:
    """Runs in a fresh process: warm the variant up, reset the peak-RSS mark, run forward +
    backward once and report peak RSS minus the RSS just before the call."""
    inputs = build_inputs(shape)
    fwd, bwd = make_runner(variant, inputs)
    bwd(fwd())  # compilation and one-off allocations are not part of the call's footprint
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    before = _read_status_kb("VmRSS")
    bwd(fwd())
    peak = _read_status_kb("VmHWM")
    print(json.dumps({"extra_mb": max(0, peak - before) / 1024}))


def measure_memory(variant: str, shape) -> float:
    cmd = [sys.executable, __file__, "--memory-child", json.dumps([variant, list(shape)])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {variant} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["extra_mb"]


def machine_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()} ({negrec.build_info().get('cpu_float_isa', '?')})"


def quantiles(xs):
    qs = statistics.quantiles(xs, n=5, method="inclusive") if len(xs) > 1 else [xs[0]] * 4
    return qs[0], statistics.median(xs), qs[3]


CSV_FIELDS = ["timestamp", "op", "impl", "mode", "metric", "p20", "p50", "p80", "shape",
              "machine", "version", "torch", "threads"]


def tune(repeats: int) -> None:
    from negrec._extension import _C

    shape = HEADLINE
    inputs = build_inputs(shape)
    fwd, bwd = make_runner("native", inputs)
    floor_fwd, floor_bwd = make_runner("floor", inputs)
    old = _C._get_cpu_tile_config()
    configs = [(r, c) for r in (32, 64, 128, 256) for c in (256, 512, 1024, 2048)]
    res = {cfg: [] for cfg in configs}
    floor_t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        floor_bwd(floor_fwd())
        floor_t.append(time.perf_counter() - t0)
        for cfg in configs:
            _C._set_cpu_tile_config(*cfg)
            t0 = time.perf_counter()
            bwd(fwd())
            res[cfg].append(time.perf_counter() - t0)
    _C._set_cpu_tile_config(*old)
    fl = statistics.median(floor_t)
    print(f"tile sweep at {shape_name(shape)}, floor {fl * 1e3:.0f} ms")
    for cfg in sorted(configs, key=lambda c: statistics.median(res[c])):
        m = statistics.median(res[cfg])
        print(f"  rows={cfg[0]:4d} cols={cfg[1]:5d}  fwd+bwd {m * 1e3:7.1f} ms  floor ratio {m / fl:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="headline shape only, fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per variant")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/fused_loss.csv"))
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--tune", action="store_true", help="sweep the CPU tile sizes and exit")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu (default): the CPU kernels; cuda: the CUDA kernels (bfloat16)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.memory_child:
        variant, shape = json.loads(args.memory_child)
        memory_child(variant, tuple(shape))
        return
    # the thread policy, as negrec's command line applies it (docs/performance.md): threads
    # from the CPUs available, adapted to the load; NEGREC_THREADS=off: torch's defaults
    apply_thread_policy()
    if not negrec.extension_available():
        sys.exit(f"negrec._C is not available ({negrec.build_info()['reason']}); install negrec first")
    if args.tune:
        tune(args.repeats or 3)
        return
    if args.device == "cuda":
        run_cuda(args)
        return

    shapes = [HEADLINE] if args.quick else FULL_GRID + [FULL_SOFTMAX]
    repeats = args.repeats or (3 if args.quick else 5)
    machine, version = machine_name(), negrec.__version__
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"negrec {version}, torch {torch.__version__}, {torch.get_num_threads()} threads, {machine}")
    print(f"{'shape':<26} {'variant':<8} {'fwd ms':>9} {'bwd ms':>9} {'fwd+bwd ms':>11} "
          f"{'x floor':>8} {'extra MB':>9}")
    headline = {}
    rows = []
    for shape in shapes:
        times = time_interleaved(shape, VARIANTS, repeats, warmup=1 if args.quick else 2)
        # --quick measures memory for the headline ratio only (native vs eager).
        mem_variants = () if args.no_memory else (("native", "eager") if args.quick else VARIANTS)
        mem = {v: measure_memory(v, shape) for v in mem_variants}
        floor_fb = statistics.median(times["floor"]["forward+backward"])
        for v in VARIANTS:
            med = {m: statistics.median(ts) for m, ts in times[v].items()}
            extra = mem.get(v, float("nan"))
            print(f"{shape_name(shape):<26} {v:<8} {med['forward'] * 1e3:9.1f} "
                  f"{med['backward'] * 1e3:9.1f} {med['forward+backward'] * 1e3:11.1f} "
                  f"{med['forward+backward'] / floor_fb:8.2f} {extra:9.1f}")
            common = dict(timestamp=stamp, op="fused_loss", impl=v, shape=shape_name(shape),
                          machine=machine, version=version, torch=torch.__version__,
                          threads=torch.get_num_threads())
            for mode, ts in times[v].items():
                p20, p50, p80 = quantiles(ts)
                rows.append(dict(common, mode=mode, metric="seconds", p20=p20, p50=p50, p80=p80))
            if v in mem:
                rows.append(dict(common, mode="forward+backward", metric="peak_extra_mb",
                                 p20=extra, p50=extra, p80=extra))
        if shape == HEADLINE or (shape == shapes[-1] and not headline):
            fb = {v: statistics.median(times[v]["forward+backward"]) for v in VARIANTS}
            headline = dict(
                speedup_vs_eager=fb["eager"] / fb["native"],
                speedup_vs_compile=fb["compile"] / fb["native"],
                floor_ratio=fb["native"] / fb["floor"],
            )
            if mem:
                headline["memory_ratio"] = mem["native"] / mem["eager"] if mem["eager"] > 0 else float("nan")
                headline["native_extra_mb"] = mem["native"]
                headline["eager_extra_mb"] = mem["eager"]
            headline["shape"] = shape_name(shape)
    append_csv(args.csv, rows, CSV_FIELDS)
    print(f"appended {len(rows)} rows to {args.csv}")
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
