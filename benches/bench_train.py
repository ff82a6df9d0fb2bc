#!/usr/bin/env python
"""Training throughput on MovieLens-100K: supervised targets per second (every non-ignored
position counts once) and sequences (batch rows) per second, for SASRec and GRU at max length
50, hidden 64, 2 layers, batch 256, full softmax over all items, objective input_ntr.

  python benches/bench_train.py --quick   # SASRec, 3 epochs (under two minutes)
  python benches/bench_train.py           # SASRec and GRU, 8 epochs each, interleaved by epoch

For scale: RecBole 1.2.1's SASRec trains at 576 supervised targets/s on this 2-core machine
(prefix sequences, one target each; measured by the issue's author). Appends to
bench_results/train.csv; the last line holds key=value pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import torch

import negrec
from negrec.data import leave_one_out, load_movielens
from negrec.files import append_csv
from negrec.models import ModelConfig
from negrec.train.objectives import DISLIKE_WEIGHT_GRID, Objective
from negrec.threads import configure as apply_thread_policy
from negrec.train import LossConfig, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))
RECBOLE_SASREC_TARGETS_PER_S = 576.0


def make_trainer(kind: str, split, out: Path, epochs: int) -> Trainer:
    # one model at a given dislike weight (the weight changes no cost), without the count prior
    # (as the rows this bench appended before it became a default measured)
    cfg = TrainConfig(model=ModelConfig(kind=kind, dim=64, num_layers=2, num_heads=2, dropout=0.2,
                                        max_len=50, count_prior=False),
                      objective=Objective("input_ntr", {"dislike": DISLIKE_WEIGHT_GRID[0]}),
                      loss=LossConfig(mode="full"), epochs=epochs,
                      batch_size=256, eval_every=0, progress=False, tensorboard=False)
    return Trainer(cfg, split.train, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/train.csv"))
    ap.add_argument("--out", type=Path, default=Path("bench_results/train_runs"))
    args = ap.parse_args()
    # the thread policy, as negrec's command line applies it (docs/performance.md): threads
    # from the CPUs available, adapted to the load; NEGREC_THREADS=off: torch's defaults
    apply_thread_policy()
    if not (ML100K / "u.data").exists():
        sys.exit(f"MovieLens-100K not found at {ML100K}; set NEGREC_ML100K")
    split = leave_one_out(load_movielens(ML100K))
    kinds = ["sasrec"] if args.quick else ["sasrec", "gru"]
    epochs = 3 if args.quick else 8
    trainers = {k: make_trainer(k, split, args.out / k, epochs) for k in kinds}
    # interleave: one epoch of each model in turn, so machine noise hits both alike
    results = {}
    for e in range(epochs):
        for k, t in trainers.items():
            t.config.epochs = e + 1
            results[k] = t.fit()
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"negrec {negrec.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ml-100k train split: {split.train.num_events} events, {len(trainers['sasrec'].window_users)} windows")
    print(f"{'model':<8} {'epochs':>6} {'steps':>6} {'seconds':>8} {'targets/s':>10} {'sequences/s':>12} {'vs RecBole SASRec':>18}")
    rows = []
    for k, r in results.items():
        print(f"{k:<8} {r.epochs_completed:6d} {r.steps:6d} {r.train_seconds:8.1f} {r.targets_per_s:10.0f} "
              f"{r.sequences_per_s:12.0f} {r.targets_per_s / RECBOLE_SASREC_TARGETS_PER_S:17.1f}x")
        for metric, v in (("targets_per_s", r.targets_per_s), ("sequences_per_s", r.sequences_per_s)):
            rows.append(dict(timestamp=stamp, op="train", impl=k, mode="forward+backward+step",
                             metric=metric, p20=v, p50=v, p80=v, shape="ml-100k,L=50,D=64,B=256",
                             machine=os.uname().machine, version=negrec.__version__))
    append_csv(args.csv, rows)
    s = results["sasrec"]
    line = (f"targets_per_s={s.targets_per_s:.0f} sequences_per_s={s.sequences_per_s:.0f} "
            f"speedup_vs_recbole_sasrec={s.targets_per_s / RECBOLE_SASREC_TARGETS_PER_S:.1f}")
    if "gru" in results:
        g = results["gru"]
        line += f" gru_targets_per_s={g.targets_per_s:.0f} gru_sequences_per_s={g.sequences_per_s:.0f}"
    print(line)


if __name__ == "__main__":
    main()
