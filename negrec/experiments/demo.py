"""The main job, ``negrec demo``: the whole story on the embedded simulator.

Generate a log, train the four objectives, evaluate them offline, measure their counterfactual
responsiveness on simulated histories and their closed-loop rates with simulated users, and
write a report folder (markdown + JSON + PNG) whose summary table is also printed, with the
reference paper's figures beside ours. Why the sizes and settings are what they are:
docs/closed_loop.md and docs/objectives.md.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from negrec.data.split import leave_one_out
from negrec.eval.report import (PAPER_RESPONSIVENESS, markdown_table, responsiveness_summary,
                                write_report)
from negrec.eval.stats import ratio_of_means_ci
from negrec.experiments.measure import MeasureSizes, measure
from negrec.experiments.training import train_and_evaluate
from negrec.models.config import ModelConfig
from negrec.sim import SimConfig, Simulator
from negrec.train.checkpoint import load_checkpoint
from negrec.train.config import LossConfig, OptimConfig, TrainConfig
from negrec.train.data_spec import SIMULATED, DataSpec
from negrec.train.objectives import Objective
from negrec.train.run_folder import check_run_folder

__all__ = ["DemoConfig", "run_demo"]

#: Closed-loop rates compared with positive_only's, paired over the same simulated users.
COMPARED_RATES = ("dislike_rate", "repeated_dislike_creator_rate", "repeated_dislike_cluster_rate",
                  "positive_rate")


@dataclass
class DemoConfig:
    """Sizes of the demo. The defaults fit in 5 minutes on 2 CPU cores; ``quick()`` in 3;
    ``full_size()`` uses the paper's 2,000 simulated histories. The model (a GRU, the
    reference paper's kind), its training length and input_ntr's skip weight were chosen as
    docs/closed_loop.md and docs/objectives.md record."""

    seed: int = 0
    sim_users: int = 2000
    sim_events: int = 60
    epochs: int = 20
    batch_size: int = 64
    model: str = "gru"
    dim: int = 64
    num_layers: int = 1
    w_skip: float = 0.25  # input_ntr's NTR weight on skips; the others keep the defaults
    histories: int = 1000  # counterfactual simulations (the paper: 2,000)
    history_steps: int = 49  # items consumed before the branch (k - 1; the paper: k = 50)
    loop_users: int = 1000
    loop_steps: int = 40
    # closed-loop users start with this many logged events, made like the training log's
    # (20 + loop_steps = sim_events in the default and quick sizes); 0 = cold start, where
    # every user gets the same first slate (see negrec.eval.closed_loop)
    loop_warmup: int = 20
    bootstrap: int = 1000
    # the objectives the reference paper compares (beside whose figures the report puts ours)
    objectives: tuple[str, ...] = tuple(PAPER_RESPONSIVENESS)
    progress: bool = True

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(sim_users=1500, sim_events=50, epochs=20, histories=400, loop_users=400,
                   loop_steps=30, bootstrap=500)

    @classmethod
    def full_size(cls) -> "DemoConfig":
        return cls(histories=2000, loop_users=2000, loop_steps=50)

    def sim_config(self) -> SimConfig:
        return SimConfig(num_users=self.sim_users, events_per_user=self.sim_events)

    def train_config(self, objective: str) -> TrainConfig:
        return TrainConfig(
            data=DataSpec(source=SIMULATED, sim=self.sim_config(), sim_seed=self.seed),
            objective=Objective(objective, {"skip": self.w_skip}),
            model=ModelConfig(kind=self.model, dim=self.dim, num_layers=self.num_layers,
                              num_heads=2, dropout=0.1, max_len=50, cluster_input=True,
                              creator_input=True),
            loss=LossConfig(mode="sampled", sampler="uniform", num_negatives=128),
            optim=OptimConfig(lr=2e-3, warmup_steps=20),
            epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
            early_stopping_patience=0, progress=self.progress, tensorboard=False)

    def measure_sizes(self) -> MeasureSizes:
        return MeasureSizes(histories=self.histories, steps=self.history_steps,
                            loop_users=self.loop_users, loop_steps=self.loop_steps,
                            loop_warmup=self.loop_warmup, bootstrap=self.bootstrap, seed=self.seed)


def run_demo(config: DemoConfig, out_dir: str | Path, *, echo=print, overwrite: bool = False) -> dict:
    """Runs the demo into ``out_dir``; its training runs go to ``out_dir/runs/<objective>``,
    which must not hold runs already unless ``overwrite`` (they are then replaced)."""
    out = Path(out_dir)
    for name in config.objectives:  # before any work
        check_run_folder(out / "runs" / name, resume=False, overwrite=overwrite)
    t_start = time.perf_counter()
    sim_cfg = config.sim_config()
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
        metrics = train_and_evaluate(config.train_config(name), out / "runs" / name, split=split,
                                     ks=(10,), bootstrap=config.bootstrap, overwrite=overwrite)
        ck = load_checkpoint(out / "runs" / name / "best.pt")
        result = measure(ck, config.measure_sizes(), sim)
        loops[name] = result.loop
        report["objectives"][name] = {
            "offline": {"test": metrics["test"], "valid": metrics["valid"]},
            "train": {k: metrics["train"][k] for k in ("epochs", "train_seconds", "targets_per_s")},
            **result.entry,
        }
        c = result.entry["responsiveness"]["cluster"]["dislike"]
        echo(f"{name:15s} trained {metrics['train']['epochs']} epochs, test NDCG@10 "
             f"{metrics['test']['ndcg@10']:.4f}; responsiveness (cluster) {100 * c['mean']:+.1f}% "
             f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]; closed-loop dislike rate "
             f"{100 * result.loop.rates['dislike_rate'].mean:.2f}%  ({time.perf_counter() - t0:.0f} s)")
    if "positive_only" in loops:
        base = loops["positive_only"]
        for name, loop in loops.items():
            if name != "positive_only":
                report["objectives"][name]["closed_loop_vs_positive_only"] = {
                    rate: dataclasses.asdict(ratio_of_means_ci(
                        loop.per_user[rate], base.per_user[rate], resamples=config.bootstrap))
                    for rate in COMPARED_RATES}
    report["summary"] = {name: {
        "responsiveness_cluster": o["responsiveness"]["cluster"]["dislike"],
        "responsiveness_creator": o["responsiveness"].get("creator", {}).get("dislike"),
        "closed_loop_dislike_rate": o["closed_loop"]["rates"]["dislike_rate"]}
        for name, o in report["objectives"].items()}
    report["responsiveness"] = responsiveness_summary(report["objectives"])
    report["seconds"] = time.perf_counter() - t_start
    paths = write_report(report, out)
    echo("")
    echo(markdown_table(report))
    echo("")
    echo(f"report: {paths['markdown']} (+ report.json, "
         f"{', '.join(p.name for k, p in paths.items() if k not in ('json', 'markdown'))}); "
         f"{report['seconds']:.0f} s in all")
    return report
