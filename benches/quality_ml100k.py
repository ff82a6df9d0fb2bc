#!/usr/bin/env python
"""Quality of the four objectives on MovieLens-100K (ratings >= 4 positive, <= 2 dislike,
3 neutral): offline metrics on the leave-one-out test events and counterfactual responsiveness
to a dislike on the users' training histories (genre clusters: each movie's rarest genre; the
branched item is the model's own top-1), over several seeds.

  python benches/quality_ml100k.py --quick   # 1 seed, 8 epochs (a few minutes)
  python benches/quality_ml100k.py           # 3 seeds, up to 20 epochs with early stopping
  python benches/quality_ml100k.py --model gru --seeds 3   # the GRU (2 layers, dim 64)

Options change the model, the objectives run beside positive_only, input_ntr's dislike weight,
batch size, learning rate and whether the model sees the genre (see --help); the settings
are printed and written to the CSV. The same figures on the validation events are printed too:
settings are chosen on those, never on the test events (docs/objectives.md has the w_dislike
sweep on ml-100k; the headline configuration is
``--model gru --seeds 3 --w-dislike 50``, confirmed on fresh seeds with ``--first-seed 3``).

Objectives are interleaved per seed (the same split and seed for all four), so differences are
paired: for every objective the paired bootstrap interval of its NDCG@10 and dislike
exposure@10 difference from positive_only pools the test users of all seeds (the users are
resampled, not the seeds: seed-to-seed variation is shown by the per-seed columns).
Responsiveness pools the histories of all seeds. Appends to bench_results/quality_ml100k.csv;
the last line holds key=value pairs of the headline figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

import numpy as np

import negrec
from negrec.data.split import leave_one_out
from negrec.eval.counterfactual import log_histories, responsiveness
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_checkpoint
from negrec.eval.stats import bootstrap_ci, ratio_of_means_ci
from negrec.experiments.data import load_data
from negrec.experiments.training import train_and_evaluate
from negrec.files import append_csv
from negrec.models.config import ModelConfig
from negrec.models.registry import model_kinds
from negrec.threads import configure as apply_thread_policy
from negrec.train.checkpoint import load_checkpoint
from negrec.train.config import LossConfig, OptimConfig, TrainConfig
from negrec.train.data_spec import DataSpec
from negrec.train.objectives import DISLIKE_WEIGHT_GRID, OBJECTIVES, Objective

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))


def train_config(objective: str, seed: int, epochs: int, args) -> TrainConfig:
    """The package defaults (SASRec dim 64, 2 layers, full softmax, batch 64, lr 2e-3, the
    objective's default weights) unless the command line says otherwise."""
    defaults = TrainConfig()
    # one model per objective: a weight the command line does not give is the grid's smallest
    # (the default, auto, is chosen by training several: negrec train / negrec tune)
    weights = {"dislike": DISLIKE_WEIGHT_GRID[0] if args.w_dislike is None else args.w_dislike}
    return TrainConfig(
        data=DataSpec(source="movielens", path=str(ML100K)),
        model=ModelConfig(kind=args.model, dim=64, num_layers=2, num_heads=2, dropout=0.2,
                          max_len=50, cluster_input=args.genre_input),
        objective=Objective(objective, weights), loss=LossConfig(mode="full"),
        optim=OptimConfig(lr=args.lr or defaults.optim.lr),
        epochs=epochs, batch_size=args.batch_size or defaults.batch_size, seed=seed,
        early_stopping_patience=3, progress=False, tensorboard=False)


def versus_positive_only(cur: dict, base: dict, resamples: int):
    """Paired comparison over the same users (per-user arrays of one held-out set): NDCG@10
    difference (mean, ci_low, ci_high) and dislike exposure@10 relative to positive_only's."""
    diff = cur["ndcg@10"] - base["ndcg@10"]
    lo, hi = bootstrap_ci(diff, resamples=resamples, seed=0)
    rel = ratio_of_means_ci(cur["dislike_exposure@10"], base["dislike_exposure@10"],
                            resamples=resamples, seed=0)
    return (float(diff.mean()), lo, hi), rel


def pct(e) -> str:
    return f"{100 * e.mean:+.1f}% [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None, help="default 3 (1 with --quick)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds are first-seed .. first-seed + seeds - 1 (fresh seeds confirm a "
                         "setting chosen on others)")
    ap.add_argument("--epochs", type=int, default=None, help="default 20 (8 with --quick)")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/quality_ml100k.csv"))
    ap.add_argument("--out", type=Path, default=Path("bench_results/quality_ml100k_runs"))
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--objectives", default=",".join(OBJECTIVES),
                    help="comma-separated; positive_only is always included (the baseline)")
    ap.add_argument("--w-dislike", type=float, default=None,
                    help=f"input_ntr's dislike weight (default {DISLIKE_WEIGHT_GRID[0]:g})")
    ap.add_argument("--model", choices=model_kinds(), default="sasrec")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--genre-input", action=argparse.BooleanOptionalAction, default=True,
                    help="the model sees each movie's genre cluster (default: on)")
    args = ap.parse_args()
    # the thread policy, as negrec's command line applies it (docs/performance.md): threads
    # from the CPUs available, adapted to the load; NEGREC_THREADS=off: torch's defaults
    apply_thread_policy()
    if not (ML100K / "u.data").exists():
        sys.exit(f"MovieLens-100K not found at {ML100K}; set NEGREC_ML100K")
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (1 if args.quick else 3))))
    epochs = args.epochs or (8 if args.quick else 20)
    asked = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in asked if o not in OBJECTIVES]
    if unknown:
        ap.error(f"--objectives: unknown {unknown}; expected some of {list(OBJECTIVES)}")
    objectives = ["positive_only"] + [o for o in OBJECTIVES if o in asked and o != "positive_only"]
    ntr_weights = train_config('input_ntr', 0, epochs, args).objective.weights
    settings = (f"model={args.model} w_dislike={ntr_weights['dislike']} "
                f"batch={train_config('input_ntr', 0, epochs, args).batch_size} "
                f"lr={train_config('input_ntr', 0, epochs, args).optim.lr} genre_input={args.genre_input}")

    log = load_data(DataSpec(source="movielens", path=str(ML100K)))
    split = leave_one_out(log)
    print(f"ml-100k: {log.num_users} users, {log.num_items} items, {log.num_events} events "
          f"({', '.join(f'{k} {v}' for k, v in log.feedback_counts().items())}); seeds {seeds}, "
          f"up to {epochs} epochs; {settings}", flush=True)
    per_user = {o: {"ndcg@10": [], "dislike_exposure@10": []} for o in objectives}
    # the same on the validation events: settings (e.g. --w-dislike) are chosen on these, and
    # the test figures then report the chosen setting
    valid_user = {o: {"ndcg@10": [], "dislike_exposure@10": []} for o in objectives}
    per_seed = {o: [] for o in objectives}
    sims = {o: {"positive": [], "dislike": []} for o in objectives}
    for seed in seeds:
        for obj in objectives:  # interleaved: one objective after the other for each seed
            run = args.out / f"seed{seed}" / obj
            m = train_and_evaluate(train_config(obj, seed, epochs, args), run, split=split, ks=(10,),
                                   bootstrap=0)
            ck = load_checkpoint(run / "best.pt")
            test = evaluate(from_checkpoint(ck), split.test, ks=(10,), bootstrap=0)
            valid = evaluate(from_checkpoint(ck), split.valid, ks=(10,), bootstrap=0)
            for k in per_user[obj]:
                per_user[obj][k].append(test.per_user[k])
                valid_user[obj][k].append(valid.per_user[k])
            hist, branched, _ = log_histories(from_checkpoint(ck), split.train)
            res = responsiveness(from_checkpoint(ck), hist, branched, ck.item_meta,
                                 actions=("dislike",), repeated=(), bootstrap=0)
            for a in sims[obj]:
                sims[obj][a].append(res.similarity["cluster"][a])
            per_seed[obj].append({"seed": seed, "ndcg@10": test.metrics["ndcg@10"],
                                  "dislike_exposure@10": test.metrics["dislike_exposure@10"],
                                  "responsiveness": res.responsiveness["cluster"]["dislike"].mean,
                                  "epochs": m["train"]["epochs"], "best_epoch": m["train"]["best_epoch"],
                                  "train_seconds": m["train"]["train_seconds"]})
            r = per_seed[obj][-1]
            print(f"seed {seed} {obj:15s} NDCG@10 {r['ndcg@10']:.4f}  dislike exp.@10 "
                  f"{r['dislike_exposure@10']:.4f}  responsiveness {100 * r['responsiveness']:+.1f}%  "
                  f"(best epoch {r['best_epoch']}, {r['train_seconds']:.0f} s)", flush=True)

    rows, headline, relative = [], {}, {}
    print("\n| objective | NDCG@10 | vs positive_only | dislike exp.@10 | vs positive_only | "
          "responsiveness (genre, 95% CI) |\n|---|---|---|---|---|---|")
    base = {k: np.concatenate(v) for k, v in per_user["positive_only"].items()}
    for obj in objectives:
        cur = {k: np.concatenate(v) for k, v in per_user[obj].items()}
        cells = [obj]
        for k in ("ndcg@10", "dislike_exposure@10"):
            diff = cur[k] - base[k]
            lo, hi = bootstrap_ci(diff, resamples=args.bootstrap, seed=0)
            cells += [f"{cur[k].mean():.4f}",
                      "-" if obj == "positive_only" else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"]
            rows.append((obj, k, float(cur[k].mean()), float(diff.mean()), lo, hi))
        resp = ratio_of_means_ci(np.concatenate(sims[obj]["dislike"]), np.concatenate(sims[obj]["positive"]),
                                 resamples=args.bootstrap, seed=0)
        cells.append(pct(resp))
        rows.append((obj, "responsiveness_genre", resp.mean, resp.mean, resp.ci_low, resp.ci_high))
        headline[f"{obj}_ndcg10"] = f"{cur['ndcg@10'].mean():.4f}"
        headline[f"{obj}_resp"] = f"{resp.mean:.3f}"
        if obj != "positive_only":
            # relative change of dislike exposure vs positive_only, paired over the same users
            _, rel = versus_positive_only(cur, base, args.bootstrap)
            rows.append((obj, "dislike_exposure@10_relative", rel.mean, rel.mean, rel.ci_low, rel.ci_high))
            relative[obj] = rel
            headline[f"{obj}_dislike_exp_vs_po"] = f"{rel.mean:.3f}"
        if obj == "input_ntr":
            headline["input_ntr_resp_ci_high"] = f"{resp.ci_high:.3f}"
            headline["input_ntr_dislike_exp_vs_po_ci_high"] = f"{relative[obj].ci_high:.3f}"
        print("| " + " | ".join(cells) + " |")

    print("\ndislike exposure@10 relative to positive_only (paired over the test users of all seeds):")
    for obj, rel in relative.items():
        print(f"  {obj:15s} {pct(rel)}")
    print("\nvalidation events (for choosing settings; paired over the validation users of all seeds):")
    vbase = {k: np.concatenate(v) for k, v in valid_user["positive_only"].items()}
    for obj in objectives:
        cur = {k: np.concatenate(v) for k, v in valid_user[obj].items()}
        line = f"  {obj:15s} NDCG@10 {cur['ndcg@10'].mean():.4f}  dislike exp.@10 {cur['dislike_exposure@10'].mean():.4f}"
        if obj != "positive_only":
            (diff, lo, hi), rel = versus_positive_only(cur, vbase, args.bootstrap)
            line += f"  vs positive_only: dislike exp. {pct(rel)}, NDCG {diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            rows.append((obj, "valid_dislike_exposure@10_relative", rel.mean, rel.mean, rel.ci_low, rel.ci_high))
            rows.append((obj, "valid_ndcg@10", float(cur["ndcg@10"].mean()), diff, lo, hi))
            if obj == "input_ntr":
                headline["input_ntr_valid_dislike_exp_vs_po"] = f"{rel.mean:.3f}"
        print(line)
    if len(seeds) > 1:
        print("\nper seed (NDCG@10 / dislike exposure@10 / responsiveness):")
        for obj in objectives:
            print(f"  {obj:15s} " + "  ".join(
                f"s{r['seed']}: {r['ndcg@10']:.4f} / {r['dislike_exposure@10']:.4f} / "
                f"{100 * r['responsiveness']:+.1f}%" for r in per_seed[obj]))

    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    append_csv(args.csv, [dict(time=stamp, objective=obj, metric=metric, value=value,
                               diff_vs_positive_only=diff, ci_low=lo, ci_high=hi,
                               seeds=" ".join(map(str, seeds)), epochs=epochs, settings=settings,
                               machine=platform.node(), version=negrec.__version__)
                          for obj, metric, value, diff, lo, hi in rows])
    print("\n" + " ".join(f"{k}={v}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
