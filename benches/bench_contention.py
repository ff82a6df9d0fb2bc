#!/usr/bin/env python
"""Throughput beside CPU-bound competitors: negrec's thread policy against torch's defaults,
measured in one run, interleaved.

Variants (each run in a fresh process, so that its environment holds before torch starts):
  old : before the thread policy (NEGREC_THREADS=off: torch's default intra-op threads,
        libgomp's default wait, which spins before sleeping)
  new : the policy (negrec/threads.py): threads from the CPUs available to the process,
        lowered while other processes keep CPUs busy (negrec/cpu_load.py); every process run
        here (the command line, bench_train.py, this bench's workers) applies it itself, as it
        does outside this bench
Loads: alone, beside 1 and beside 2 competitors: plain busy-loop processes (`while True:
pass`) that this bench starts before and stops after each block of runs.

Workloads:
  train       the fixed `negrec train` run of the issue (ml-100k, input_ntr, 1 epoch,
              max_steps=120, eval_every=0, --overwrite, a fresh --out), as a subprocess;
              throughput: the training loop's targets/s it prints (wall time beside)
  fused_loss  negrec.ops.fused_loss forward+backward at N=4096, D=64, K=1024 (calls/s)
  collate     the native collator, B=256, L=200 on ml-100k, threads = torch's (batches/s)
  bench_train `benches/bench_train.py --quick` alone (the idle-machine check, old vs new)
  demo        `negrec demo --quick`, both variants, alone and beside 2 competitors (full mode
              only); a run beside competitors is stopped after --demo-limit times the same
              variant's alone time (the old one took over 15 minutes under load in the issue)

Ratios: "vs alone" = throughput under load / the same variant's alone throughput; "vs share"
= vs alone / the fair CPU share of the process, max(C - k, C / (k + 1)) / C for k single-
threaded competitors on C CPUs (0.5 for 1 competitor on 2 CPUs, 1/3 for 2). The machine may
be shared with other work: its load average and busy fraction at the start are printed; the
ratios compare runs made minutes apart, in alternating order.

  python benches/bench_contention.py --quick   # train, fused_loss, collate (1 round), bench_train
  python benches/bench_contention.py           # 3 rounds, + demo --quick alone and 2 busy

For the issue's table run the full mode on a machine with nothing else running (the bench
prints how busy the machine was before it started, and a NOTE when it was).

Appends to bench_results/contention.csv; the last line holds key=value pairs
(train_vs_share_1busy, train_vs_share_2busy, demo_quick_s_2busy, then more).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))
VARIANTS = ("old", "new")
LOADS = (0, 1, 2)
# thread and OpenMP settings removed from the bench's own environment before each run, so that
# both variants start from the same clean state
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
               "NEGREC_THREADS", "NEGREC_SET_OMP_WAIT_POLICY", "OMP_DYNAMIC", "KMP_BLOCKTIME")
TRAIN_ARGS = ["--data", "movielens", "--objective", "input_ntr", "--epochs", "1",
              "--set", "max_steps=120", "--set", "eval_every=0", "--overwrite", "--no-progress"]
FUSED_SHAPE = (4096, 64, 1024, False)


# ----------------------------------------------------------------------------- machine state

def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def busy_fraction(seconds: float = 2.0) -> float | None:
    """Fraction of all CPUs' time spent busy over ``seconds`` (/proc/stat), with nothing of
    this bench running: how loaded the machine is by other work."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (i1 - i0) / max(1, t1 - t0)


def base_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in THREAD_VARS}


def variant_environment(variant: str) -> dict[str, str]:
    """The environment of a run: without thread settings, as a user's shell; ``old`` switches
    the policy off (every process run here applies it itself when it is on)."""
    env = base_environment()
    return dict(env, NEGREC_THREADS="off") if variant == "old" else env


class Competitors:
    """``count`` busy-loop processes, started on entry and stopped (by their own ids) on
    exit."""

    def __init__(self, count: int):
        self.count, self.procs = count, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                       stdin=subprocess.DEVNULL) for _ in range(self.count)]
        time.sleep(0.3 if self.count else 0)  # let them reach their loop
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


# ----------------------------------------------------------------------------- workloads

def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(cmd: list[str], env: dict[str, str], timeout: float | None = None):
    """(stdout or None on timeout, wall seconds, CPU seconds of the child). The CPU time comes
    from the reaped child's usage (competitors are reaped only after their block of runs)."""
    t0, c0 = time.perf_counter(), children_cpu_s()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, children_cpu_s() - c0
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - c0
    if proc.returncode != 0:
        sys.exit(f"bench_contention: {' '.join(cmd[:4])} ... failed with status "
                 f"{proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout, wall, cpu


def train_run(variant: str, scratch: Path, tag: str) -> dict:
    out = scratch / f"train_{tag}"
    cmd = [sys.executable, "-m", "negrec", "train", "--path", str(ML100K), *TRAIN_ARGS,
           "--out", str(out)]
    stdout, wall, cpu = run_command(cmd, variant_environment(variant))
    shutil.rmtree(out, ignore_errors=True)
    result = json.loads(stdout[stdout.index("{"):])
    return {"throughput": float(result["targets_per_s"]), "unit": "targets/s", "wall_s": wall,
            "cpu_s": cpu}


def worker_run(kind: str, variant: str, iterations: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind,
           "--iterations", str(iterations)]
    stdout, wall, cpu = run_command(cmd, variant_environment(variant))
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"throughput": result["per_s"], "unit": result["unit"], "wall_s": wall,
            "cpu_s": cpu, "threads": result["threads"]}


def bench_train_run(variant: str, scratch: Path, tag: str) -> dict:
    cmd = [sys.executable, str(REPO / "benches" / "bench_train.py"), "--quick",
           "--csv", str(scratch / f"bench_train_{tag}.csv"), "--out", str(scratch / f"bt_{tag}")]
    stdout, wall, cpu = run_command(cmd, variant_environment(variant))
    shutil.rmtree(scratch / f"bt_{tag}", ignore_errors=True)
    keys = dict(item.split("=", 1) for item in stdout.strip().splitlines()[-1].split())
    return {"throughput": float(keys["targets_per_s"]), "unit": "targets/s", "wall_s": wall,
            "cpu_s": cpu}


def demo_run(variant: str, scratch: Path, tag: str, timeout: float | None) -> dict:
    out = scratch / f"demo_{tag}"
    cmd = [sys.executable, "-m", "negrec", "demo", "--quick", "--overwrite", "--no-progress",
           "--out", str(out)]
    stdout, wall, cpu = run_command(cmd, variant_environment(variant), timeout)
    shutil.rmtree(out, ignore_errors=True)
    return {"throughput": None if stdout is None else 1 / wall, "unit": "runs/s", "wall_s": wall,
            "cpu_s": cpu, "timed_out": stdout is None}


def worker_main(kind: str, iterations: int) -> None:
    """Inside the worker process: apply the policy exactly as the command line does (its
    ``off`` in the old variant), then time ``iterations`` calls; prints one JSON line."""
    from negrec.cpu_load import adapt_threads
    from negrec.threads import configure

    configure()
    import torch

    if kind == "fused_loss":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_fused_loss import build_inputs

        from negrec.ops import fused_loss

        inputs = build_inputs(FUSED_SHAPE)
        q, t, n = inputs.pop("query"), inputs.pop("target_emb"), inputs.pop("neg_emb")

        def step():
            fused_loss(q, t, n, temperature=0.5, reduction="mean", **inputs).backward()
            q.grad = t.grad = n.grad = None
        unit = "calls/s"
    elif kind == "collate":
        import numpy as np

        from negrec.data import CollateConfig, Collator, Feedback, TargetRule, load_movielens

        log = load_movielens(ML100K)
        config = CollateConfig(max_len=200, targets={Feedback.POSITIVE: TargetRule(1, 1.0),
                                                     Feedback.DISLIKE: TargetRule(-1, 1.0),
                                                     Feedback.SKIP: TargetRule(-1, 0.3)})
        collator = Collator(log, config, threads=torch.get_num_threads())
        rng = np.random.default_rng(0)
        users = [rng.integers(0, log.num_users, 256) for _ in range(16)]
        calls = iter(range(10**9))

        def step():
            collator(users[next(calls) % len(users)])
        unit = "batches/s"
    else:
        sys.exit(f"--worker: expected fused_loss or collate; got {kind!r}")
    for _ in range(3):  # first touch, thread pool start-up
        step()
    t0 = time.perf_counter()
    for _ in range(iterations):
        adapt_threads()  # between units of work, as negrec's training and scoring loops do
        step()
    seconds = time.perf_counter() - t0
    print(json.dumps({"per_s": iterations / seconds, "unit": unit,
                      "threads": torch.get_num_threads()}))


# ----------------------------------------------------------------------------- report

def fair_share(competitors: int, cpus: int) -> float:
    """The fraction of its alone throughput a process is entitled to beside ``competitors``
    single-threaded busy processes on ``cpus`` CPUs (per-process fairness)."""
    return max(cpus - competitors, cpus / (competitors + 1)) / cpus


def medians(results: list[dict]) -> dict:
    """(workload, variant, load) -> median throughput, median wall."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["workload"], r["variant"], r["load"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        tp = [r["throughput"] for r in rs if r["throughput"] is not None]
        out[key] = {"throughput": statistics.median(tp) if tp else None,
                    "wall_s": statistics.median(r["wall_s"] for r in rs),
                    "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                    "timed_out": any(r.get("timed_out") for r in rs), "n": len(rs)}
    return out


RUN_LINE = re.compile(r"round (\d+) (\S+)\s+(old|new)\s+(\d) busy: (?:([\d.]+) (\S+)|timed out), "
                      r"wall ([\d.]+) s, CPU ([\d.]+) s")


def parse_run_lines(text: str) -> list[dict]:
    """The results of the run lines ``record`` printed (``--from-log``)."""
    results = []
    for m in RUN_LINE.finditer(text):
        rnd, workload, variant, load, per_s, unit, wall, cpu = m.groups()
        timed_out = per_s is None
        throughput = None if timed_out else float(per_s)
        if workload == "demo" and not timed_out:
            throughput = 1 / float(wall)  # printed rounded to 0.0 runs/s
        results.append(dict(workload=workload, variant=variant, load=int(load), round=int(rnd),
                            throughput=throughput, unit=unit or "runs/s", wall_s=float(wall),
                            cpu_s=float(cpu), timed_out=timed_out))
    return results


def available_cpus_usable() -> int:
    from negrec.threads import available_cpus

    return available_cpus().usable


def print_table(med: dict, cpus: int) -> dict:
    """Prints the table; returns the ratios by (workload, variant, load)."""
    ratios = {}
    print(f"\n{'':<19} {'alone':>10} " + " ".join(f"{f'---- {k} busy ----':^30}" for k in LOADS[1:]))
    print(f"{'workload':<11} {'variant':<7} {'per_s':>10} "
          + " ".join(f"{'per_s':>10} {'vs alone':>9} {'vs share':>9}" for _ in LOADS[1:])
          + f" {'wall s (alone/1/2)':>20} {'CPU s (alone/1/2)':>20}")
    for workload in ("train", "fused_loss", "collate"):
        for variant in VARIANTS:
            alone = med.get((workload, variant, 0))
            if alone is None:
                continue
            cells, walls, cpus_used = [], [f"{alone['wall_s']:.1f}"], [f"{alone['cpu_s']:.1f}"]
            for k in LOADS[1:]:
                m = med.get((workload, variant, k))
                if m is None:
                    cells.append(f"{'-':>30}")
                    continue
                vs_alone = m["throughput"] / alone["throughput"]
                vs_share = vs_alone / fair_share(k, cpus)
                ratios[(workload, variant, k)] = (vs_alone, vs_share)
                cells.append(f"{m['throughput']:>10.1f} {vs_alone:>8.2f}x {vs_share:>8.2f}x")
                walls.append(f"{m['wall_s']:.1f}")
                cpus_used.append(f"{m['cpu_s']:.1f}")
            print(f"{workload:<11} {variant:<7} {alone['throughput']:>10.1f} " + " ".join(cells)
                  + f" {'/'.join(walls):>20} {'/'.join(cpus_used):>20}")
        old, new = med.get((workload, "old", 0)), med.get((workload, "new", 0))
        if old and new:
            ratios[(workload, "new_vs_old", 0)] = new["throughput"] / old["throughput"]
            print(f"{'':<11} alone, new/old: {ratios[(workload, 'new_vs_old', 0)]:.2f}x")
    old, new = med.get(("bench_train", "old", 0)), med.get(("bench_train", "new", 0))
    if old and new:
        ratios[("bench_train", "new_vs_old", 0)] = new["throughput"] / old["throughput"]
        print(f"bench_train --quick alone: old {old['throughput']:.0f}, new "
              f"{new['throughput']:.0f} targets/s: new/old "
              f"{ratios[('bench_train', 'new_vs_old', 0)]:.2f}x")
    for variant in VARIANTS:
        idle, busy = med.get(("demo", variant, 0)), med.get(("demo", variant, 2))
        if busy:
            limit = " (time limit hit)" if busy["timed_out"] else ""
            idle_text = f"alone {idle['wall_s']:.0f} s, " if idle else ""
            ratio = f" = {busy['wall_s'] / idle['wall_s']:.2f}x alone" if idle else ""
            print(f"demo --quick, {variant}: {idle_text}2 busy {busy['wall_s']:.0f} s{limit}{ratio}")
    return ratios


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, help="rounds of the load blocks (default 1 quick, 3 full)")
    ap.add_argument("--demo-limit", type=float, default=6.0,
                    help="full mode: stop a demo --quick beside competitors after this many "
                         "times the same variant's alone time (default 6)")
    ap.add_argument("--no-bench-train", action="store_true", help="skip bench_train --quick")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/contention.csv"))
    ap.add_argument("--from-log", type=Path,
                    help="print the table of an earlier run from the lines it printed (e.g. a "
                         "run stopped before its summary); runs nothing")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, args.iterations)
    if args.from_log:
        print_table(medians(parse_run_lines(args.from_log.read_text())), available_cpus_usable())
        return None
    if not (ML100K / "u.data").exists():
        sys.exit(f"MovieLens-100K not found at {ML100K}; set NEGREC_ML100K")

    from negrec.threads import available_cpus, resolve_policy

    cpus = available_cpus()
    policy = resolve_policy(environ=base_environment())
    rounds = args.rounds or (1 if args.quick else 3)
    iterations = {"fused_loss": 10 if args.quick else 30, "collate": 2000 if args.quick else 5000}
    start_load, start_busy = loadavg(), busy_fraction()
    busy_text = "unknown" if start_busy is None else f"{start_busy:.0%}"
    print(f"machine at start: load average {start_load}; busy {busy_text} of {os.cpu_count()} "
          f"CPUs over 2 s before any run of this bench (other work)")
    print(f"CPUs available to this process: {cpus.describe()}; new policy: {policy.threads} "
          f"intra-op threads ({policy.threads_source})", flush=True)
    if start_busy is not None and start_busy > 0.2:
        print(f"NOTE: other work kept the machine {start_busy:.0%} busy before this bench: the "
              "'alone' runs are not alone, so the 'vs share' ratios overstate what a quiet "
              "machine would show; old vs new (same conditions, alternating) still compare",
              flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results: list[dict] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench_contention_"))

    def record(workload: str, variant: str, load: int, rnd: int, result: dict) -> None:
        result.update(workload=workload, variant=variant, load=load, round=rnd,
                      loadavg=loadavg())
        results.append(result)
        tp = "timed out" if result["throughput"] is None else f"{result['throughput']:.1f} {result['unit']}"
        print(f"  round {rnd} {workload:<11} {variant:<4} {load} busy: {tp}, "
              f"wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s "
              f"(load average {result['loadavg']})", flush=True)

    try:
        if not args.no_bench_train:
            for variant in VARIANTS:  # idle-machine check, before the loaded blocks
                record("bench_train", variant, 0, 0, bench_train_run(variant, scratch, variant))
        for rnd in range(rounds):
            for load in LOADS[rnd % len(LOADS):] + LOADS[:rnd % len(LOADS)]:
                order = VARIANTS if (rnd + load) % 2 == 0 else VARIANTS[::-1]
                with Competitors(load):
                    for variant in order:
                        record("train", variant, load, rnd,
                               train_run(variant, scratch, f"{variant}{load}r{rnd}"))
                        for kind in ("fused_loss", "collate"):
                            record(kind, variant, load, rnd,
                                   worker_run(kind, variant, iterations[kind]))
        if not args.quick:  # old, new alone; new, old beside 2 (each variant once per load)
            alone = {}
            for variant in VARIANTS:
                with Competitors(0):
                    alone[variant] = demo_run(variant, scratch, f"{variant}0", None)
                    record("demo", variant, 0, 0, alone[variant])
            for variant in VARIANTS[::-1]:
                with Competitors(2):
                    record("demo", variant, 2, 0, demo_run(variant, scratch, f"{variant}2",
                                                           args.demo_limit * alone[variant]["wall_s"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nmachine load average at start {start_load}, at end {loadavg()}; "
          f"busy {busy_text} before the bench; {cpus.usable} CPUs available; medians of {rounds} "
          "round(s); throughput per second")
    med = medians(results)
    ratios = print_table(med, cpus.usable)
    write_csv(args.csv, results, stamp, start_load)

    def fmt(value) -> str:
        return "nan" if value is None else f"{value:.2f}"

    train = {k: ratios.get(("train", "new", k), (None, None)) for k in LOADS[1:]}
    old_train = {k: ratios.get(("train", "old", k), (None, None)) for k in LOADS[1:]}
    line = (f"train_vs_share_1busy={fmt(train[1][1])} train_vs_share_2busy={fmt(train[2][1])} ")
    demo = {v: (med.get(("demo", v, 2)), med.get(("demo", v, 0))) for v in VARIANTS}
    if demo["new"][0]:
        for variant, prefix in (("new", ""), ("old", "old_")):
            busy, idle = demo[variant]
            # a run stopped at its time limit: its time is a lower bound (limit_hit=1)
            line += (f"{prefix}demo_quick_s_2busy={busy['wall_s']:.0f} "
                     f"{prefix}demo_quick_s_alone={idle['wall_s']:.0f} "
                     f"{prefix}demo_quick_2busy_vs_alone={busy['wall_s'] / idle['wall_s']:.2f} "
                     f"{prefix}demo_quick_2busy_limit_hit={int(busy['timed_out'])} ")
    else:
        print("quick mode: demo --quick not run (demo_quick_s_2busy=nan); the last line gives "
              "the train run's wall time beside 2 competitors (new policy): train_wall_s_2busy")
        line += ("demo_quick_s_2busy=nan "
                 f"train_wall_s_2busy={med[('train', 'new', 2)]['wall_s']:.1f} ")
    line += (f"old_train_vs_share_1busy={fmt(old_train[1][1])} "
             f"old_train_vs_share_2busy={fmt(old_train[2][1])} "
             f"train_alone_new_vs_old={fmt(ratios.get(('train', 'new_vs_old', 0)))} "
             f"bench_train_alone_new_vs_old={fmt(ratios.get(('bench_train', 'new_vs_old', 0)))} "
             f"start_loadavg={start_load.split()[0]}")
    print(line)


def write_csv(path: Path, results: list[dict], stamp: str, start_load: str) -> None:
    import negrec

    from negrec.files import append_csv

    append_csv(path, [dict(timestamp=stamp, workload=r["workload"], variant=r["variant"],
                           competitors=r["load"], round=r["round"], throughput=r["throughput"],
                           unit=r["unit"], wall_s=round(r["wall_s"], 2), cpu_s=round(r["cpu_s"], 2),
                           timed_out=bool(r.get("timed_out")), loadavg_at_run=r["loadavg"],
                           loadavg_at_start=start_load, machine=platform.machine(),
                           version=negrec.__version__) for r in results])


if __name__ == "__main__":
    main()
