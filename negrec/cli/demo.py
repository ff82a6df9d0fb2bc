"""The main job, ``negrec demo``: the whole story on the embedded simulator.

Generate a log, train the four objectives, evaluate them offline, measure their counterfactual
responsiveness on simulated histories and their closed-loop rates with simulated users, and
write a report folder (markdown + JSON + PNG) whose summary table is also printed, with the
reference paper's figures beside ours.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from negrec.data.split import leave_one_out
from negrec.eval.closed_loop import closed_loop, paired_relative_change
from negrec.eval.counterfactual import responsiveness, simulated_histories
from negrec.eval.report import PAPER_RESPONSIVENESS, markdown_table, write_report
from negrec.models.base import ModelConfig
from negrec.models.checkpoint import load_checkpoint
from negrec.models.objectives import OBJECTIVES
from negrec.sim import SimConfig, Simulator
from negrec.train.config import LossConfig, OptimConfig, TrainConfig
from negrec.train.trainer import check_run_folder

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Sizes of the demo. The defaults fit in 5 minutes on 2 CPU cores; ``quick()`` in 3;
    ``full_size()`` uses the paper's 2,000 simulated histories."""

    seed: int = 0
    sim_users: int = 2000
    sim_events: int = 60
    # responsiveness grows with training (SASRec dim 48, input_ntr: -34% at 10 epochs, -48% at
    # 20 and 30); the GRU (the reference paper's kind of model) at dim 64 reached -75% at 20
    epochs: int = 20
    batch_size: int = 64
    model: str = "gru"  # the reference paper's model is an RNN; "sasrec" also works
    dim: int = 64
    num_layers: int = 1
    # input_ntr's NTR weight on skips (w_dislike stays the package default, 5). With the
    # package default w_skip = 1 the closed-loop dislike rate of input_ntr was below
    # positive_only's for seed 0 (-22.7%) but not seed 1 (+5.7%); w_skip = 0.25 gave -23.2% and
    # -19.8% (0: -20.7% / -21.1%; 3: -32.4% / -3.3%), with higher NDCG@10. Chosen on seeds 0
    # and 1, confirmed on seed 2 (docs/closed_loop.md). The simulator was not changed.
    w_skip: float = 0.25
    histories: int = 1000  # counterfactual simulations (the paper: 2,000)
    history_steps: int = 49  # items consumed before the branch (k - 1; the paper: k = 50)
    loop_users: int = 1000
    loop_steps: int = 40
    # closed-loop users start with this many logged events, made like the training log's
    # (20 + loop_steps = sim_events in the default and quick sizes); 0 = cold start, where
    # every user gets the same first slate (see negrec.eval.closed_loop)
    loop_warmup: int = 20
    bootstrap: int = 1000
    objectives: tuple[str, ...] = OBJECTIVES
    progress: bool = True

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(sim_users=1500, sim_events=50, epochs=20, histories=400, loop_users=400,
                   loop_steps=30, bootstrap=500)

    @classmethod
    def full_size(cls) -> "DemoConfig":
        return cls(histories=2000, loop_users=2000, loop_steps=50)

    def train_config(self, objective: str) -> TrainConfig:
        return TrainConfig(
            objective=objective, w_skip=self.w_skip,
            model=ModelConfig(kind=self.model, dim=self.dim, num_layers=self.num_layers,
                              num_heads=2, dropout=0.1, max_len=50, cluster_input=True,
                              creator_input=True),
            loss=LossConfig(mode="sampled", sampler="uniform", num_negatives=128),
            optim=OptimConfig(lr=2e-3, warmup_steps=20),
            epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
            early_stopping_patience=0, progress=self.progress, tensorboard=False)


def run_demo(config: DemoConfig, out_dir: str | Path, *, echo=print, overwrite: bool = False) -> dict:
    """Runs the demo into ``out_dir``; its training runs go to ``out_dir/runs/<objective>``,
    which must not hold runs already unless ``overwrite`` (they are then replaced)."""
    out = Path(out_dir)
    for name in config.objectives:  # before any work
        check_run_folder(out / "runs" / name, resume=False, overwrite=overwrite)
    t_start = time.perf_counter()
    sim_cfg = SimConfig(num_users=config.sim_users, events_per_user=config.sim_events)
    sim = Simulator(sim_cfg, seed=config.seed)
    log, _ = sim.generate()
    split = leave_one_out(log)
    echo(f"simulated log: {log.num_users} users, {log.num_items} items, {log.num_events} events "
         f"({', '.join(f'{k} {v}' for k, v in log.feedback_counts().items())})")
    report: dict = {
        "title": "negrec demo: learning from negative feedback on the simulator",
        "description": (
            "Four objectives trained on the same simulated log. Offline metrics on the "
            "leave-one-out test events; counterfactual responsiveness = relative change of the "
            "share of the next top-10 in the branched item's cluster (creator) after a dislike "
            f"vs a positive interaction, over {config.histories} simulated histories of "
            f"{config.history_steps} consumed recommendations (95% paired bootstrap intervals); "
            f"closed loop: {config.loop_users} simulated users, each with {config.loop_warmup} "
            f"logged events, then {config.loop_steps} steps of the model's top-10 slates."),
        "simulator": sim_cfg.to_dict(),
        "demo": {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"},
        "objectives": {},
        "paper_responsiveness": PAPER_RESPONSIVENESS,
    }
    loops = {}
    for name in config.objectives:
        t0 = time.perf_counter()
        cfg = config.train_config(name)
        cfg.data.sim_users, cfg.data.sim_events, cfg.data.sim_seed = (
            config.sim_users, config.sim_events, config.seed)
        from negrec.cli.pipeline import train_and_evaluate

        metrics = train_and_evaluate(cfg, out / "runs" / name, split=split, ks=(10,),
                                     bootstrap=config.bootstrap, overwrite=overwrite)
        ck = load_checkpoint(out / "runs" / name / "best.pt")
        hist, branched, _ = simulated_histories(ck.model, ck.objective, sim,
                                                num_users=config.histories,
                                                steps=config.history_steps, seed=10_000 + config.seed)
        resp = responsiveness(ck.model, ck.objective, hist, branched, ck.item_meta,
                              bootstrap=config.bootstrap, seed=config.seed)
        loop = closed_loop(ck.model, ck.objective, sim, num_users=config.loop_users,
                           steps=config.loop_steps, seed=20_000 + config.seed,
                           warmup_events=config.loop_warmup,
                           bootstrap=config.bootstrap)
        loops[name] = loop
        rd = resp.to_dict()
        report["objectives"][name] = {
            "offline": {"test": metrics["test"], "valid": metrics["valid"]},
            "train": {k: metrics["train"][k] for k in ("epochs", "train_seconds", "targets_per_s")},
            "responsiveness": rd["responsiveness"],
            "repeated_dislikes": rd["repeated_dislikes"],
            "mean_similarity": rd["mean_similarity"],
            "closed_loop": loop.to_dict(),
        }
        c = rd["responsiveness"]["cluster"]["dislike"]
        echo(f"{name:15s} trained {metrics['train']['epochs']} epochs, test NDCG@10 "
             f"{metrics['test']['ndcg@10']:.4f}; responsiveness (cluster) {100 * c['mean']:+.1f}% "
             f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]; closed-loop dislike rate "
             f"{100 * loop.rates['dislike_rate'].mean:.2f}%  ({time.perf_counter() - t0:.0f} s)")
    if "positive_only" in loops:
        base = loops["positive_only"]
        for name, loop in loops.items():
            if name == "positive_only":
                continue
            report["objectives"][name]["closed_loop_vs_positive_only"] = {
                rate: dataclasses.asdict(paired_relative_change(loop.per_user[rate], base.per_user[rate],
                                                                resamples=config.bootstrap))
                for rate in ("dislike_rate", "repeated_dislike_creator_rate",
                             "repeated_dislike_cluster_rate", "positive_rate")}
    report["summary"] = {name: {
        "responsiveness_cluster": o["responsiveness"]["cluster"]["dislike"],
        "responsiveness_creator": o["responsiveness"].get("creator", {}).get("dislike"),
        "closed_loop_dislike_rate": o["closed_loop"]["rates"]["dislike_rate"]}
        for name, o in report["objectives"].items()}
    # the shape the README promises: responsiveness: {objective: {mean, ci_low, ci_high}}
    report["responsiveness"] = {name: {k: o["responsiveness"]["cluster"]["dislike"][k]
                                       for k in ("mean", "ci_low", "ci_high")}
                                for name, o in report["objectives"].items()}
    report["seconds"] = time.perf_counter() - t_start
    paths = write_report(report, out)
    echo("")
    echo(markdown_table(report))
    echo("")
    echo(f"report: {paths['markdown']} (+ report.json, "
         f"{', '.join(p.name for k, p in paths.items() if k not in ('json', 'markdown'))}); "
         f"{report['seconds']:.0f} s in all")
    return report
