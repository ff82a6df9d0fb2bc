#!/usr/bin/env python
"""Scale: ingest, the memory-mapped event store, training and evaluation on generated logs of
1M, 10M and 25M events, and a catalogue sweep (V = 10k, 100k, 1M items).

  python benches/bench_scale.py --quick                # 1M events (minutes)
  python benches/bench_scale.py                        # 1M, 10M and 25M events (slow: ~1 h)
  python benches/bench_scale.py --sizes 25M --stages generate,convert,open,train,evaluate
  python benches/bench_scale.py --quick --stages ingest   # only the loaders and the floor

Every stage runs in a child process of its own (``os.wait4`` gives that process's peak RSS),
so a figure is the stage's alone. Per size (events of ``U = E / 100`` users over
``V = 60,000`` items with Zipf popularity, in time order, string user ids, integer item ids,
integer timestamps and feedback labels):

- ``floor_csv`` / ``floor_parquet``: pyarrow read + dictionary-encode the user and item ids
  + per-user time sort (``np.lexsort``): the least any loader must do (the floor);
- ``load_csv`` / ``load_parquet``: ``negrec.data.load_table`` into an EventLog (its bytes: the
  ``arrays_mb`` column), ingest stages interleaved (floor, loader, floor, loader, ...) and
  repeated ``--repeats`` times; the best time of each counts;
- ``convert``: ``negrec data convert`` of the Parquet file into an event store;
- ``open``: ``EventLog.open`` of the store (seconds, RSS it adds) and its ``stats()``;
- ``train``: ``negrec train --data store`` for ``--train-steps`` steps of the sampled softmax
  (1,024 negatives), ``eval_every=0`` (its targets/s from metrics.json; the wall time and
  peak RSS include the CLI's own evaluation of every held-out user);
- ``evaluate``: full-ranking evaluation of 10,000 held-out users over the whole catalogue (the
  library, on the store, with the checkpoint of ``train``).

The catalogue sweep trains and evaluates the same way on logs of 1.2M events over V = 10k,
100k and 1M items (every item has an event), interleaved by catalogue.

Appends one row per stage to bench_results/scale.csv (the load average of the machine beside
each figure); the last line printed holds ``key=value`` pairs: ``ingest_csv_vs_arrow`` /
``ingest_parquet_vs_arrow`` (loader seconds / floor seconds, the worst size),
``load_rss_vs_arrays`` ((peak RSS of a load - 300 MB) / bytes of the loaded log's arrays, the
worst load; the target <= 2 is "peak RSS <= 2x the arrays + 300 MB"), ``open_25m_s`` (seconds
to open the 25M-event store; ``na`` when not run) and ``train_1m_vs_10k_items`` (training
targets/s at V = 1M over V = 10k).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALL_STAGES = ("generate", "ingest", "convert", "open", "train", "evaluate", "sweep")
EVAL_USERS = 10_000
SIZE_ITEMS = 60_000
EVENTS_PER_USER = 100
SWEEP_EVENTS = 1_200_000
SWEEP_ITEMS = (10_000, 100_000, 1_000_000)
FEEDBACK_LABELS = ("positive", "neutral", "skip", "dislike")
FEEDBACK_SHARES = (0.55, 0.25, 0.1, 0.1)
RSS_ALLOWANCE_MB = 300.0  # the target's fixed part: the interpreter, numpy, pyarrow, torch


# ---- sizes ------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """'1M' / '250k' / '1000' -> events."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def size_name(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1_000}k"


# ---- children ---------------------------------------------------------------------------------

def rss_mb() -> float:
    """This process's resident set now, in MB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def log_bytes(log) -> int:
    """Bytes of every array of an EventLog (the CSR arrays, ids and item metadata)."""
    arrays = [log.offsets, log.items, log.timestamps, log.feedback, log.user_ids,
              log.item_meta.raw_ids, log.item_meta.cluster]
    arrays += [a for a in (log.strength, log.item_meta.creator) if a is not None]
    return sum(a.nbytes for a in arrays)


def child_generate(a: dict) -> dict:
    """Writes ``events.csv`` and ``events.parquet`` (and nothing else) into ``a["dir"]``: ``E``
    events of ``U`` users over ``V`` items (Zipf popularity, exponent 1.07, over a random order
    of the item ids; every item has at least one event when ``cover``), written in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(a["dir"])
    out.mkdir(parents=True, exist_ok=True)
    n, v, u = a["events"], a["items"], a["users"]
    rng = np.random.default_rng(a["seed"])
    ranks = np.arange(1, v + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -1.07)
    cdf /= cdf[-1]
    item_of_rank = rng.permutation(v).astype(np.int64) + 1  # ids 1..V, popularity shuffled
    user_id_of = rng.permutation(u) + 1
    schema = pa.schema([("user", pa.string()), ("item", pa.int64()), ("timestamp", pa.int64()),
                        ("feedback", pa.string())])
    labels = pa.array(FEEDBACK_LABELS)
    t0 = time.perf_counter()
    chunk = 1_000_000
    with pacsv.CSVWriter(out / "events.csv.tmp", schema) as cw, \
            pq.ParquetWriter(out / "events.parquet.tmp", schema) as pw:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            pos = np.arange(start, start + m)
            items = item_of_rank[np.searchsorted(cdf, rng.random(m))]
            if a["cover"]:  # the first V events visit every item once
                first = pos < v
                items[first] = item_of_rank[pos[first]]
            users = user_id_of[rng.integers(0, u, m)]
            # time order with a little jitter (some events arrive late, as in real logs)
            ts = 1_600_000_000 + pos * 3 + rng.integers(0, 50, m)
            fb = np.searchsorted(np.cumsum(FEEDBACK_SHARES), rng.random(m) * 0.999999)
            user_text = pc.binary_join_element_wise("u", pc.cast(pa.array(users), pa.string()), "")
            batch = pa.record_batch([user_text, pa.array(items), pa.array(ts),
                                     labels.take(pa.array(fb))], schema=schema)
            cw.write_batch(batch)
            pw.write_batch(batch)
    os.replace(out / "events.csv.tmp", out / "events.csv")
    os.replace(out / "events.parquet.tmp", out / "events.parquet")
    return {"seconds": time.perf_counter() - t0,
            "csv_mb": (out / "events.csv").stat().st_size / 2**20,
            "parquet_mb": (out / "events.parquet").stat().st_size / 2**20}


def child_floor(a: dict) -> dict:
    """pyarrow read + dictionary-encode user and item ids + per-user time sort."""
    import numpy as np
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pacsv.read_csv(a["path"]) if a["path"].endswith(".csv") else pq.read_table(a["path"])
    users = table.column("user").combine_chunks().dictionary_encode().indices.to_numpy()
    items = table.column("item").combine_chunks().dictionary_encode().indices.to_numpy()
    ts = table.column("timestamp").to_numpy()
    order = np.lexsort((ts, users))
    items, ts = items[order], ts[order]
    return {"seconds": time.perf_counter() - t0, "events": len(order)}


def child_load(a: dict) -> dict:
    from negrec.data import load_table

    base = rss_mb()
    t0 = time.perf_counter()
    log = load_table(a["path"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "events": log.num_events, "arrays_mb": log_bytes(log) / 2**20,
            "rss_before_mb": base}


def child_convert(a: dict) -> dict:
    from negrec.data import load_table

    t0 = time.perf_counter()
    log = load_table(a["path"])
    log.save_store(a["store"], overwrite=True)
    return {"seconds": time.perf_counter() - t0, "events": log.num_events,
            "arrays_mb": log_bytes(log) / 2**20}


def child_open(a: dict) -> dict:
    from negrec.data import EventLog

    base = rss_mb()
    t0 = time.perf_counter()
    log = EventLog.open(a["store"])
    seconds = time.perf_counter() - t0
    opened = rss_mb()
    t1 = time.perf_counter()
    stats = log.stats()
    return {"seconds": seconds, "open_rss_mb": opened - base, "stats_s": time.perf_counter() - t1,
            "stats_rss_mb": rss_mb() - opened, "events": stats["events"]}


def child_evaluate(a: dict) -> dict:
    import numpy as np

    from negrec.data import EventLog, leave_one_out
    from negrec.data.split import HeldOut
    from negrec.eval.metrics import evaluate
    from negrec.eval.recommender import from_checkpoint
    from negrec.train.checkpoint import load_checkpoint

    log = EventLog.open(a["store"])
    ck = load_checkpoint(a["checkpoint"])
    test = leave_one_out(log).test
    keep = np.arange(min(a["users"], len(test)))
    held = HeldOut(users=test.users[keep], items=test.items[keep], feedback=test.feedback[keep],
                   timestamps=test.timestamps[keep], history=test.history.select_users(keep))
    t0 = time.perf_counter()
    evaluate(from_checkpoint(ck), held, ks=(10,), bootstrap=0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "users": len(keep), "users_per_s": len(keep) / seconds,
            "items": log.num_items}


CHILDREN = {"generate": child_generate, "floor": child_floor, "load": child_load,
            "convert": child_convert, "open": child_open, "evaluate": child_evaluate}


def child_main(stage: str, args_json: str) -> None:
    out = CHILDREN[stage](json.loads(args_json))
    print("RESULT " + json.dumps(out))


# ---- the parent -------------------------------------------------------------------------------

def loadavg() -> str:
    return open("/proc/loadavg").read().split()[0]


def run_process(cmd: list[str]) -> tuple[float, float, str]:
    """Runs ``cmd``; (wall seconds, peak RSS MB of that process, its stdout). Raises with its
    stderr when it fails. Output goes to temporary files, so that the process can be reaped with
    ``os.wait4``, whose resource usage is that process's own."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({code}):\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def run_child(stage: str, **kwargs) -> dict:
    """Runs one child stage; its result with ``peak_rss_mb`` and ``wall_s`` added."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stage, json.dumps(kwargs)]
    wall, peak, out = run_process(cmd)
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return {**json.loads(line[len("RESULT "):]), "peak_rss_mb": peak, "wall_s": wall}


class Results:
    """The rows of this run (appended to the CSV as they come) and the figures of the last
    line."""

    FIELDS = ["date", "commit", "size", "events", "items", "stage", "repeat", "seconds",
              "peak_rss_mb", "extra", "loadavg_1m"]

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()

    def add(self, size: str, events: int, items: int, stage: str, repeat: int, res: dict,
            load: str) -> dict:
        extra = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()
                 if k not in ("seconds", "peak_rss_mb")}
        row = {"date": dt.datetime.now().isoformat(timespec="seconds"), "commit": self.commit,
               "size": size, "events": events, "items": items, "stage": stage, "repeat": repeat,
               "seconds": round(res["seconds"], 3), "peak_rss_mb": round(res["peak_rss_mb"], 1),
               "extra": json.dumps(extra, sort_keys=True), "loadavg_1m": load}
        from negrec.files import append_csv  # the parent process imports negrec only here

        append_csv(self.path, [row], self.FIELDS)
        self.rows.append({**row, **res})
        print(f"{size:>5} {stage:<14} #{repeat} {res['seconds']:9.2f} s  "
              f"{res['peak_rss_mb']:8.0f} MB peak  load {load}  "
              f"{ {k: v for k, v in extra.items() if k != 'wall_s'} }", flush=True)
        return row

    def best(self, size: str, stage: str, key: str = "seconds") -> dict | None:
        rows = [r for r in self.rows if r["size"] == size and r["stage"] == stage]
        return min(rows, key=lambda r: r[key]) if rows else None


def train_command(store: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "negrec", "train", "--data", "store", "--path", str(store),
            "--out", str(out), "--overwrite", "--no-progress", "--objective", "input_ntr",
            "--set", f"max_steps={steps}", "--set", "loss.mode=sampled",
            "--set", "loss.num_negatives=1024", "--set", "eval_every=0",
            "--set", "tensorboard=false", "--set", "batch_size=128",
            "--set", "model.max_len=50", "--set", f"log_every={max(1, steps // 4)}"]


def run_train(results: Results, size: str, events: int, items: int, store: Path, run: Path,
              steps: int, repeat: int) -> dict:
    load = loadavg()
    wall, peak, _ = run_process(train_command(store, run, steps))
    metrics = json.loads((run / "metrics.json").read_text())
    res = {"seconds": metrics["train"]["train_seconds"], "peak_rss_mb": peak, "wall_s": wall,
           "targets_per_s": metrics["train"]["targets_per_s"], "steps": metrics["train"]["steps"]}
    return results.add(size, events, items, "train", repeat, res, load)


def bench_size(args, results: Results, events: int) -> None:
    size = size_name(events)
    users = max(events // EVENTS_PER_USER, 1)
    root = args.data / size
    csv_path, pq_path, store = root / "events.csv", root / "events.parquet", root / "store"
    stages = args.stages
    if "generate" in stages or not pq_path.exists():
        load = loadavg()
        res = run_child("generate", dir=str(root), events=events, items=SIZE_ITEMS, users=users,
                        seed=events, cover=False)
        results.add(size, events, SIZE_ITEMS, "generate", 0, res, load)
    if "ingest" in stages:
        for rep in range(args.repeats):
            for stage, path in (("floor_csv", csv_path), ("load_csv", csv_path),
                                ("floor_parquet", pq_path), ("load_parquet", pq_path)):
                load = loadavg()
                res = run_child(stage.split("_")[0], path=str(path))
                results.add(size, events, SIZE_ITEMS, stage, rep, res, load)
    if "convert" in stages:
        load = loadavg()
        res = run_child("convert", path=str(pq_path), store=str(store))
        results.add(size, events, SIZE_ITEMS, "convert", 0, res, load)
    if "open" in stages:
        for rep in range(args.repeats):
            load = loadavg()
            results.add(size, events, SIZE_ITEMS, "open", rep, run_child("open", store=str(store)),
                        load)
    run = root / "run"
    if "train" in stages:
        run_train(results, size, events, SIZE_ITEMS, store, run, args.train_steps, 0)
    if "evaluate" in stages:
        load = loadavg()
        res = run_child("evaluate", store=str(store), checkpoint=str(run / "best.pt"),
                        users=EVAL_USERS)
        results.add(size, events, SIZE_ITEMS, "evaluate", 0, res, load)


def bench_sweep(args, results: Results) -> None:
    """Training targets/s and evaluation users/s against the catalogue size, interleaved."""
    users = SWEEP_EVENTS // EVENTS_PER_USER
    for v in SWEEP_ITEMS:
        root = args.data / f"sweep_{size_name(v)}"
        if not (root / "store" / "manifest.json").exists():
            load = loadavg()
            res = run_child("generate", dir=str(root), events=SWEEP_EVENTS, items=v, users=users,
                            seed=v, cover=True)
            results.add(f"V={size_name(v)}", SWEEP_EVENTS, v, "generate", 0, res, load)
            load = loadavg()
            res = run_child("convert", path=str(root / "events.parquet"), store=str(root / "store"))
            results.add(f"V={size_name(v)}", SWEEP_EVENTS, v, "convert", 0, res, load)
    for rep in range(args.repeats):
        for v in SWEEP_ITEMS:
            root = args.data / f"sweep_{size_name(v)}"
            run_train(results, f"V={size_name(v)}", SWEEP_EVENTS, v, root / "store", root / "run",
                      args.sweep_steps, rep)
    for v in SWEEP_ITEMS:
        root = args.data / f"sweep_{size_name(v)}"
        load = loadavg()
        res = run_child("evaluate", store=str(root / "store"), checkpoint=str(root / "run" / "best.pt"),
                        users=EVAL_USERS)
        results.add(f"V={size_name(v)}", SWEEP_EVENTS, v, "evaluate", 0, res, load)


def summary(args, results: Results) -> str:
    def ratio(size, num, den, key="seconds"):
        a, b = results.best(size, num, key), results.best(size, den, key)
        return a[key] / b[key] if a and b else None

    sizes = [size_name(n) for n in args.sizes]
    csv_r = [r for r in (ratio(s, "load_csv", "floor_csv") for s in sizes) if r is not None]
    pq_r = [r for r in (ratio(s, "load_parquet", "floor_parquet") for s in sizes) if r is not None]
    rss = [(r["peak_rss_mb"] - RSS_ALLOWANCE_MB) / r["arrays_mb"] for r in results.rows
           if r["stage"] in ("load_csv", "load_parquet")]
    open25 = results.best("25M", "open")
    t10k = results.best("V=10k", "train", "targets_per_s")
    t1m = results.best("V=1M", "train", "targets_per_s")
    train_ratio = None
    if t10k and t1m:  # best run of each (max targets/s)
        best10k = max(r["targets_per_s"] for r in results.rows
                      if r["size"] == "V=10k" and r["stage"] == "train")
        best1m = max(r["targets_per_s"] for r in results.rows
                     if r["size"] == "V=1M" and r["stage"] == "train")
        train_ratio = best1m / best10k

    def fmt(x, digits=2):
        return "na" if x is None else f"{x:.{digits}f}"

    return (f"ingest_csv_vs_arrow={fmt(max(csv_r) if csv_r else None)} "
            f"ingest_parquet_vs_arrow={fmt(max(pq_r) if pq_r else None)} "
            f"load_rss_vs_arrays={fmt(max(rss) if rss else None)} "
            f"open_25m_s={fmt(open25['seconds'] if open25 else None, 4)} "
            f"train_1m_vs_10k_items={fmt(train_ratio)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1M events only")
    ap.add_argument("--sizes", help="comma-separated event counts, e.g. 1M,10M,25M")
    ap.add_argument("--stages", default=",".join(ALL_STAGES),
                    help=f"comma-separated subset of {', '.join(ALL_STAGES)}")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats of ingest/open/sweep")
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--sweep-steps", type=int, default=60)
    ap.add_argument("--data", type=Path, default=REPO / "bench_results" / "scale_data",
                    help="where the generated logs and stores go (reused between runs)")
    ap.add_argument("--csv", type=Path, default=REPO / "bench_results" / "scale.csv")
    args = ap.parse_args()
    args.sizes = [parse_size(s) for s in (args.sizes or ("1M" if args.quick else "1M,10M,25M"))
                  .split(",")]
    args.stages = set(args.stages.split(","))
    unknown = args.stages - set(ALL_STAGES)
    if unknown:
        sys.exit(f"--stages: unknown {sorted(unknown)}; expected a subset of {ALL_STAGES}")
    results = Results(args.csv)
    print(f"bench_scale: sizes {[size_name(n) for n in args.sizes]}, stages {sorted(args.stages)}, "
          f"commit {results.commit}, load average {open('/proc/loadavg').read().strip()}",
          flush=True)
    for n in args.sizes:
        bench_size(args, results, n)
    if "sweep" in args.stages:
        bench_sweep(args, results)
    print(f"load average at the end: {open('/proc/loadavg').read().strip()}")
    print(summary(args, results))


if __name__ == "__main__":
    main()
