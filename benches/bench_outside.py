#!/usr/bin/env python
"""Measuring an outside PyTorch model against measuring the same network as a negrec model
(issue 15's target: the outside one costs no more than 1.2x).

One GRU (negrec's, dim 64, max length 50, seeded random weights, feedback codes included) over the demo's simulated
catalogue, two ways: ``checkpoint``, negrec's adapter (:func:`negrec.eval.recommender.from_model`,
collator batches, blockwise top-k); ``outside``, a plain object whose ``recommend`` left-pads
the histories itself, runs the network's ``last_state`` and ``item_table`` and takes top-k
with the history excluded, as another team's PyTorch model would. Both give the same top-k
(checked first). Each round times :func:`negrec.experiments.measure.measure_recommender`
(simulated counterfactual histories, then the closed loop, fixed sizes) once per variant, in
alternating order; the ratio is the median outside / checkpoint time of the rounds.

  python benches/bench_outside.py --quick   # 3 rounds of small sizes (about a minute)
  python benches/bench_outside.py           # 7 rounds of the default sizes

Appends to bench_results/outside.csv; the last line holds key=value pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import negrec
from negrec.eval.recommender import from_model
from negrec.experiments.measure import MeasureSizes, measure_recommender
from negrec.experiments.recommenders import simulated_world_spec
from negrec.files import append_csv
from negrec.models import ModelConfig
from negrec.models.inputs import ModelInputs
from negrec.models.registry import build_model
from negrec.sim import Simulator
from negrec.threads import configure as apply_thread_policy

TARGET_RATIO = 1.2


class OutsideTorchRecommender:
    """A torch network behind ``recommend(items, feedback, k)`` without negrec's inference path:
    the last ``max_len`` events left-padded by hand, the last state times the item table, the
    history's items set to -inf, ``torch.topk``."""

    name = "outside"

    def __init__(self, net):
        self.net = net

    @torch.no_grad()
    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        L, B = self.net.config.max_len, len(items)
        inp = np.full((B, L), self.net.pad_item, dtype=np.int64)
        codes = np.zeros((B, L), dtype=np.int64)
        for b, (i, c) in enumerate(zip(items, feedback)):
            n = min(len(i), L)
            if n:
                inp[b, L - n:], codes[b, L - n:] = i[len(i) - n:], c[len(c) - n:]
        mask = torch.from_numpy(inp != self.net.pad_item)
        states = self.net.last_state(torch.from_numpy(inp), torch.from_numpy(codes), mask)
        scores = states.float() @ self.net.item_table().float().T
        rows = np.repeat(np.arange(B), [len(i) for i in items])
        seen = np.concatenate([np.asarray(i, np.int64) for i in items])
        scores[torch.from_numpy(rows), torch.from_numpy(seen)] = -torch.inf
        return scores.topk(k, dim=1).indices.numpy()


def same_top_k(a, b, sim: Simulator, k: int = 10, n: int = 256) -> None:
    """Both recommenders give the same top-k for n random histories over ``sim``'s catalogue
    (SystemExit if not)."""
    rng = np.random.default_rng(0)
    V = sim.item_meta().num_items
    lengths = rng.integers(1, 80, n)
    items = [rng.choice(V, size=m, replace=False).astype(np.int64) for m in lengths]
    codes = [rng.choice([1, 2, 3, 4], size=m).astype(np.int8) for m in lengths]
    ta, tb = a.recommend(items, codes, k), b.recommend(items, codes, k)
    if not np.array_equal(ta, tb):
        rows = int((ta != tb).any(1).sum())
        raise SystemExit(f"the two variants disagree on {rows} of {n} top-{k} lists")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/outside.csv"))
    args = ap.parse_args()
    apply_thread_policy()  # the thread policy, as negrec's command line applies it
    spec = simulated_world_spec()
    sim = Simulator(spec.sim, seed=spec.sim_seed)
    meta = sim.item_meta()
    torch.manual_seed(0)
    net = build_model(ModelConfig(kind="gru", dim=64, max_len=50), meta.num_items,
                      meta.cluster, meta.creator).eval()
    with torch.no_grad():  # random feedback codes (negrec starts them at zero: blind), so the
        net.embed.feedback.weight[1:].normal_(std=0.5)  # network responds to a dislike
    variants = {"checkpoint": from_model(net, ModelInputs(), name="checkpoint"),
                "outside": OutsideTorchRecommender(net)}
    same_top_k(variants["checkpoint"], variants["outside"], sim)
    rounds = 3 if args.quick else 7
    sizes = (MeasureSizes(histories=300, steps=20, actions=("dislike",), loop_users=150,
                          loop_steps=20, loop_warmup=10, bootstrap=100) if args.quick
             else MeasureSizes(histories=1000, steps=49, loop_users=500, bootstrap=200))
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    figures: dict[str, float] = {}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            t0 = time.perf_counter()
            m = measure_recommender(variants[name], meta, sizes, sim)
            seconds[name].append(time.perf_counter() - t0)
            figures[name] = m.entry["responsiveness"]["cluster"]["dislike"]["mean"]
    ratios = [o / c for o, c in zip(seconds["outside"], seconds["checkpoint"])]
    ratio = statistics.median(ratios)
    print(f"negrec {negrec.__version__}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; GRU dim 64 over {meta.num_items} simulated items; {rounds} rounds of "
          f"{sizes.histories} histories x {sizes.steps} steps + closed loop {sizes.loop_users} x "
          f"{sizes.loop_steps}")
    print(f"{'variant':<11} {'median s':>9} {'min s':>7} {'dislike responsiveness':>23}")
    for name, s in seconds.items():
        print(f"{name:<11} {statistics.median(s):9.2f} {min(s):7.2f} {figures[name]:23.4g}")
    print(f"outside / checkpoint per round: {', '.join(f'{x:.3f}' for x in ratios)}")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows = [dict(timestamp=stamp, op="measure_recommender", impl=name, mode="quick" if args.quick
                 else "full", metric="seconds", p20=float(np.percentile(s, 20)),
                 p50=statistics.median(s), p80=float(np.percentile(s, 80)),
                 shape=f"gru,D=64,H={sizes.histories},steps={sizes.steps}",
                 machine=os.uname().machine, version=negrec.__version__)
            for name, s in seconds.items()]
    append_csv(args.csv, rows)
    print(f"outside_vs_checkpoint={ratio:.3f} target={TARGET_RATIO} "
          f"within_target={ratio <= TARGET_RATIO} rounds={rounds} "
          f"checkpoint_s={statistics.median(seconds['checkpoint']):.2f} "
          f"outside_s={statistics.median(seconds['outside']):.2f} "
          f"same_figures={figures['outside'] == figures['checkpoint']}")


if __name__ == "__main__":
    main()
