"""Training across machines: ``negrec train`` under torchrun with the c10d rendezvous, two
"nodes" of one process each on the loopback address, gives the model that one process gives on
the same global batch; each node has its own output folder (as machines without a shared
filesystem would), and only rank 0's holds the run."""

from __future__ import annotations

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
TRAIN = ["--epochs", "2", "--device", "cpu", "--no-progress",
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


def _train_on_two_nodes(tmp_path: Path, args: list[str]) -> list[tuple[int, str]]:
    """Runs ``negrec train ARGS --out node<r>`` as node r = 0, 1 of a 2-node torchrun job on
    127.0.0.1; returns each node's (exit code, output). A node still running after
    NODE_TIMEOUT_S is killed with its workers (exit code None)."""
    port = _free_port()
    nodes = []
    for r in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
               str(r), "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
               f"127.0.0.1:{port}", "--rdzv-id", "negrec-test", "--rdzv-conf", "join_timeout=120",
               "--max-restarts", "0", "-m", "negrec", "train", *args, "--out", f"node{r}"]
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


@pytest.mark.parametrize("embeddings", ["dense", "sparse"])
def test_two_nodes_equal_one_process(tmp_path, embeddings):
    log, _ = Simulator(SIM, seed=0).generate()
    log.save(tmp_path / "log.npz")
    args = ["--data", "npz", "--path", "log.npz", *TRAIN, "--set", f"optim.embeddings={embeddings}"]
    one = subprocess.run([sys.executable, "-m", "negrec", "train", *args, "--out", "one"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=NODE_TIMEOUT_S)
    assert one.returncode == 0, one.stderr[-3000:]

    nodes = _train_on_two_nodes(tmp_path, args)
    for r, (code, out) in enumerate(nodes):
        assert code == 0, f"node {r} exit code {code}:\n{out[-3000:]}"
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
