#!/usr/bin/env python
"""Does learning from negative feedback hold on worlds the defaults were not tuned on?

For MovieLens-100K and several simulator presets (``negrec.sim.PRESETS``), trains the four
objectives with the package defaults (only the data, the objective and the seed are set, as
``negrec train --data X --path P --objective O`` does) over several seeds, plus:

- the most-popular ranking (``negrec.models.popularity.MostPopular``), the floor any learnt
  model must clear;
- popularity within the clusters the user liked
  (``negrec.models.cluster_popularity.ClusterPopularity``): counts only, but it knows the
  user's taste; a model that does not beat it has learnt nothing a category histogram would
  not give (reported beside each model, not a target);
- a placebo control: ``input_ntr`` trained on the same log with the feedback codes permuted
  across events (``negrec.data.transforms.permute_feedback``). It sees feedback codes with the
  real frequencies but no meaning, so its "responsiveness" is what a mere change of an input
  code does; an objective's responsiveness counts only beyond it.

Per world it prints NDCG@10 vs most-popular, input_ntr's dislike exposure@10 vs positive_only
and vs input_only, input_ntr's NDCG@10 vs positive_only, and each objective's counterfactual
responsiveness (dislike vs positive branch, content cluster) minus the control's, and on the
simulated worlds each model's closed-loop dislike rate (simulated users consume its top-10
slates; ``--loop-users``) with input_ntr's against positive_only's and input_only's: offline
metrics and the loop can disagree (docs/generalization_screening.md, chrono initialisation). Each
dislike exposure comes with the number of held-out dislikes it counts (a seed's average in the
top 10, of how many): an exposure down to a few events is a floor two objectives can share.
Every interval is a two-stage bootstrap over training seeds and then users / histories
(``negrec.eval.stats.hierarchical_ci``). Simulated worlds branch histories made by each model
with simulated users; ml-100k branches the users' training histories at the model's top-1.

  python benches/generalization.py --quick       # 2 worlds, 2 seeds, small sizes (minutes)
  python benches/generalization.py               # every world, 3 seeds (hours: docs/generalization.md)

``--set key=value`` changes the training configuration for every run (for trying a default
before changing it; the headline figures use none). input_ntr's dislike weight is, by default
(``objective.weights.dislike: auto``), chosen per seed on the validation events as ``negrec
train`` / ``negrec tune`` choose it (negrec.experiments.tuning), training input_ntr at every
weight of the grid; the control trains at its seed's choice. A dislike weight given with --set /
--set-for trains input_ntr at that weight only. Appends to
bench_results/generalization.csv; the last line is
``worlds_beating_popularity=... worlds_ntr_beats_cluster_popularity=...
worlds_ntr_lowers_dislike_exposure=... worlds_responsive_beyond_control=...
worlds_ntr_fewer_closed_loop_dislikes=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import datetime as dt
import fcntl
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import negrec
from negrec.data.split import Split, leave_last_out
from negrec.eval.closed_loop import closed_loop
from negrec.eval.counterfactual import log_histories, responsiveness, simulated_histories
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_checkpoint, from_model
from negrec.eval.stats import Estimate, hierarchical_ci, ratio_of_means
from negrec.experiments.data import load_data
from negrec.experiments.measure import HISTORY_SEED_OFFSET, LOOP_SEED_OFFSET
from negrec.experiments.tuning import DISLIKE_WEIGHT_GRID, REFERENCE_OBJECTIVE, choose_dislike_weight
from negrec.experiments.training import train_and_evaluate
from negrec.files import append_csv
from negrec.models.cluster_popularity import ClusterPopularity
from negrec.models.popularity import MostPopular
from negrec.sim import PRESETS, Simulator, preset
from negrec.threads import configure as apply_thread_policy
from negrec.train.checkpoint import load_checkpoint
from negrec.train.config import TrainConfig, apply_overrides
from negrec.train.data_spec import DataSpec
from negrec.train.objectives import OBJECTIVES

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))
CONTROL = "control"  # input_ntr trained on permuted feedback
WORLDS = ("ml-100k", *PRESETS)
LOOP_WARMUP, LOOP_STEPS = 20, 30  # closed loop: logged events per user, then model-driven steps


@dataclasses.dataclass
class World:
    name: str
    spec: DataSpec
    split: Split
    simulator: Simulator | None


def make_world(name: str, users_factor: float, events: int, holdout: int) -> World:
    if name == "ml-100k":
        spec = DataSpec(source="movielens", path=str(ML100K))
        sim = None
    else:
        users = round(preset(name).num_users * users_factor)
        spec = DataSpec(source="simulated", sim=preset(name, num_users=users,
                                                       events_per_user=events))
        sim = Simulator(spec.sim, seed=spec.sim_seed)
    log = load_data(spec)
    return World(name, spec, leave_last_out(log, holdout), sim)


def run_config(world: World, name: str, seed: int, args, dislike: float | None = None
               ) -> TrainConfig:
    """What `negrec train --data ... --objective O --seed S` would run for model ``name`` (plus
    --set's; ``dislike``: the dislike weight, one of the sweep of an auto weight). The control is
    what `negrec train --placebo` trains: input_ntr on the training events' feedback codes
    shuffled with the seed, stored as a placebo so `negrec responsiveness --control` takes it."""
    objective = "input_ntr" if name == CONTROL else name
    cfg = TrainConfig(data=world.spec, objective=objective, seed=seed, placebo=name == CONTROL)
    weight = [] if dislike is None else [f"objective.weights.dislike={dislike:g}"]
    return apply_overrides(cfg, overrides_for(args, objective) + weight +
                           ["progress=false", "tensorboard=false"])


def chooses_dislike_weight(args) -> bool:
    """Whether input_ntr's dislike weight, with the --set / --set-for's, is auto (the default):
    chosen per seed on the validation events from the grid."""
    return apply_overrides(TrainConfig(objective="input_ntr"),
                           overrides_for(args, "input_ntr")).objective.chooses_dislike_weight


def choose_per_seed(done: dict, seeds: list[int], resamples: int) -> dict:
    """Per seed, the dislike weight (auto) negrec tune's rule chooses on the
    validation events (negrec.experiments.tuning.choose_dislike_weight: the largest whose
    NDCG@10 is neither significantly nor possibly more than 5% below positive_only's), from
    the measured runs ``done`` ({(seed, name, weight): figures}); returns {seed: WeightChoice}."""
    return {seed: choose_dislike_weight(
        done[(seed, REFERENCE_OBJECTIVE, None)]["valid_ndcg"],
        {w: done[(seed, "input_ntr", w)]["valid_ndcg"] for w in DISLIKE_WEIGHT_GRID},
        resamples=resamples, seed=seed) for seed in seeds}


def malformed_set_for(items: list[str]) -> list[str]:
    """The --set-for items that are not ``OBJECTIVE:KEY=VALUE`` with a known objective (the
    control follows input_ntr's); without this check a misspelt objective overrode nothing."""
    return [item for item in items
            if item.split(":", 1)[0] not in OBJECTIVES or "=" not in item.partition(":")[2]]


def csv_rows(figures: list[tuple], args, seeds: int) -> list[dict]:
    """The CSV rows of ``figures`` ((world, model, figure, Estimate) tuples). Their
    ``overrides`` holds every override of the runs, --set-for's as OBJECTIVE:KEY=VALUE (they
    were once left out, and rows of two dislike weights could not be told apart)."""
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tuned = ([f"tune_dislike={','.join(f'{w:g}' for w in DISLIKE_WEIGHT_GRID)}"]
             if args.tune_dislike else [])
    overrides = " ".join(args.set + args.set_for + tuned)
    return [dict(time=stamp, world=world, model=model, figure=figure, mean=e.mean,
                 ci_low=e.ci_low, ci_high=e.ci_high, seeds=seeds, overrides=overrides,
                 machine=platform.node(), version=negrec.__version__)
            for world, model, figure, e in figures]


def overrides_for(args, objective: str) -> list[str]:
    """--set's for every model, then --set-for's of ``objective`` (the control is input_ntr)."""
    own = [item.split(":", 1)[1] for item in args.set_for if item.split(":", 1)[0] == objective]
    return list(args.set) + own


def measure(world: World, name: str, seed: int, args, out: Path, wait: bool = True,
            dislike: float | None = None) -> dict | None:
    """Train one model (or the control) and return its per-user / per-history figures (and its
    per-user validation NDCG@10 when the dislike weight is auto, which chooses from it); None, without
    ``wait``, when another process is training that run."""
    config = run_config(world, name, seed, args, dislike)
    t0 = time.perf_counter()
    with run_lock(out, wait) as locked:
        if not locked:
            return None
        if args.reuse and (out / "metrics.json").exists():  # a finished run of the same settings
            metrics = json.loads((out / "metrics.json").read_text())
        else:
            metrics = train_and_evaluate(config, out, split=world.split, ks=(10,), bootstrap=0,
                                         overwrite=True)
    ck = load_checkpoint(out / "best.pt")
    held = world.split.valid if args.split == "valid" else world.split.test
    test = evaluate(from_checkpoint(ck), held, ks=(10,), bootstrap=0)
    valid = None
    if args.tune_dislike:
        valid = test if args.split == "valid" else evaluate(
            from_checkpoint(ck), world.split.valid, ks=(10,), bootstrap=0)
    sims = similarity(world, ck.model, ck.objective.inputs, ck.item_meta, args.histories, seed)
    loop = None
    if world.simulator is not None and args.loop_users > 0:
        # simulated users consume the model's top-10 slates (the same users for every model of
        # one seed, so models are compared user by user); per-user dislike rate [U]
        loop = closed_loop(from_model(ck.model, ck.objective.inputs), world.simulator,
                           num_users=args.loop_users, steps=LOOP_STEPS,
                           warmup_events=LOOP_WARMUP, seed=LOOP_SEED_OFFSET + seed,
                           bootstrap=0).per_user["dislike_rate"]
    return {"ndcg": test.per_user["ndcg@10"], "dexp": test.per_user["dislike_exposure@10"],
            "valid_ndcg": None if valid is None else valid.per_user["ndcg@10"], "sim": sims,
            "loop": loop, "best_epoch": metrics["train"]["best_epoch"],
            "steps": metrics["train"]["steps"], "seconds": time.perf_counter() - t0}


@contextlib.contextmanager
def run_lock(out: Path, wait: bool = True):
    """Holds an exclusive lock on run folder ``out`` (a ``.lock`` file beside it), so two bench
    processes whose --worlds overlap in one --out never train the same run at once (they did
    once, and the run's checkpoint was a mix of both). Yields whether the lock is held: with
    ``wait`` it always is (after waiting for the other process, whose run --reuse then
    reuses); without, it yields False at once when another process holds it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            print(f"  waiting for another process training {out}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield True


def measure_all(jobs: list, attempt) -> dict:
    """``{job: attempt(job, wait)}`` for every job. ``attempt(job, False)`` returns None when
    another process is training that run; such runs are measured after all the others, then
    waiting for them. Two processes sharing an --out (say, one per half of the worlds, and a
    third joining either) thus train different runs side by side instead of queueing behind
    each other's locks in the same order."""
    results, busy = {}, []
    for job in jobs:
        result = attempt(job, False)
        if result is None:
            busy.append(job)
        else:
            results[job] = result
    for job in busy:
        results[job] = attempt(job, True)
    return results


def similarity(world: World, model, inputs, meta, histories: int, seed: int) -> dict:
    """Per-history same-cluster share of the next top-10 after a positive / a dislike."""
    if world.simulator is not None:
        hist, branched, _ = simulated_histories(from_model(model, inputs), world.simulator,
                                                num_users=histories, steps=20,
                                                seed=HISTORY_SEED_OFFSET + seed)
    else:
        train = world.split.train
        users = np.random.default_rng(seed).permutation(train.num_users)[:histories]
        hist, branched, _ = log_histories(from_model(model, inputs), train, np.sort(users))
    res = responsiveness(from_model(model, inputs), hist, branched, meta, actions=("dislike",),
                         repeated=(), bootstrap=0)
    return {a: res.similarity["cluster"][a] for a in ("positive", "dislike")}


def pct(e: Estimate) -> str:
    return f"{100 * e.mean:+.1f}% [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}]"


def num(e: Estimate, digits: int = 4) -> str:
    return f"{e.mean:+.{digits}f} [{e.ci_low:+.{digits}f}, {e.ci_high:+.{digits}f}]"


def diff_of_means(a, b):
    return float(np.mean(a) - np.mean(b)) if len(a) else float("nan")


def dislike_hits(rs: list[dict]) -> float:
    """How many held-out dislikes the models of ``rs`` (one per seed) put in their top 10, per
    seed on average (of ``len(rs[0]['dexp'])``): the count behind a dislike exposure, which
    shows when an exposure is down to a few events (a floor two objectives can share)."""
    return float(np.mean([r["dexp"].sum() for r in rs]))


def summarize(world: World, runs: dict, pop: dict, cpop: dict, resamples: int
              ) -> tuple[list[str], dict, list]:
    """Table lines, headline booleans and CSV rows of one world."""
    lines, rows = [], []
    ci = lambda stat, *s: hierarchical_ci(stat, *s, resamples=resamples, seed=0)  # noqa: E731
    ctl = [(r["sim"]["dislike"], r["sim"]["positive"]) for r in runs.get(CONTROL, [])]
    lines.append(f"  {'most_popular':15s} NDCG@10 {np.mean(pop['ndcg']):.4f}  dislike exp.@10 "
                 f"{np.mean(pop['dexp']):.4f}")
    lines.append(f"  {'cluster_pop.':15s} NDCG@10 {np.mean(cpop['ndcg']):.4f}  dislike exp.@10 "
                 f"{np.mean(cpop['dexp']):.4f}  (popularity within the user's liked clusters)")
    verdict = {}
    for name in [o for o in runs if o != CONTROL] + ([CONTROL] if ctl else []):
        rs = runs[name]
        vs_pop = ci(diff_of_means, [(r["ndcg"], pop["ndcg"]) for r in rs])
        vs_cpop = ci(diff_of_means, [(r["ndcg"], cpop["ndcg"]) for r in rs])
        resp = ci(ratio_of_means, [(r["sim"]["dislike"], r["sim"]["positive"]) for r in rs])
        line = (f"  {name:15s} NDCG@10 {np.mean([r['ndcg'].mean() for r in rs]):.4f} "
                f"(vs most-popular {num(vs_pop)}, vs cluster-popularity {num(vs_cpop)})  "
                f"dislike exp.@10 "
                f"{np.mean([r['dexp'].mean() for r in rs]):.4f} ({dislike_hits(rs):.1f} of "
                f"{len(rs[0]['dexp'])} held-out dislikes a seed)  responsiveness {pct(resp)}")
        rows += [(name, "ndcg10_vs_popular", vs_pop), (name, "ndcg10_vs_cluster_popularity", vs_cpop),
                 (name, "responsiveness", resp)]
        if rs[0]["loop"] is not None:
            rate = ci(np.mean, [(r["loop"],) for r in rs])
            line += f"  closed-loop dislike rate {100 * rate.mean:.2f}% [{100 * rate.ci_low:.2f}, {100 * rate.ci_high:.2f}]"
            rows.append((name, "closed_loop_dislike_rate", rate))
        if name != CONTROL and ctl:
            beyond = ci(lambda a, b, c, d: ratio_of_means(a, b) - ratio_of_means(c, d),
                        [(r["sim"]["dislike"], r["sim"]["positive"]) for r in rs], ctl)
            line += f"  vs control {100 * beyond.mean:+.1f} pp [{100 * beyond.ci_low:+.1f}, {100 * beyond.ci_high:+.1f}]"
            rows.append((name, "responsiveness_minus_control", beyond))
            verdict.setdefault("beyond_control", {})[name] = beyond.ci_high < 0
        if name != CONTROL:
            verdict.setdefault("beats_popular", {})[name] = vs_pop.ci_low > 0
            verdict.setdefault("beats_cluster_popularity", {})[name] = vs_cpop.ci_low > 0
        lines.append(line)
    if "input_ntr" in runs:
        ntr = runs["input_ntr"]
        for base in ("positive_only", "input_only"):
            if base not in runs:
                continue
            rel = ci(ratio_of_means, [(a["dexp"], b["dexp"]) for a, b in zip(ntr, runs[base])])
            rows.append(("input_ntr", f"dislike_exposure_vs_{base}", rel))
            verdict[f"dexp_below_{base}"] = rel.ci_high < 0
            lines.append(f"  input_ntr dislike exposure@10 vs {base}: {pct(rel)} ("
                         f"{dislike_hits(ntr):.1f} vs {dislike_hits(runs[base]):.1f} of "
                         f"{len(ntr[0]['dexp'])} held-out dislikes in the top 10 a seed)")
        # the loop beside the offline cells: against input_only it is the NTR term's share
        # beyond the inputs, which offline can sink to a few held-out dislikes a seed
        # (docs/generalization_screening.md, "Why simulated users dislike")
        for base in ("positive_only", "input_only"):
            if base not in runs or ntr[0]["loop"] is None:
                continue
            loop = ci(ratio_of_means, [(a["loop"], b["loop"]) for a, b in zip(ntr, runs[base])])
            rows.append(("input_ntr", f"closed_loop_dislike_rate_vs_{base}", loop))
            verdict[f"loop_below_{base}"] = loop.ci_high < 0
            lines.append(f"  input_ntr closed-loop dislike rate vs {base}: {pct(loop)}")
        if "positive_only" in runs:
            nd = ci(diff_of_means, [(a["ndcg"], b["ndcg"]) for a, b in zip(ntr, runs["positive_only"])])
            rows.append(("input_ntr", "ndcg10_minus_positive_only", nd))
            verdict["ndcg_not_lower"] = nd.ci_low <= 0 <= nd.ci_high or nd.ci_low > 0
            lines.append(f"  input_ntr NDCG@10 vs positive_only: {num(nd)}")
    return lines, verdict, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="ml-100k and the default world, 2 seeds, 1,000 simulated users "
                         "(--sim-users-factor 0.4)")
    ap.add_argument("--worlds", help=f"comma-separated, from {', '.join(WORLDS)}")
    ap.add_argument("--seeds", type=int, help="training seeds per model (default 3; quick 2)")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--sim-users-factor", type=float,
                    help="users of a simulated world: its preset's num_users times this "
                         "(default 0.8: 2,000 users in the default world; quick 0.4)")
    ap.add_argument("--sim-events", type=int, default=60, help="events per simulated user")
    ap.add_argument("--histories", type=int, help="counterfactual histories per model (500)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="training-config override for every run (experiments only)")
    ap.add_argument("--set-for", action="append", default=[], metavar="OBJECTIVE:KEY=VALUE",
                    help="override for one objective only (the control follows input_ntr)")
    ap.add_argument("--no-control", action="store_true",
                    help="skip the placebo control (for tuning runs that do not measure it)")
    ap.add_argument("--loop-users", type=int,
                    help="simulated users of each model's closed loop (20 logged events, then "
                         f"{LOOP_STEPS} steps of its top-10 slates; default 300, quick 100; 0: off)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--split", choices=["test", "valid"], default="test",
                    help="held-out events to report (choose settings on valid, report test)")
    ap.add_argument("--holdout", type=int, default=5,
                    help="events held out per user for validation and again for test "
                         "(leave-last-n-out; default 5: five times the held-out dislikes of "
                         "leave-one-out, which the dislike-exposure intervals need)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse finished runs of identical settings found under --out")
    ap.add_argument("--tag", default="",
                    help="extra text that distinguishes runs under --out (run folders are named "
                         "by a hash of the resolved configuration: a change of code that no "
                         "setting names needs a tag)")
    ap.add_argument("--out", type=Path, default=Path("bench_results/generalization_runs"))
    ap.add_argument("--csv", type=Path, default=Path("bench_results/generalization.csv"))
    args = ap.parse_args()
    # the thread policy, as negrec's command line applies it (docs/performance.md): threads
    # from the CPUs available, adapted to the load; NEGREC_THREADS=off: torch's defaults
    apply_thread_policy()
    worlds = (args.worlds.split(",") if args.worlds else
              ["ml-100k", "default"] if args.quick else list(WORLDS))
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown:
        ap.error(f"--worlds: unknown {unknown}; expected some of {list(WORLDS)}")
    if "ml-100k" in worlds and not (ML100K / "u.data").exists():
        sys.exit(f"MovieLens-100K not found at {ML100K}; set NEGREC_ML100K or leave it out of --worlds")
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    args.histories = args.histories or (200 if args.quick else 500)
    if args.loop_users is None:
        args.loop_users = 100 if args.quick else 300
    users = args.sim_users_factor or (0.4 if args.quick else 0.8)
    objectives = [o for o in args.objectives.split(",") if o]
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad:
        ap.error(f"--objectives: unknown {bad}; expected some of {list(OBJECTIVES)}")
    bad = malformed_set_for(args.set_for)
    if bad:
        ap.error(f"--set-for: expected OBJECTIVE:KEY=VALUE with OBJECTIVE one of "
                 f"{list(OBJECTIVES)}; received {bad}")
    # input_ntr (and the control, which takes its weight) with an auto weight: the sweep
    args.tune_dislike = chooses_dislike_weight(args) and ("input_ntr" in objectives
                                                         or not args.no_control)
    if args.tune_dislike and not {"input_ntr", REFERENCE_OBJECTIVE} <= set(objectives):
        ap.error(f"input_ntr's dislike weight is auto, chosen against {REFERENCE_OBJECTIVE}: "
                 f"--objectives needs both; received {objectives} (or give the weight: "
                 "--set-for input_ntr:objective.weights.dislike=W)")
    control = "no control" if args.no_control else "+ control"
    print(f"worlds {worlds}; seeds {seeds}; objectives {objectives} {control}; overrides "
          f"{args.set or 'none'}; per objective {args.set_for or 'none'}"
          + (f"; input_ntr's dislike weight chosen per seed from {list(DISLIKE_WEIGHT_GRID)}"
             if args.tune_dislike else ""), flush=True)

    t_start = time.perf_counter()
    counts = {"beats_popular": 0, "beats_cluster_popularity": 0, "ntr_lowers": 0,
              "beyond_control": 0, "loop_below": 0}
    all_rows = []
    for wname in worlds:
        world = make_world(wname, users, args.sim_events, args.holdout)
        log = world.split.train
        print(f"\n== {wname}: {log.num_users} users, {log.num_items} items, "
              f"{log.num_events} training events ({', '.join(f'{k} {v}' for k, v in log.feedback_counts().items())})",
              flush=True)
        popular = MostPopular(world.split.train)
        held = world.split.valid if args.split == "valid" else world.split.test
        pe = evaluate(from_model(popular, OBJECTIVES["positive_only"].inputs), held, ks=(10,), bootstrap=0)
        pop = {"ndcg": pe.per_user["ndcg@10"], "dexp": pe.per_user["dislike_exposure@10"]}
        by_cluster = ClusterPopularity(world.split.train)
        ce = evaluate(from_model(by_cluster, by_cluster.inputs), held, ks=(10,), bootstrap=0)
        cpop = {"ndcg": ce.per_user["ndcg@10"], "dexp": ce.per_user["dislike_exposure@10"]}
        runs: dict[str, list[dict]] = {o: [] for o in objectives + ([] if args.no_control else [CONTROL])}

        def attempt(job, wait):
            seed, name, dislike = job
            r = measure(world, name, seed, args, args.out / wname / f"seed{seed}" /
                        f"{name}-{settings_tag(args, world, name, dislike)}", wait, dislike)
            label = name if dislike is None else f"{name} w{dislike:g}"
            if r is None:
                print(f"  seed {seed} {label:15s} another process is training it: measured last",
                      flush=True)
                return None
            print(f"  seed {seed} {label:15s} NDCG@10 {r['ndcg'].mean():.4f}  dislike exp.@10 "
                  f"{r['dexp'].mean():.4f}  responsiveness "
                  f"{100 * ratio_of_means(r['sim']['dislike'], r['sim']['positive']):+.1f}%  "
                  + (f"closed-loop dislikes {100 * r['loop'].mean():.2f}%  "
                     if r["loop"] is not None else "") +
                  f"(best epoch {r['best_epoch']}, {r['steps']} steps, {r['seconds']:.0f} s)",
                  flush=True)
            return r

        # interleaved: every model of one seed, then the next seed; runs[name] in seed order
        # (models are compared seed by seed). An auto dislike weight: input_ntr at every weight, and
        # the control once its seed's weight is chosen
        models = [(name, None) for name in runs
                  if not (args.tune_dislike and name in ("input_ntr", CONTROL))]
        if args.tune_dislike:
            models += [("input_ntr", w) for w in DISLIKE_WEIGHT_GRID]
        done = measure_all([(seed, name, w) for seed in seeds for name, w in models], attempt)
        if args.tune_dislike:
            choices = choose_per_seed(done, seeds, args.bootstrap)
            for seed, choice in choices.items():
                done[(seed, "input_ntr", None)] = done[(seed, "input_ntr", choice.weight)]
                print(f"  seed {seed} input_ntr: dislike weight {choice.weight:g} chosen on the "
                      "validation events (NDCG@10 vs positive_only: " + ", ".join(
                          f"w{w:g} {num(e)}" for w, e in choice.versus_reference.items())
                      + ("" if choice.passed else "; none passes: the smallest")
                      + ")", flush=True)
            if CONTROL in runs:
                controls = measure_all([(seed, CONTROL, choices[seed].weight) for seed in seeds],
                                       attempt)
                done.update({(seed, CONTROL, None): r for (seed, _, _), r in controls.items()})
        for name in runs:
            runs[name] = [done[(seed, name, None)] for seed in seeds]
        lines, verdict, rows = summarize(world, runs, pop, cpop, args.bootstrap)
        print(f"-- {wname} (intervals: 95%, over seeds and users/histories)")
        print("\n".join(lines), flush=True)
        beats = verdict.get("beats_popular", {})
        counts["beats_popular"] += int(bool(beats) and all(beats.values()))
        counts["beats_cluster_popularity"] += int(
            verdict.get("beats_cluster_popularity", {}).get("input_ntr", False))
        counts["ntr_lowers"] += int(all(verdict.get(k, False) for k in
                                        ("dexp_below_positive_only", "dexp_below_input_only",
                                         "ndcg_not_lower")))
        counts["beyond_control"] += int(verdict.get("beyond_control", {}).get("input_ntr", False))
        counts["loop_below"] += int(verdict.get("loop_below_positive_only", False))
        all_rows += [(wname, *row) for row in rows]

    append_csv(args.csv, csv_rows(all_rows, args, len(seeds)))
    print(f"\n{time.perf_counter() - t_start:.0f} s in all")
    print(f"worlds={len(worlds)} worlds_beating_popularity={counts['beats_popular']} "
          f"worlds_ntr_beats_cluster_popularity={counts['beats_cluster_popularity']} "
          f"worlds_ntr_lowers_dislike_exposure={counts['ntr_lowers']} "
          f"worlds_responsive_beyond_control={counts['beyond_control']} "
          f"worlds_ntr_fewer_closed_loop_dislikes={counts['loop_below']}")


def settings_tag(args, world: World, name: str, dislike: float | None = None) -> str:
    """A short hash of the run's resolved training configuration (every default included, so
    a changed default gives new run folders; the seed is the folder's), the holdout and --tag.
    Changes of code that no configuration names are not seen: --tag them."""
    text = json.dumps([run_config(world, name, 0, args, dislike).to_dict(), args.holdout,
                       args.tag],
                      sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


if __name__ == "__main__":
    main()
