#!/usr/bin/env python
"""Benchmark of the native collator against the Python reference collator and a vectorised
torch (gather-based) collator, measured in one run, interleaved.

Batches of B=256 users, L=200 positions, from MovieLens-100K (../shared/data/ml-100k or
$NEGREC_ML100K; that case is skipped with a message when absent) and, in full mode, from a
1M-user simulated log. The ratios compare single-threaded runs (torch.set_num_threads(1), one
collator thread); the multi-threaded native figure is reported beside them. Throughput is in
batches/s and GB/s (bytes of the batch tensors written per second).

  python benches/bench_collate.py --quick   # ml-100k only (under two minutes)
  python benches/bench_collate.py           # + the 1M-user simulated log

Appends to bench_results/collate.csv; the last line holds the headline ratios (ml-100k, or the
simulated log when ml-100k is absent) as key=value pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import negrec
from negrec.data import CollateConfig, Collator, Feedback, TargetRule, load_movielens
from negrec.data.collate_reference import VectorizedCollator, collate_python
from negrec.files import append_csv
from negrec.threads import configure as apply_thread_policy

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))
B, L = 256, 200


def batch_bytes(batch) -> int:
    return sum(t.numel() * t.element_size() for t in (
        batch.input_items, batch.input_feedback, batch.mask, batch.lengths, batch.target_items,
        batch.target_labels, batch.target_weights))


def bench_log(name: str, log, repeats: int, python_repeats: int, rows: list, stamp: str) -> dict:
    # the input_ntr objective's collator settings: every event as input, NTR labels
    config = CollateConfig(max_len=L, targets={Feedback.POSITIVE: TargetRule(1, 1.0),
                                               Feedback.DISLIKE: TargetRule(-1, 1.0),
                                               Feedback.SKIP: TargetRule(-1, 0.3)})
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, log.num_users, B) for _ in range(max(repeats, python_repeats))]
    native_1 = Collator(log, config, threads=1)
    native_n = Collator(log, config, threads=os.cpu_count() or 2)
    vectorized = VectorizedCollator(log, config)
    nbytes = batch_bytes(native_1(batches[0]))
    variants = {
        "native": lambda users: native_1(users),
        "torch_vectorized": lambda users: vectorized(users),
        "python": lambda users: collate_python(log, users, config),
    }
    times = {k: [] for k in variants}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for v in variants.values():
            v(batches[0])  # warm-up
        for r in range(repeats):
            for k, v in variants.items():
                if k == "python" and r >= python_repeats:
                    continue
                t0 = time.perf_counter()
                v(batches[r])
                times[k].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads_before)
    # multi-threaded native, reported beside (not part of the ratios)
    native_n(batches[0])
    multi = []
    for r in range(repeats):
        t0 = time.perf_counter()
        native_n(batches[r])
        multi.append(time.perf_counter() - t0)
    times["native_multithread"] = multi

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{name}: {log.num_users} users, {log.num_events} events, B={B}, L={L}, "
          f"{nbytes / 1e6:.2f} MB per batch")
    print(f"{'variant':<22} {'ms/batch':>10} {'batches/s':>11} {'GB/s':>8} {'vs native':>10}")
    for k, m in med.items():
        print(f"{k:<22} {m * 1e3:10.3f} {1 / m:11.1f} {nbytes / m / 1e9:8.3f} {m / med['native']:10.1f}")
        qs = statistics.quantiles(times[k], n=5, method="inclusive") if len(times[k]) > 1 else [m] * 4
        rows.append(dict(timestamp=stamp, op="collate", impl=k, mode=name, metric="seconds_per_batch",
                         p20=qs[0], p50=m, p80=qs[3], shape=f"B={B},L={L}",
                         machine=os.uname().machine, version=negrec.__version__,
                         threads=1 if k != "native_multithread" else torch.get_num_threads()))
    return dict(speedup_vs_python=med["python"] / med["native"],
                speedup_vs_torch=med["torch_vectorized"] / med["native"],
                native_batches_per_s=1 / med["native"],
                native_multithread_batches_per_s=1 / med["native_multithread"],
                native_gb_per_s=nbytes / med["native"] / 1e9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/collate.csv"))
    args = ap.parse_args()
    # the thread policy, as negrec's command line applies it (docs/performance.md): threads
    # from the CPUs available, adapted to the load; NEGREC_THREADS=off: torch's defaults
    apply_thread_policy()
    if not negrec.extension_available():
        sys.exit(f"negrec._C is not available ({negrec.build_info()['reason']})")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows: list[dict] = []
    headline = {}
    repeats = 60 if args.quick else 100
    if (ML100K / "u.data").exists():
        headline = bench_log("ml-100k", load_movielens(ML100K), repeats, 10 if args.quick else 30,
                             rows, stamp)
    else:
        print(f"ml-100k not found at {ML100K}: skipping the real-data case (set NEGREC_ML100K)")
    if not args.quick:
        from negrec.sim import SimConfig, Simulator

        t0 = time.perf_counter()
        log, _ = Simulator(SimConfig(num_items=5000, num_creators=800), seed=0).generate(
            num_users=1_000_000, events_per_user=50)
        print(f"\ngenerated the 1M-user simulated log in {time.perf_counter() - t0:.0f} s")
        sim = bench_log("simulated-1M", log, repeats, 30, rows, stamp)
        if not headline:
            headline = sim
        else:
            headline.update({f"sim1m_{k}": v for k, v in sim.items()})
    if not headline:
        sys.exit("nothing was measured (ml-100k absent and --quick given)")
    append_csv(args.csv, rows)
    print(f"\nappended {len(rows)} rows to {args.csv}")
    print(" ".join(f"{k}={v:.2f}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
