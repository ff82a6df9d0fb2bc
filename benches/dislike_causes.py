#!/usr/bin/env python
"""Why the simulated users of each preset dislike their held-out items: the ground truth behind
the dislike-exposure figures of benches/generalization.py (docs/generalization_screening.md,
"Why simulated users dislike").

Each preset's world is generated as benches/generalization.py generates it (0.8 x its users,
60 events each, seed 0; the last 5 events of each user are the test events). Just before each
test event the simulator's state gives the shown item's affinity term by term
(:meth:`negrec.sim.Simulator.affinity_parts`) and its rank among the items the user has not
seen by true affinity (the oracle ranking). Per preset it prints, over the held-out dislikes
(and, for contrast, the held-out positives): the mean of each term, the share of dislikes whose
most negative term is each term ("dominant"), the share in a cluster the user loves or hates
in the long run (``state.long_run`` above half the loved boost / below minus half the hated
penalty), and the share of held-out dislikes the oracle puts in its top 10 (its dislike
exposure@10) beside a random ranking's (10 / unseen items).

  python benches/dislike_causes.py            # every preset, the bench's size (about a minute)
  python benches/dislike_causes.py --quick    # two presets, a quarter of the users

Appends to bench_results/dislike_causes.csv (one row per preset, group and figure); the last
line is ``worlds=N worlds_dislikes_mostly_recent=M oracle_dislikes_in_top10_max=X``: the
presets whose held-out dislikes are mostly (over half) dominated by recent experience
(satiation or aversion) rather than lasting taste, and the oracle's largest dislike
exposure@10.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np

from negrec.data.feedback import Feedback
from negrec.files import append_csv
from negrec.sim import PRESETS, Simulator, preset

RECENT = ("satiation", "cluster_aversion", "creator_aversion")  # terms that decay with events


def record_test_events(sim: Simulator, events: int, holdout: int):
    """Generates ``sim``'s log, recording before each of the last ``holdout`` steps the shown
    items, their affinity terms, long-run cluster taste, oracle rank and number of unseen items.
    Returns the log, the feedback of those events [U * holdout] (user-major, as
    ``leave_last_out``'s test set) and the records ([U * holdout] each, same order). The log
    is the one ``sim.generate()`` gives: recording draws no random numbers."""
    records: list[dict] = []
    step = [0]  # generate's step (every user steps at once)
    respond = sim.respond

    def recording_respond(state, users, items, rng):
        if step[0] >= events - holdout:
            parts = sim.affinity_parts(state, users, items)
            everything = sim.affinity(state, users[:, None],
                                      np.arange(sim.config.num_items)[None, :])
            shown = everything[np.arange(len(users)), items]  # not yet seen: marked by respond
            everything = np.where(state.seen[users], -np.inf, everything)
            records.append({**parts, "item": items.copy(), "long_run": state.long_run[users, sim.item_cluster[items]],
                            "oracle_rank": 1 + (everything > shown[:, None]).sum(1),
                            "unseen": (~state.seen[users]).sum(1)})
        step[0] += 1
        return respond(state, users, items, rng)

    sim.respond = recording_respond
    try:
        log, _ = sim.generate()
    finally:
        sim.respond = respond
    users = log.num_users
    feedback = log.feedback.reshape(users, events)[:, events - holdout:].ravel()
    flat = {k: np.stack([r[k] for r in records], 1).ravel() for k in records[0]}  # user-major
    return log, feedback, flat


def summarise(world: str, sim: Simulator, feedback: np.ndarray, rec: dict) -> list[dict]:
    c = sim.config
    terms = [k for k in rec if k not in ("item", "long_run", "oracle_rank", "unseen")]
    rows = []
    for group, code in (("dislikes", Feedback.DISLIKE), ("positives", Feedback.POSITIVE)):
        sel = feedback == code
        if not sel.any():
            continue
        figures = {f"mean_{k}": float(rec[k][sel].mean()) for k in terms}
        dominant = np.argmin(np.stack([rec[k][sel] for k in terms]), 0)
        figures.update({f"dominant_{k}": float(np.mean(dominant == j)) for j, k in enumerate(terms)})
        figures["dominant_recent"] = sum(figures[f"dominant_{k}"] for k in RECENT)
        figures["loved_cluster"] = float(np.mean(rec["long_run"][sel] > c.loved_boost / 2))
        figures["hated_cluster"] = float(np.mean(rec["long_run"][sel] < -c.hated_penalty / 2))
        figures["oracle_top10"] = float(np.mean(rec["oracle_rank"][sel] <= 10))
        figures["random_top10"] = float(np.mean(10 / rec["unseen"][sel]))
        figures["events"] = int(sel.sum())
        rows += [{"world": world, "group": group, "figure": k, "value": v} for k, v in figures.items()]
        print(f"  {group:9s} {int(sel.sum()):5d} events | mean: "
              + " ".join(f"{k} {figures['mean_' + k]:+.2f}" for k in terms))
        print(f"  {'':9s} {'':5s}        | dominant: "
              + " ".join(f"{k} {figures['dominant_' + k]:.0%}" for k in terms)
              + f" | loved cluster {figures['loved_cluster']:.0%}, hated {figures['hated_cluster']:.0%}"
              + f" | oracle top-10 share {figures['oracle_top10']:.4f}"
              + f" (random {figures['random_top10']:.4f})")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", help="comma-separated presets (default: all)")
    ap.add_argument("--quick", action="store_true", help="two presets, a quarter of the users")
    ap.add_argument("--sim-users-factor", type=float, help="users x the preset's (0.8; --quick 0.2)")
    ap.add_argument("--sim-events", type=int, default=60, help="events per simulated user")
    ap.add_argument("--holdout", type=int, default=5, help="test events per user")
    ap.add_argument("--csv", type=Path, default=Path("bench_results/dislike_causes.csv"))
    args = ap.parse_args(argv)
    worlds = (args.worlds.split(",") if args.worlds
              else ["default", "rare_dislikes"] if args.quick else list(PRESETS))
    unknown = [w for w in worlds if w not in PRESETS]
    if unknown:
        ap.error(f"--worlds: unknown {unknown}; expected some of {list(PRESETS)}")
    factor = args.sim_users_factor or (0.2 if args.quick else 0.8)
    rows = []
    for world in worlds:
        users = round(preset(world).num_users * factor)
        sim = Simulator(preset(world, num_users=users, events_per_user=args.sim_events), seed=0)
        print(f"== {world}: {users} users, test events = the last {args.holdout} of {args.sim_events}")
        _, feedback, rec = record_test_events(sim, args.sim_events, args.holdout)
        rows += summarise(world, sim, feedback, rec)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    append_csv(args.csv, [{"timestamp": stamp, "users_factor": factor, **r} for r in rows],
               ["timestamp", "users_factor", "world", "group", "figure", "value"])

    def figure(world, name):
        return next(r["value"] for r in rows if r["world"] == world and r["group"] == "dislikes"
                    and r["figure"] == name)

    with_dislikes = [w for w in worlds if any(r["world"] == w and r["group"] == "dislikes" for r in rows)]
    recent = sum(figure(w, "dominant_recent") > 0.5 for w in with_dislikes)
    oracle = max((figure(w, "oracle_top10") for w in with_dislikes), default=float("nan"))
    print(f"worlds={len(with_dislikes)} worlds_dislikes_mostly_recent={recent} "
          f"oracle_dislikes_in_top10_max={oracle:.4f}")


if __name__ == "__main__":
    main()
