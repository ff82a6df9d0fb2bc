"""Training across machines: ``negrec train`` under torchrun with the c10d rendezvous, two
"nodes" of one process each on the loopback address, gives the model that one process gives on
the same global batch; each node has its own output folder (as machines without a shared
filesystem would), and only rank 0's holds the run. Every rank ends with rank 0, after its
evaluation, having left the process group, so both nodes' torchrun succeed; ``Ranks.finish``
(that end) waits for rank 0 past NEGREC_DIST_TIMEOUT_S, and fails at once when rank 0 dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from negrec.sim import SimConfig, Simulator

SIM = SimConfig(num_items=200, num_clusters=8, num_creators=40, num_users=150, events_per_user=30)
#: The run: small, sampled softmax with uniform negatives (drawn from the same seeded generator
#: on every rank, so every rank's share of a global batch sees the candidates one process sees).
TRAIN = ["--epochs", "2", "--device", "cpu", "--no-progress", "--set", "objective.weights.dislike=20",
         "--set", "batch_size=32", "--set", "tensorboard=false", "--set", "eval_every=0",
         "--set", "loss.mode=sampled", "--set", "loss.sampler=uniform",
         "--set", "loss.num_negatives=64", "--set", "model.kind=sasrec", "--set", "model.dim=16",
         "--set", "model.num_layers=1", "--set", "model.max_len=12", "--set", "model.dropout=0.0",
         "--set", "model.cluster_input=true", "--set", "model.creator_input=true",
         # Adam turns round-off-sized gradients (e.g. of the attention's key bias, whose true
         # gradient is 0) into steps of size ~lr; eps=1e-6 keeps such noise from dominating the
         # comparison of 1 and 2 processes
         "--set", "optim.eps=1e-6", "--set", "optim.lr=3e-3", "--set", "optim.warmup_steps=2"]
#: Seconds a node may take in all (start-up, rendezvous, training, rank 0's evaluation).
NODE_TIMEOUT_S = 300
#: Seconds added to each of rank 0's two evaluations (validation and test events), so that rank
#: 0 ends well after rank 1 unless rank 1 waits for it.
EVALUATION_DELAY_S = 1.0
#: What each worker runs: ``python -m negrec`` as it is, rank 0's evaluations delayed; it
#: records, in ``probe_rank<RANK>.json``, when rank 0's evaluation ended and, on every rank, when
#: ``negrec`` returned and whether the process group was still alive at the end of the exit
#: handlers (``atexit`` runs this one, registered first, last).
PROBE = f"""
import atexit, json, os, runpy, time
import torch.distributed as dist
import negrec.experiments.training as training

record = {{"rank": int(os.environ["RANK"])}}

@atexit.register
def write_record():
    record["group_alive"] = dist.is_initialized()
    with open(f"probe_rank{{record['rank']}}.json", "w") as f:
        json.dump(record, f)

evaluate = training.evaluate

def delayed_evaluate(*args, **kwargs):
    time.sleep({EVALUATION_DELAY_S})
    result = evaluate(*args, **kwargs)
    record["evaluation_end"] = time.time()
    return result

training.evaluate = delayed_evaluate
try:
    runpy.run_module("negrec", run_name="__main__", alter_sys=True)
finally:
    record["returned"] = time.time()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", NEGREC_DIST_TIMEOUT_S="120")
    loopback = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if loopback:  # gloo connects through the loopback interface, not the host name's address
        env["GLOO_SOCKET_IFNAME"] = loopback[0]
    return env


def _train_on_two_nodes(tmp_path: Path, args: list[str]) -> list[tuple[int | None, str]]:
    """Runs ``negrec train ARGS --out node<r>`` (through :data:`PROBE`) as node r = 0, 1 of a
    2-node torchrun job on 127.0.0.1; returns each node's (exit code, output). A node still
    running after NODE_TIMEOUT_S is killed with its workers (exit code None)."""
    (tmp_path / "probe.py").write_text(PROBE)
    port = _free_port()
    nodes = []
    for r in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
               str(r), "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
               f"127.0.0.1:{port}", "--rdzv-id", "negrec-test", "--rdzv-conf", "join_timeout=120",
               "--max-restarts", "0", "probe.py", "train", *args, "--out", f"node{r}"]
        nodes.append(subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True))
    results = []
    for node in nodes:
        try:
            out, _ = node.communicate(timeout=NODE_TIMEOUT_S)
            results.append((node.returncode, out))
        except subprocess.TimeoutExpired:
            for other in nodes:  # the whole job: both agents and their workers
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
            out, _ = node.communicate()
            results.append((None, out))
    return results


def _assert_every_node_succeeded(nodes: list[tuple[int | None, str]]) -> None:
    """Every node's exit code is 0; else the message shows every failed node's output (one
    node's failure is often the consequence of another's: an agent that exits takes the
    rendezvous store it held with it)."""
    failed = [f"node {r} exit code {code}:\n{out[-3000:]}"
              for r, (code, out) in enumerate(nodes) if code != 0]
    assert not failed, "\n\n".join(failed)


#: Dense item tables across processes are also what tests/train/test_trainer.py's
#: test_ddp_two_processes_equal_one checks (torchrun on one node); the two-node job of them is
#: marked slow (about 30 s here), the sparse one runs with every test command.
@pytest.fixture(scope="module", params=[pytest.param("dense", marks=pytest.mark.slow), "sparse"])
def two_node_job(request, tmp_path_factory) -> tuple[Path, str]:
    """The one-process run and the 2-node torchrun job of the same training, in one folder;
    (that folder, the embedding update)."""
    embeddings = request.param
    tmp_path = tmp_path_factory.mktemp(f"two_nodes_{embeddings}")
    log, _ = Simulator(SIM, seed=0).generate()
    log.save(tmp_path / "log.npz")
    args = ["--data", "npz", "--path", "log.npz", *TRAIN, "--set", f"optim.embeddings={embeddings}"]
    one = subprocess.run([sys.executable, "-m", "negrec", "train", *args, "--out", "one"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=NODE_TIMEOUT_S)
    assert one.returncode == 0, one.stderr[-3000:]
    _assert_every_node_succeeded(_train_on_two_nodes(tmp_path, args))
    return tmp_path, embeddings


def test_two_nodes_equal_one_process(two_node_job):
    tmp_path, embeddings = two_node_job
    # the rendezvous assigns the ranks: one node is rank 0 and holds the whole run; the other
    # trained its share and wrote nothing
    runs = [tmp_path / f"node{r}" for r in (0, 1) if (tmp_path / f"node{r}" / "last.pt").exists()]
    assert len(runs) == 1, [sorted(p.name for p in (tmp_path / f"node{r}").glob("*"))
                            for r in (0, 1) if (tmp_path / f"node{r}").exists()]
    assert (runs[0] / "metrics.json").exists()
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(runs[0] / "last.pt", weights_only=True)
    assert a["train_state"]["step"] == b["train_state"]["step"] > 0
    assert a["train_state"]["embedding_update"] == b["train_state"]["embedding_update"] == \
        embeddings
    for name in a["model"]:
        # summation order differs between 1 and 2 processes: float32 round-off only
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-4, atol=1e-5,
                                   msg=name)


def test_every_rank_leaves_the_process_group_and_ends_after_rank_0s_evaluation(two_node_job):
    """Rank 1 stays until rank 0 has evaluated, and both ranks leave the process group before
    they exit: a rank that exited early with its group alive could abort at exit (SIGABRT),
    failing its torchrun, whose exit took the rendezvous store the other node's torchrun polls
    (a failed CI run: node 0's agent, RendezvousConnectionError in num_nodes_waiting)."""
    tmp_path, _ = two_node_job
    rank0, rank1 = (json.loads((tmp_path / f"probe_rank{r}.json").read_text()) for r in (0, 1))
    assert not rank0["group_alive"] and not rank1["group_alive"], (rank0, rank1)
    assert rank1["returned"] >= rank0["evaluation_end"], (rank0, rank1)


#: A worker of a 2-process job without torchrun (rank 0 holds the store): two runs, each joining
#: the process group (``Ranks``), summing a tensor over the ranks and ending with ``finish()``;
#: rank 0 first works for the seconds given (then, with ``die``, dies). Writes
#: ``ranks<RANK>.json`` at the end of its exit handlers: per run, when the rank called finish()
#: and when it returned; whether the process group was alive then; or the error finish() raised.
RANKS_WORKER = """
import atexit, json, os, sys, time
import torch
import torch.distributed as dist
from negrec.train.distributed import Ranks

rank, work_s, die = int(os.environ["RANK"]), float(sys.argv[1]), sys.argv[2] == "die"
record = {"runs": []}

@atexit.register
def write_record():
    record["group_alive"] = dist.is_initialized()
    with open(f"ranks{rank}.json", "w") as f:
        json.dump(record, f)

try:
    for _ in range(2):
        ranks = Ranks("cpu")
        total = torch.ones(1)
        ranks.all_reduce(total)
        if rank == 0:
            time.sleep(work_s)
            if die:
                os._exit(3)
        called = time.time()
        ranks.finish()
        record["runs"].append({"sum": total.item(), "called": called, "returned": time.time()})
except Exception as exc:
    record["error"] = f"{type(exc).__name__}: {exc}"
    record["dist_error"] = isinstance(exc, dist.DistError)
sys.exit(4 if "error" in record else 0)
"""
#: NEGREC_DIST_TIMEOUT_S of the jobs of RANKS_WORKER.
RANKS_TIMEOUT_S = 2


def _run_ranks_worker(tmp_path: Path, rank0_work_s: float,
                      mode: str) -> list[tuple[int | None, dict | str]]:
    """Runs RANKS_WORKER as ranks 0 and 1, rank 0 working ``rank0_work_s`` seconds (``mode``:
    ``work``, or ``die`` after them); each rank's (exit code, record, or output without one)."""
    (tmp_path / "worker.py").write_text(RANKS_WORKER)
    env = _env() | {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                    "NEGREC_DIST_TIMEOUT_S": str(RANKS_TIMEOUT_S)}
    procs = [subprocess.Popen([sys.executable, "worker.py", str(rank0_work_s), mode], cwd=tmp_path,
                              env=env | {"RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    results = []
    for r, proc in enumerate(procs):
        try:
            out, _ = proc.communicate(timeout=NODE_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # a wait that did not end: the job is killed
            for other in procs:
                other.kill()
            out, _ = proc.communicate()
        path = tmp_path / f"ranks{r}.json"
        results.append((proc.returncode, json.loads(path.read_text()) if path.exists() else out))
    return results


def test_finish_waits_for_rank_0_past_the_timeout_and_the_group_is_left_at_exit(tmp_path):
    """Rank 1 returns from finish() only after rank 0 called it, though rank 0 came twice
    NEGREC_DIST_TIMEOUT_S later, in both runs of the process (the second shares the group);
    both ranks have left the group when they exit."""
    (code0, rank0), (code1, rank1) = _run_ranks_worker(tmp_path, 2 * RANKS_TIMEOUT_S, "work")
    assert code0 == code1 == 0, (rank0, rank1)
    assert len(rank0["runs"]) == len(rank1["runs"]) == 2
    for run0, run1 in zip(rank0["runs"], rank1["runs"]):
        assert run0["sum"] == run1["sum"] == 2.0
        assert run1["called"] + RANKS_TIMEOUT_S < run0["called"] <= run1["returned"], (run0, run1)
    assert not rank0["group_alive"] and not rank1["group_alive"]


def test_finish_fails_at_once_when_rank_0_dies(tmp_path):
    """A rank 0 that dies before finish() ends rank 1's wait with the store's connection error,
    not after FINISH_TIMEOUT (a day; the test kills the job after NODE_TIMEOUT_S)."""
    (code0, _), (code1, rank1) = _run_ranks_worker(tmp_path, 1.0, "die")  # rank 1 waits by then
    assert code0 == 3
    assert code1 == 4 and rank1["dist_error"] and rank1["runs"] == [], rank1


def test_every_rank_validates_at_the_epochs_rank_0_chooses(tmp_path):
    """With epochs shorter than ``eval_min_steps`` steps, rank 0 skips validations that are
    too soon after its last one. Only rank 0 keeps the validation history, so a rank that
    decided on its own validated after every epoch and waited in rank 0's broadcast while rank 0
    trained on: the job hung. Rank 0 now decides for every rank."""
    log, _ = Simulator(SIM, seed=0).generate()
    log.save(tmp_path / "log.npz")
    # 15-16 steps per epoch, a validation at least 20 steps after the last: due after epochs 2
    # and 4 (the last), not 1 and 3 (rank 1 on its own: after epochs 2, 3 and 4)
    args = ["--data", "npz", "--path", "log.npz", *TRAIN, "--epochs", "4",
            "--set", "eval_every=1", "--set", "eval_min_steps=20"]
    _assert_every_node_succeeded(_train_on_two_nodes(tmp_path, args))
    run = next(tmp_path / f"node{r}" for r in (0, 1)
               if (tmp_path / f"node{r}" / "metrics.json").exists())
    history = json.loads((run / "metrics.json").read_text())["train"]["validation_history"]
    steps = [h["step"] for h in history]
    assert len(steps) == 2 and steps[1] - steps[0] >= 20, steps


def test_the_dislike_weight_sweep_runs_under_torchrun_and_rank_0_alone_writes_it(tmp_path):
    """negrec train's default dislike weight (auto) trains several runs in one --out; under a
    2-node torchrun job every rank trains each run in turn, and only rank 0's folder holds the
    tuning (its plan, every run, the choice); the other node writes nothing."""
    log, _ = Simulator(SIM, seed=0).generate()
    log.save(tmp_path / "log.npz")
    args = ["--data", "npz", "--path", "log.npz", *TRAIN, "--epochs", "1",
            "--set", "objective.weights.dislike=auto"]  # after TRAIN's weight: the default
    nodes = _train_on_two_nodes(tmp_path, args)
    _assert_every_node_succeeded(nodes)
    held = [r for r in (0, 1) if (tmp_path / f"node{r}" / "tune.json").exists()]
    assert len(held) == 1, [sorted(p.name for p in (tmp_path / f"node{r}").glob("*"))
                            for r in (0, 1) if (tmp_path / f"node{r}").exists()]
    main, other = tmp_path / f"node{held[0]}", tmp_path / f"node{1 - held[0]}"
    tuned = json.loads((main / "tune.json").read_text())
    assert (main / "best.pt").resolve() == (main / f"dislike_{tuned['chosen_weight']:g}" / "best.pt").resolve()
    assert (main / "tune_plan.json").exists() and not (other / "tune_plan.json").exists()
    assert not any(other.rglob("*.pt"))
    printed = [out for _, out in nodes if '"chosen_weight"' in out]
    assert len(printed) == 1  # rank 0 reports
