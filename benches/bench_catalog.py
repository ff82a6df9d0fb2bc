#!/usr/bin/env python
"""Training and evaluation cost against catalogue size: supervised targets per second of a
sampled softmax (1,024 popularity negatives with logQ) at V = 10k, 100k and 1M items, and
full-ranking evaluation users per second over the whole catalogue.

Every catalogue gets a synthetic log of the same shape (the same users, 60 events each; item
popularity Zipf(1), every item present at least once; 10% dislikes), so that only V differs.
The trainers are built first, then run in turns (``--rounds`` turns of ``--steps`` steps each,
after ``--warmup`` steps), so that machine noise hits every catalogue alike; the ratios are
taken within the run. Evaluation ranks the held-out last event of ``--eval-users`` users among
all V items (history excluded), also in turns.

  python benches/bench_catalog.py --quick            # ~3 minutes on 2 cores
  python benches/bench_catalog.py                    # more steps and users
  python benches/bench_catalog.py --embeddings dense,sparse   # both row-table updates

Appends to bench_results/catalog.csv; the last line holds key=value pairs
(``train_1m_vs_10k_items``, ``train_100k_vs_10k_items``, ``eval_users_per_s_1m``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import negrec
from negrec.data import Feedback, leave_one_out
from negrec.data.log import EventLog, ItemMeta
from negrec.eval.metrics import held_out_ranks
from negrec.files import append_csv
from negrec.models import ModelConfig
from negrec.train.objectives import DISLIKE_WEIGHT_GRID, Objective
from negrec.train import LossConfig, OptimConfig, TrainConfig, Trainer

EVENTS_PER_USER = 60


def zipf_log(num_items: int, num_users: int, seed: int = 0) -> EventLog:
    """``num_users`` users of :data:`EVENTS_PER_USER` events over ``num_items`` items: every item
    once, the other events Zipf(1) over the items (item 0 the most popular), shuffled; 10% of
    events are dislikes, the rest positive."""
    n = num_users * EVENTS_PER_USER
    if n < num_items:
        raise SystemExit(f"{num_users} users x {EVENTS_PER_USER} events cannot hold every one of "
                         f"{num_items} items; use more users")
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_items + 1)
    items = np.concatenate([np.arange(num_items),
                            rng.choice(num_items, n - num_items, p=p / p.sum())])
    rng.shuffle(items)
    feedback = np.where(rng.random(n) < 0.1, Feedback.DISLIKE, Feedback.POSITIVE).astype(np.int8)
    return EventLog(offsets=np.arange(num_users + 1, dtype=np.int64) * EVENTS_PER_USER,
                    items=items, timestamps=np.tile(np.arange(EVENTS_PER_USER), num_users),
                    feedback=feedback, user_ids=np.arange(num_users),
                    item_meta=ItemMeta.anonymous(np.arange(num_items)))


def first_users(log: EventLog, n: int) -> EventLog:
    """The log of users 0..n-1 (same catalogue)."""
    end = int(log.offsets[n])
    return EventLog(offsets=log.offsets[:n + 1], items=log.items[:end],
                    timestamps=log.timestamps[:end], feedback=log.feedback[:end],
                    user_ids=log.user_ids[:n], item_meta=log.item_meta)


def make_trainer(log: EventLog, embeddings: str | None, model: str, out: Path) -> Trainer:
    """SASRec/GRU defaults (dim 64, 2 layers, max_len 50, batch 64), sampled softmax with 1,024
    popularity negatives; ``embeddings`` None keeps the configuration's default."""
    optim = OptimConfig() if embeddings is None else OptimConfig(embeddings=embeddings)
    # one model at a given dislike weight (the weight changes no cost), without the count prior
    # (as the rows this bench appended before it became a default measured)
    cfg = TrainConfig(model=ModelConfig(kind=model, count_prior=False),
                      objective=Objective("input_ntr", {"dislike": DISLIKE_WEIGHT_GRID[0]}),
                      loss=LossConfig(mode="sampled", sampler="popularity", num_negatives=1024),
                      optim=optim, epochs=1, eval_every=0, progress=False, tensorboard=False,
                      device="cpu", max_steps=1)
    trainer = Trainer(cfg, log, out, overwrite=True)
    # every fit() that stops at max_steps writes last.pt (1 GB at 1M items with its optimizer
    # state): not what this bench measures, and not counted in train_seconds anyway
    trainer.save_checkpoint = lambda name="last.pt": None
    return trainer


def train_for(trainer: Trainer, steps: int) -> tuple[int, float]:
    """(targets, seconds) of ``steps`` more optimizer steps."""
    targets, seconds = trainer.targets_seen, trainer.train_seconds
    trainer.config.max_steps = trainer.step + steps
    trainer.fit()
    return trainer.targets_seen - targets, trainer.train_seconds - seconds


def eval_seconds(trainer: Trainer, held) -> float:
    t0 = time.perf_counter()
    held_out_ranks(trainer.model, held, trainer.objective.inputs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps, rounds and users")
    ap.add_argument("--items", default="10000,100000,1000000",
                    help="catalogue sizes (the first is the ratios' baseline)")
    ap.add_argument("--embeddings", default=None,
                    help="optim.embeddings values to run, comma-separated (default: the "
                         "configuration's default)")
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--users", type=int, default=20_000, help="users of each log (60 events each)")
    ap.add_argument("--steps", type=int, default=None, help="steps per turn (10; --quick 6)")
    ap.add_argument("--rounds", type=int, default=None, help="turns (4; --quick 2)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--eval-users", type=int, default=None, help="(1000; --quick 200)")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/catalog.csv"))
    args = ap.parse_args()
    steps = args.steps or (6 if args.quick else 10)
    rounds = args.rounds or (2 if args.quick else 4)
    eval_users = args.eval_users or (200 if args.quick else 1000)
    sizes = [int(v) for v in args.items.split(",")]
    updates = args.embeddings.split(",") if args.embeddings else [None]

    runs = {}  # (V, update) -> [trainer, held-out set, targets, seconds, eval seconds]
    out = Path(tempfile.mkdtemp(prefix="bench_catalog_"))
    for V in sizes:
        log = zipf_log(V, args.users)
        held = leave_one_out(first_users(log, eval_users)).test
        for u in updates:
            t = make_trainer(log, u, args.model, out / f"{V}_{u or 'default'}")
            train_for(t, args.warmup)
            runs[V, u] = [t, held, 0, 0.0, 0.0]
    for _ in range(rounds):
        for run in runs.values():
            targets, seconds = train_for(run[0], steps)
            run[2] += targets
            run[3] += seconds
    for run in runs.values():
        run[4] = eval_seconds(run[0], run[1])
    shutil.rmtree(out, ignore_errors=True)

    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"negrec {negrec.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {' '.join(load)}; {args.model}, "
          f"{args.users} users x {EVENTS_PER_USER} events, {rounds} x {steps} steps, "
          f"{eval_users} evaluation users")
    base = {u: runs[sizes[0], u][2] / runs[sizes[0], u][3] for u in updates}
    print(f"{'items':>9} {'embeddings':>10} {'targets/s':>10} {'vs first':>9} {'eval users/s':>13}")
    rows, figures = [], {}
    for (V, u), (t, _, targets, seconds, ev) in runs.items():
        tps, ups = targets / seconds, eval_users / ev
        figures[V, u] = (tps / base[u], ups)
        print(f"{V:>9} {t.embedding_update if hasattr(t, 'embedding_update') else 'dense':>10} "
              f"{tps:10.0f} {tps / base[u]:8.2f}x {ups:13.0f}")
        for metric, value in (("targets_per_s", tps), ("eval_users_per_s", ups)):
            rows.append(dict(timestamp=stamp, op="catalog", impl=u or "default", mode=args.model,
                             metric=metric, p20=value, p50=value, p80=value,
                             shape=f"V={V},B=64,L=50,D=64,K=1024", machine=os.uname().machine,
                             version=negrec.__version__, load=" ".join(load)))
    append_csv(args.csv, rows)
    u = updates[0]
    line = [f"train_{short(V)}_vs_{short(sizes[0])}_items={figures[V, u][0]:.2f}"
            for V in sorted(sizes[1:], reverse=True)]
    line.append(f"eval_users_per_s_{short(max(sizes))}={figures[max(sizes), u][1]:.0f}")
    print(" ".join(line))


def short(v: int) -> str:
    """10000 -> "10k", 1000000 -> "1m"."""
    for div, unit in ((1_000_000, "m"), (1_000, "k")):
        if v % div == 0:
            return f"{v // div}{unit}"
    return str(v)


if __name__ == "__main__":
    main()
