#!/usr/bin/env python
"""negrec vs RecBole 1.2.1 on MovieLens-100K, side by side, on one and the same split.

All ratings count as positive interactions (RecBole's convention). negrec makes the
leave-one-out split (per user, stable time order: last event = test, the one before =
validation, the rest = training); the script writes it as RecBole atomic files in a temporary
folder outside the repository (the MovieLens files are never copied into it), with a time field
that is each event's position in negrec's order, so RecBole's own sequential pipeline
(prefix augmentation, leave-one-out "LS: valid_and_test", time order) reproduces exactly
negrec's train/valid/test events. The RecBole side checks this and reports a fingerprint of its
train/valid/test rows (user, target, last <= 50 history items), which must equal negrec's.

Each model trains for the same budget of *training* time (validation and test evaluation are
not counted; an epoch that the budget cuts short is dropped, for both libraries). Every run is
its own process; by default (--schedule parallel) negrec's model trains at the same time as
its RecBole counterpart with one torch thread each, so that both see the same machine load
(other work on a shared machine distorts multi-threaded timings badly); the runs of a slot
prepare their data and model, then start training together. --schedule sequential
runs them one after the other (with torch's default threads unless --threads). After every
epoch both libraries evaluate validation and test with full ranking over all items:
- RecBole with its own evaluator (Trainer.evaluate: full sort, history items NOT excluded,
  which is RecBole's behaviour for sequential models);
- negrec with negrec.eval.held_out_ranks under the same protocol (exclude_history=False).
This protocol ("RecBole protocol") drives everything: model selection (best validation
NDCG@10), time-to-NDCG and the headline figures. The selected model of each run is also scored
with history items excluded (negrec's default), with bootstrap 95% intervals over users.

RecBole is an optional peer dependency that lives in its own virtual environment (default:
../recbole-venv next to the repository, or --recbole-python). RecBole 1.2.1 switches torch's
autograd anomaly detection on when imported (recbole/model/sequential_recommender/sine.py);
the RecBole side switches it off again before training and reports both states.

  python benches/compare_recbole.py --quick   # SASRec only, 6 minutes per model (~10 min)
  python benches/compare_recbole.py           # SASRec + GRU, 25 minutes per model (~60 min)
  python benches/compare_recbole.py --negrec-variant sasrec_lr3e-3:optim.lr=3e-3 \\
      --reuse-recbole bench_results/compare_recbole/<run>/results.json --models sasrec

Writes bench_results/compare_recbole/<timestamp>/{results.json,curves.csv,*.log} and ends with
one key=value line. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))
DEFAULT_RECBOLE_VENV = Path(os.environ.get("NEGREC_RECBOLE_VENV", REPO.parent / "recbole-venv"))
RECBOLE_VERSION = "1.2.1"
TORCH_VERSION = "2.13.0"
# RecBole SASRec's 25-minute test NDCG@10 as measured by the author of issue 6 (for reference
# only: the comparison uses the value measured in this run)
ISSUE_RECBOLE_SASREC_NDCG = 0.0554
ISSUE_RECBOLE_BEST_PEER_NDCG = 0.0706
DATASET = "ml100k_negrec"
MAX_LEN = 50
K = 10

RECBOLE_MODELS = {"sasrec": "SASRec", "gru": "GRU4Rec"}
# RecBole's settings from issue 6 (everything else is RecBole 1.2.1's default)
RECBOLE_MODEL_PARAMS = {
    "SASRec": {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "loss_type": "CE"},
    "GRU4Rec": {"embedding_size": 64, "hidden_size": 64, "num_layers": 2, "loss_type": "CE"},
}


def setup_message(python: Path) -> str:
    venv = python.parent.parent
    return (
        f"RecBole {RECBOLE_VERSION} (the peer library) is not available at {python}.\n"
        "It is an optional peer dependency kept in its own virtual environment, outside the\n"
        "repository. Create it with:\n\n"
        f"  python3 -m venv {venv}\n"
        f"  {venv}/bin/pip install recbole=={RECBOLE_VERSION} torch=={TORCH_VERSION} "
        '"numpy<2" "pandas<2.3" "setuptools<81"\n\n'
        "(pip brings in RecBole's other requirements: scipy, scikit-learn, ray<=2.6.3, colorlog,\n"
        "tensorboard, thop, ...), or point --recbole-python (or NEGREC_RECBOLE_VENV) at an\n"
        "existing one."
    )


# =============================================================================================
# RecBole side: runs in RecBole's own virtual environment (no negrec import here)
# =============================================================================================

def _say(msg: str) -> None:
    print("@@ " + msg, flush=True)


def _wait_for_go(job: dict) -> None:
    """Parallel schedule: tell the parent this run is ready to train, then wait until every run
    of its slot is, so that they start training at the same moment."""
    if not job.get("go_file"):
        return
    Path(job["ready_file"]).write_text("ready")
    deadline = time.monotonic() + 1800
    while not Path(job["go_file"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal from the parent within 30 minutes")
        time.sleep(0.2)


def _rows_fingerprint(rows) -> str:
    """sha256 over the sorted lines 'user<TAB>target<TAB>h1,h2,...' (history: last <= 50)."""
    lines = sorted(f"{u}\t{t}\t{','.join(h)}" for u, t, h in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def recbole_worker(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    import numpy as np
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    anomaly_before = torch.is_anomaly_enabled()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed
    import recbole
    # the model package, as Config() and get_model() import it
    import recbole.model.sequential_recommender  # noqa: F401

    anomaly_after_import = torch.is_anomaly_enabled()
    # RecBole 1.2.1 calls torch.autograd.set_detect_anomaly(True) when its sequential models are
    # imported (recbole/model/sequential_recommender/sine.py): a debug mode that slows training.
    torch.autograd.set_detect_anomaly(False)

    model_name = job["model"]
    config_dict = {
        "data_path": job["data_path"],
        "checkpoint_dir": job["checkpoint_dir"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "train_neg_sample_args": None,  # CE over all items
        "learner": "adam", "learning_rate": 1e-3,
        "train_batch_size": 256,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                      "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [K], "valid_metric": f"NDCG@{K}",
        "metric_decimal_place": 10,  # RecBole rounds its metrics to 4 places by default
        "eval_step": 1, "epochs": 100000, "stopping_step": 100000,
        "use_gpu": False, "device": "cpu", "show_progress": False, "seed": job["seed"],
        "reproducibility": True, "log_wandb": False,
        **RECBOLE_MODEL_PARAMS[model_name],
    }
    config = Config(model=model_name, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # ---- the split as RecBole sees it: rows (user, target, last <= 50 history items) ----
    uid, iid = dataset.uid_field, dataset.iid_field
    list_field, len_field = iid + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]

    def rows_of(ds):
        f = ds.inter_feat
        users = dataset.id2token(uid, f[uid].numpy())
        targets = dataset.id2token(iid, f[iid].numpy())
        lists, lens = f[list_field].numpy(), f[len_field].numpy()
        return [(str(u), str(t), [str(x) for x in dataset.id2token(iid, lst[:n])])
                for u, t, lst, n in zip(users, targets, lists, lens)]

    split_info = {}
    for name, dl in (("train", train_data), ("valid", valid_data), ("test", test_data)):
        rows = rows_of(dl._dataset)
        split_info[name] = {"rows": len(rows), "users": len({r[0] for r in rows}),
                            "fingerprint": _rows_fingerprint(rows)}
    split_info["num_items"] = int(dataset.item_num - 1)  # without RecBole's padding item 0
    split_info["num_users"] = int(dataset.user_num - 1)
    _say(f"{model_name}: RecBole split train/valid/test rows "
         f"{split_info['train']['rows']}/{split_info['valid']['rows']}/{split_info['test']['rows']}, "
         f"{split_info['num_items']} items")

    # full histories (raw ids) for scoring with history items excluded
    test_history = json.loads(Path(job["test_history"]).read_text())
    hist_ids = {}
    for u, items in test_history.items():
        hist_ids[u] = torch.as_tensor(dataset.token2id(iid, items), dtype=torch.long)

    @torch.no_grad()
    def ranks(eval_data):
        """1-based rank of each held-out item, RecBole protocol (item 0 masked, history kept)
        and with the user's full history excluded; ties count against the target."""
        model.eval()
        out_keep, out_excl = [], []
        for interaction, history_index, _, positive_i in eval_data:
            scores = model.full_sort_predict(interaction.to(config["device"]))
            scores = scores.view(-1, dataset.item_num).clone()
            scores[:, 0] = -np.inf
            ar = torch.arange(len(positive_i))
            s_t = scores[ar, positive_i].unsqueeze(1)
            scores[ar, positive_i] = -np.inf
            out_keep.append((scores >= s_t).sum(1) + 1)
            users = dataset.id2token(uid, interaction[uid].numpy())
            for j, u in enumerate(users):
                scores[j, hist_ids[str(u)]] = -np.inf
            out_excl.append((scores >= s_t).sum(1) + 1)
        return torch.cat(out_keep).numpy(), torch.cat(out_excl).numpy()

    # ---- training: RecBole's own _train_epoch / evaluate, with a training-time budget ----
    anomaly_before_training = torch.is_anomaly_enabled()  # must still be off
    torch.autograd.set_detect_anomaly(False)
    anomaly_now = torch.is_anomaly_enabled()
    _say(f"torch autograd anomaly detection: {anomaly_before} before importing recbole, "
         f"{anomaly_after_import} after importing it (recbole.model.sequential_recommender), "
         f"switched off; {anomaly_now} during training")
    budget = float(job["budget_s"])
    state = {"train_s": 0.0, "cut": False}

    class Budgeted:
        """Yields the train loader's batches until the training-time budget is used up."""

        def __init__(self, loader):
            self.loader = loader

        def __len__(self):
            return len(self.loader)

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def __iter__(self):
            for batch in self.loader:
                if state["train_s"] + (time.perf_counter() - state["t0"]) >= budget:
                    state["cut"] = True
                    return
                yield batch

    curve, best = [], {"valid": -math.inf, "epoch": None, "state": None}
    _wait_for_go(job)
    t_start = time.perf_counter()
    for epoch in range(100000):
        state["t0"] = time.perf_counter()
        loss = trainer._train_epoch(Budgeted(train_data), epoch, show_progress=False)
        epoch_s = time.perf_counter() - state["t0"]
        state["train_s"] += epoch_s
        if state["cut"]:
            _say(f"{model_name}: budget reached during epoch {epoch + 1} (dropped, not evaluated)")
            break
        valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
        test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        rec = {"epoch": epoch + 1, "train_s": state["train_s"], "epoch_train_s": epoch_s,
               "wall_s": time.perf_counter() - t_start, "loss": float(loss),
               "valid_ndcg10": float(valid[f"ndcg@{K}"]), "valid_recall10": float(valid[f"recall@{K}"]),
               "test_ndcg10": float(test[f"ndcg@{K}"]), "test_recall10": float(test[f"recall@{K}"]),
               "loadavg1": os.getloadavg()[0]}
        curve.append(rec)
        _say(f"{model_name} epoch {epoch + 1}: train {state['train_s']:.0f}s (+{epoch_s:.1f}), "
             f"valid ndcg@10 {rec['valid_ndcg10']:.4f}, test ndcg@10 {rec['test_ndcg10']:.4f}, "
             f"load {rec['loadavg1']:.1f}")
        if rec["valid_ndcg10"] > best["valid"]:
            best.update(valid=rec["valid_ndcg10"], epoch=epoch + 1,
                        state=copy.deepcopy(model.state_dict()))
        if state["train_s"] >= budget:
            break

    final = None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        r_keep, r_excl = ranks(test_data)
        final = {"best_epoch": best["epoch"], "valid_ndcg10": best["valid"],
                 "recbole_evaluator": {k: float(v) for k, v in test.items()},
                 "test_ranks": r_keep.tolist(), "test_ranks_history_excluded": r_excl.tolist()}
    result = {"library": "recbole", "model": model_name, "recbole_version": recbole.__version__,
              "torch_version": torch.__version__, "threads": torch.get_num_threads(),
              "anomaly": {"before_import": anomaly_before, "after_import": anomaly_after_import,
                          "before_training": anomaly_before_training,
                          "during_training": torch.is_anomaly_enabled()},
              "settings": {k: (v if not isinstance(v, dict) else v) for k, v in config_dict.items()
                           if k not in ("data_path", "checkpoint_dir")},
              "model_defaults": {k: config[k] for k in (
                  "hidden_dropout_prob", "attn_dropout_prob", "inner_size", "hidden_act",
                  "dropout_prob", "weight_decay", "clip_grad_norm") if k in config},
              "split": split_info, "curve": curve, "final": final,
              "stopped_by_budget": state["cut"] or state["train_s"] >= budget}
    Path(job["out"]).write_text(json.dumps(result))


# =============================================================================================
# negrec side and the comparison (negrec's virtual environment)
# =============================================================================================

def ndcg_recall(ranks):
    import numpy as np

    r = np.asarray(ranks)
    return (float(np.where(r <= K, 1.0 / np.log2(r + 1.0), 0.0).mean()), float((r <= K).mean()))


def ndcg_ci(ranks):
    import numpy as np
    from negrec.eval import bootstrap_ci

    r = np.asarray(ranks)
    return bootstrap_ci(np.where(r <= K, 1.0 / np.log2(r + 1.0), 0.0), resamples=1000, seed=0)


def negrec_split_rows(split):
    """negrec's split as rows (user, target, last <= 50 history items) with raw ids, the way
    RecBole's prefix augmentation + leave-one-out lays them out."""
    raw_u = split.train.user_ids
    raw_i = split.train.item_meta.raw_ids
    train = []
    for u in range(split.train.num_users):
        s = [str(x) for x in raw_i[split.train.items[split.train.user_slice(u)]]]
        for j in range(1, len(s)):
            train.append((str(raw_u[u]), s[j], s[max(0, j - MAX_LEN):j]))

    def held(h):
        rows = []
        for k, u in enumerate(h.users):
            hist = [str(x) for x in raw_i[h.history.items[h.history.user_slice(k)]]]
            rows.append((str(raw_u[u]), str(raw_i[h.items[k]]), hist[-MAX_LEN:]))
        return rows

    return {"train": train, "valid": held(split.valid), "test": held(split.test)}


def write_recbole_data(log, split, tmp: Path) -> tuple[Path, Path]:
    """The full log as a RecBole .inter file (raw ids; time = position in negrec's per-user
    stable time order) and every test user's full history (for history exclusion)."""
    folder = tmp / DATASET
    folder.mkdir(parents=True)
    raw_u, raw_i = log.user_ids, log.item_meta.raw_ids
    with (folder / f"{DATASET}.inter").open("w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        n = 0
        for u in range(log.num_users):
            for i in log.items[log.user_slice(u)]:
                f.write(f"{raw_u[u]}\t{raw_i[i]}\t{n}\n")
                n += 1
    hist = {str(raw_u[u]): [str(x) for x in raw_i[split.test.history.items[split.test.history.user_slice(k)]]]
            for k, u in enumerate(split.test.users)}
    hist_path = tmp / "test_history.json"
    hist_path.write_text(json.dumps(hist))
    return tmp, hist_path


def check_recbole(python: Path) -> dict:
    if not python.exists():
        sys.exit(setup_message(python))
    probe = ("import json, torch, recbole, numpy, pandas; print(json.dumps({'recbole': recbole.__version__, "
             "'torch': torch.__version__, 'numpy': numpy.__version__, 'pandas': pandas.__version__}))")
    p = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                       env=recbole_env(), cwd=tempfile.gettempdir())
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-5:])
        sys.exit(f"{python} cannot import RecBole:\n{tail}\n\n{setup_message(python)}")
    versions = json.loads(p.stdout.strip().splitlines()[-1])
    if versions["recbole"] != RECBOLE_VERSION:
        print(f"warning: RecBole {versions['recbole']} found; this comparison was written for "
              f"{RECBOLE_VERSION}", file=sys.stderr)
    return versions


def recbole_env() -> dict:
    env = dict(os.environ)
    # RecBole 1.2.1 loads its checkpoints with torch.load's old default (torch >= 2.6 changed it)
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_slot(jobs: list[dict], tmp: Path, out_dir: Path) -> dict[str, dict]:
    """Runs the jobs (each in its own process: RecBole's venv or this one) at the same time and
    returns their results by name."""
    procs = []
    go_file = tmp / f"go_{_safe(jobs[0]['name'])}"
    for job in jobs:
        job_path = tmp / f"job_{_safe(job['name'])}.json"
        job["out"] = str(tmp / f"result_{_safe(job['name'])}.json")
        if len(jobs) > 1:
            job["go_file"] = str(go_file)
            job["ready_file"] = str(tmp / f"ready_{_safe(job['name'])}")
        job_path.write_text(json.dumps(job))
        log_path = out_dir / f"{_safe(job['name'])}.log"
        env = recbole_env() if job["kind"] == "recbole" else dict(os.environ)
        if job.get("threads"):
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(job["threads"])
        python = job["python"] if job["kind"] == "recbole" else sys.executable
        print(f"[{job['name']}] started: {job['budget_s'] / 60:g} min of training time, "
              f"{job.get('threads') or 'default'} thread(s) (log: {log_path})", flush=True)
        proc = subprocess.Popen([str(python), str(Path(__file__).resolve()), "--worker", str(job_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=tmp)

        def pump(proc=proc, log_path=log_path, name=job["name"]):
            with log_path.open("w") as log_f:
                for line in proc.stdout:
                    log_f.write(line)
                    log_f.flush()
                    if line.startswith("@@ "):
                        print(f"[{name}] {line[3:].rstrip()}", flush=True)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        procs.append((job, proc, t, log_path))
    if len(jobs) > 1:  # start training together once every run has prepared its data and model
        while not all(Path(j["ready_file"]).exists() for j in jobs):
            for job, proc, _, log_path in procs:
                if proc.poll() is not None:
                    for _, p, _, _ in procs:
                        p.kill()
                    tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
                    sys.exit(f"{job['name']} ended before training (exit {proc.returncode}); "
                             f"last lines of {log_path}:\n{tail}")
            time.sleep(0.2)
        go_file.write_text("go")
        print("[" + " + ".join(j["name"] for j in jobs) + "] all ready: training starts now", flush=True)
    results = {}
    for job, proc, t, log_path in procs:
        timeout = job["budget_s"] * 1.5 + 1200  # data preparation and evaluation come on top
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for _, p, _, _ in procs:
                p.kill()
            sys.exit(f"{job['name']} ran past {timeout:.0f} s; see {log_path}")
        t.join()
        if rc != 0:
            for _, p, _, _ in procs:
                p.kill()
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
            sys.exit(f"{job['name']} failed (exit {rc}); last lines of {log_path}:\n{tail}")
        results[job["name"]] = json.loads(Path(job["out"]).read_text())
    return results


def negrec_config(kind: str, budget_min: float, overrides: list[str], patience: int):
    from negrec.models import ModelConfig
    from negrec.train import LossConfig, OptimConfig, TrainConfig, apply_overrides

    # the architectures RecBole has (no count prior: negrec's default since stop 44)
    cfg = TrainConfig(model=ModelConfig(kind=kind, dim=64, num_layers=2, num_heads=2, dropout=0.2,
                                        max_len=MAX_LEN, count_prior=False),
                      objective="positive_only", loss=LossConfig(mode="full"),
                      optim=OptimConfig(lr=1e-3), epochs=100000, batch_size=256,
                      max_minutes=budget_min, early_stopping_patience=patience, eval_every=1,
                      progress=False, tensorboard=False, device="cpu")
    return apply_overrides(cfg, overrides) if overrides else cfg


def run_negrec(name: str, cfg, split, run_dir: Path, job: dict | None = None) -> dict:
    import torch
    from negrec.eval import held_out_ranks
    from negrec.train.checkpoint import load_checkpoint
    from negrec.train import Trainer

    inputs = cfg.objective.inputs
    curve = []
    holder = {"t_start": time.perf_counter()}

    def validate(model):
        tr = holder["trainer"]
        r_valid = held_out_ranks(model, split.valid, inputs, exclude_history=False)
        r_test = held_out_ranks(model, split.test, inputs, exclude_history=False)
        v_ndcg, v_rec = ndcg_recall(r_valid)
        t_ndcg, t_rec = ndcg_recall(r_test)
        prev = curve[-1]["train_s"] if curve else 0.0
        rec = {"epoch": tr.epoch, "train_s": tr.train_seconds, "epoch_train_s": tr.train_seconds - prev,
               "wall_s": time.perf_counter() - holder["t_start"], "loss": math.nan,
               "valid_ndcg10": v_ndcg, "valid_recall10": v_rec, "test_ndcg10": t_ndcg,
               "test_recall10": t_rec, "loadavg1": os.getloadavg()[0]}
        curve.append(rec)
        if tr.epoch % 10 == 1 or tr.epoch <= 3:
            _say(f"epoch {tr.epoch}: train {tr.train_seconds:.0f}s (+{rec['epoch_train_s']:.1f}), "
                 f"valid ndcg@10 {v_ndcg:.4f}, test ndcg@10 {t_ndcg:.4f}, load {rec['loadavg1']:.1f}")
        return {f"ndcg@{K}": v_ndcg, f"recall@{K}": v_rec, f"test_ndcg@{K}": t_ndcg,
                f"test_recall@{K}": t_rec}

    if run_dir.exists():
        shutil.rmtree(run_dir)
    _say(f"model {cfg.model.to_dict()}, optim {cfg.to_dict()['optim']}, batch {cfg.batch_size}, "
         f"{torch.get_num_threads()} thread(s)")
    trainer = Trainer(cfg, split.train, run_dir, validate=validate, validate_metric=f"ndcg@{K}")
    holder["trainer"] = trainer
    _wait_for_go(job or {})
    holder["t_start"] = time.perf_counter()
    res = trainer.fit()
    _say(f"{res.epochs_completed} epochs, {res.steps} steps, {res.train_seconds:.0f}s training, "
         f"best epoch {res.best_epoch}")
    final = None
    if res.best_epoch is not None:
        ck = load_checkpoint(run_dir / "best.pt")
        model = ck.model
        r_keep = held_out_ranks(model, split.test, inputs, exclude_history=False)
        r_excl = held_out_ranks(model, split.test, inputs, exclude_history=True)
        best = max(curve, key=lambda r: r["valid_ndcg10"])
        final = {"best_epoch": best["epoch"], "valid_ndcg10": best["valid_ndcg10"],
                 "test_ranks": r_keep.tolist(), "test_ranks_history_excluded": r_excl.tolist()}
    import negrec

    return {"library": "negrec", "model": cfg.model.kind, "negrec_version": negrec.__version__,
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "settings": cfg.to_dict(), "steps": res.steps, "curve": curve, "final": final,
            "stopped_by_budget": res.stopped_by_time}


def negrec_worker(job: dict) -> None:
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    from negrec.data import leave_one_out
    from negrec.experiments.data import load_data
    from negrec.train.data_spec import DataSpec

    split = leave_one_out(load_data(DataSpec(source="movielens", path=job["data"], all_positive=True)))
    cfg = negrec_config(job["model"], job["budget_s"] / 60, job["overrides"], job["patience"])
    result = run_negrec(job["name"], cfg, split, Path(job["run_dir"]), job)
    result["overrides"] = job["overrides"]
    Path(job["out"]).write_text(json.dumps(result))


def summarise(run: dict) -> dict:
    """Figures of one run: epochs, s/epoch, the selected model's test metrics."""
    curve = run["curve"]
    s = {"epochs": len(curve),
         "s_per_epoch": (curve[-1]["train_s"] / len(curve)) if curve else math.nan,
         "train_s": curve[-1]["train_s"] if curve else 0.0}
    f = run.get("final")
    if f:
        ndcg, rec = ndcg_recall(f["test_ranks"])
        ndcg_x, rec_x = ndcg_recall(f["test_ranks_history_excluded"])
        s.update(best_epoch=f["best_epoch"], valid_ndcg10=f["valid_ndcg10"], test_ndcg10=ndcg,
                 test_recall10=rec, test_ndcg10_ci=ndcg_ci(f["test_ranks"]),
                 test_ndcg10_hx=ndcg_x, test_recall10_hx=rec_x,
                 test_ndcg10_hx_ci=ndcg_ci(f["test_ranks_history_excluded"]))
        # the curve's test figure at the selected epoch (must match the rescoring above)
        s["curve_test_ndcg10"] = next(r["test_ndcg10"] for r in curve if r["epoch"] == f["best_epoch"])
        if "recbole_evaluator" in f:
            s["recbole_evaluator_test_ndcg10"] = f["recbole_evaluator"][f"ndcg@{K}"]
    return s


def time_to(curve: list[dict], target: float | None) -> float | None:
    """Training seconds at the end of the first epoch whose test NDCG@10 >= target."""
    if target is None or math.isnan(target):
        return None
    for r in curve:
        if r["test_ndcg10"] >= target:
            return r["train_s"]
    return None


def fmt(x, spec=".4f", none="-"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    return format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke check: SASRec only, 6 minutes of training per model")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="training-time budget per model in minutes (default 25; --quick: 6)")
    ap.add_argument("--models", default=None,
                    help="comma-separated: sasrec,gru (default both; --quick: sasrec)")
    ap.add_argument("--data", type=Path, default=DEFAULT_ML100K, help="the ml-100k folder")
    ap.add_argument("--recbole-python", type=Path, default=DEFAULT_RECBOLE_VENV / "bin" / "python",
                    help="python of RecBole's virtual environment (default %(default)s)")
    ap.add_argument("--reuse-recbole", type=Path, default=None,
                    help="take the RecBole runs from an earlier results.json of this script "
                         "(same split required) instead of running RecBole again")
    ap.add_argument("--negrec-variant", action="append", default=[], metavar="NAME:KEY=VAL[,KEY=VAL]",
                    help="an extra negrec run on top of the default SASRec config, e.g. "
                         "'sasrec_d128:model.dim=128' or 'gru_lr3e-3:model.kind=gru,optim.lr=3e-3' "
                         "(repeatable; every variant is reported)")
    ap.add_argument("--no-negrec-defaults", action="store_true",
                    help="run only the --negrec-variant runs (not the default sasrec/gru)")
    ap.add_argument("--patience", type=int, default=0,
                    help="negrec early stopping (validations without improvement; 0: use the "
                         "whole budget, as RecBole does here)")
    ap.add_argument("--recbole-seed", type=int, default=2020, help="RecBole's seed (its default)")
    ap.add_argument("--out", type=Path, default=REPO / "bench_results" / "compare_recbole")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the RecBole data folder")
    ap.add_argument("--schedule", choices=("parallel", "sequential"), default="parallel",
                    help="parallel (default): each negrec model trains at the same time as its "
                         "RecBole counterpart (and negrec variants two at a time), so both see the "
                         "same machine load; sequential: one run after the other")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per run (default: 1 with --schedule parallel, torch's "
                         "default with sequential)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        job = json.loads(Path(args.worker).read_text())
        if job["kind"] == "recbole":
            recbole_worker(args.worker)
        else:
            negrec_worker(job)
        return

    budget_min = args.budget_min if args.budget_min is not None else (6.0 if args.quick else 25.0)
    models = (args.models or ("sasrec" if args.quick else "sasrec,gru")).split(",")
    for m in models:
        if m not in RECBOLE_MODELS:
            sys.exit(f"--models: unknown model {m!r}; choose from {', '.join(RECBOLE_MODELS)}")
    if not (args.data / "u.data").exists():
        sys.exit(f"MovieLens-100K not found at {args.data} (no u.data); pass --data or set NEGREC_ML100K")
    variants = []
    for v in args.negrec_variant:
        if ":" not in v:
            sys.exit(f"--negrec-variant must look like NAME:key=value[,key=value]; got {v!r}")
        name, ov = v.split(":", 1)
        variants.append((name, [x for x in ov.split(",") if x]))

    reused = None
    if args.reuse_recbole:
        if not args.reuse_recbole.exists():
            sys.exit(f"--reuse-recbole: no such file {args.reuse_recbole}")
        reused = json.loads(args.reuse_recbole.read_text())
        versions = reused["meta"].get("recbole_versions", {})
    else:
        versions = check_recbole(args.recbole_python)

    import numpy as np
    import torch
    import negrec
    from negrec.experiments.data import load_data
    from negrec.train.data_spec import DataSpec
    from negrec.data import leave_one_out

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / (stamp + ("-quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    log = load_data(DataSpec(source="movielens", path=str(args.data), all_positive=True))
    split = leave_one_out(log)
    rows = negrec_split_rows(split)
    negrec_fp = {k: {"rows": len(v), "users": len({r[0] for r in v}), "fingerprint": _rows_fingerprint(v)}
                 for k, v in rows.items()}
    print(f"negrec {negrec.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"RecBole {versions.get('recbole')} (torch {versions.get('torch')}, numpy {versions.get('numpy')}); "
          f"budget {budget_min:g} min of training time per model; models {','.join(models)}", flush=True)
    print(f"data: {log.num_users} users, {log.num_items} items, {log.num_events} events, all positive; "
          f"leave-one-out: train {split.train.num_events} events, valid {len(split.valid)}, "
          f"test {len(split.test)} users", flush=True)

    threads = args.threads if args.threads is not None else (1 if args.schedule == "parallel" else None)
    budget_s = budget_min * 60

    def negrec_job(name, kind, overrides):
        return {"kind": "negrec", "name": f"negrec/{name}", "model": kind, "overrides": overrides,
                "budget_s": budget_s, "threads": threads, "patience": args.patience,
                "data": str(args.data.resolve()), "run_dir": str((out_dir / f"negrec_{_safe(name)}").resolve())}

    # the runs, grouped in slots whose runs train at the same time (parallel schedule)
    slots: list[list[dict]] = []
    for m in models:
        slot = []
        key = f"recbole/{RECBOLE_MODELS[m]}"
        if reused is not None and key not in reused["runs"]:
            sys.exit(f"--reuse-recbole: {args.reuse_recbole} has no run {key}")
        if reused is None:
            slot.append({"kind": "recbole", "name": key, "model": RECBOLE_MODELS[m],
                         "python": str(args.recbole_python), "budget_s": budget_s, "threads": threads,
                         "seed": args.recbole_seed})
        if not args.no_negrec_defaults:
            slot.append(negrec_job(m, m, []))
        if slot:
            slots.append(slot)
    vjobs = [negrec_job(name, "sasrec", ov) for name, ov in variants]
    slots += [vjobs[i:i + 2] for i in range(0, len(vjobs), 2)]
    if args.schedule == "sequential":
        slots = [[j] for slot in slots for j in slot]
    print("schedule: " + " | ".join(" + ".join(j["name"] for j in slot) for slot in slots)
          + f" ({args.schedule}; {threads or 'default'} torch thread(s) per run)", flush=True)

    runs: dict[str, dict] = {}
    if reused is not None:
        for m in models:
            runs[f"recbole/{RECBOLE_MODELS[m]}"] = reused["runs"][f"recbole/{RECBOLE_MODELS[m]}"]
    tmp = Path(tempfile.mkdtemp(prefix="negrec_recbole_"))
    try:
        data_dir, hist_path = write_recbole_data(log, split, tmp)
        for slot in slots:
            for j in slot:
                if j["kind"] == "recbole":
                    j.update(data_path=str(data_dir), checkpoint_dir=str(tmp / "saved"),
                             test_history=str(hist_path))
            got = run_slot(slot, tmp, out_dir)
            for j in slot:
                got[j["name"]]["slot"] = [x["name"] for x in slot]
                got[j["name"]]["threads_requested"] = threads
            runs.update(got)
    finally:
        if args.keep_tmp:
            print(f"RecBole data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    # the raw runs first, so that nothing measured is lost if the summary below fails
    (out_dir / "results.json").write_text(json.dumps({"runs": runs}, default=float))
    # table order: RecBole and negrec per model, then the variants
    order = [k for m in models for k in (f"recbole/{RECBOLE_MODELS[m]}", f"negrec/{m}") if k in runs]
    runs = {k: runs[k] for k in order + [k for k in runs if k not in order]}

    # ---- split identity ----
    split_ok = True
    split_notes = []
    for key, run in runs.items():
        if run["library"] != "recbole":
            continue
        sp = run["split"]
        for part in ("train", "valid", "test"):
            same = sp[part]["fingerprint"] == negrec_fp[part]["fingerprint"] and \
                sp[part]["rows"] == negrec_fp[part]["rows"]
            split_ok &= same
            if not same:
                split_notes.append(f"{key} {part}: RecBole {sp[part]['rows']} rows / {sp[part]['users']} users, "
                                   f"negrec {negrec_fp[part]['rows']} / {negrec_fp[part]['users']}")
        if sp["num_items"] != log.num_items:
            split_ok = False
            split_notes.append(f"{key}: RecBole ranks over {sp['num_items']} items, negrec over {log.num_items}")

    # ---- figures ----
    summ = {k: summarise(r) for k, r in runs.items()}
    rb_sasrec = summ.get("recbole/SASRec", {}).get("test_ndcg10")
    # time-to target: RecBole SASRec's per-epoch test figure at its selected epoch (the same
    # quantity as the curves; equal to the rescoring above up to float rounding)
    rb_target = summ.get("recbole/SASRec", {}).get("curve_test_ndcg10")
    target_t = {k: time_to(r["curve"], rb_target) for k, r in runs.items()}
    ref_t = {k: time_to(r["curve"], ISSUE_RECBOLE_SASREC_NDCG) for k, r in runs.items()}
    lines = []
    p = lines.append
    p("")
    p(f"negrec vs RecBole {versions.get('recbole')} on MovieLens-100K (all ratings positive, leave-one-out, "
      f"full ranking over {log.num_items} items, {len(split.test)} test users)")
    p(f"budget: {budget_min:g} min of training time per model (evaluation not counted); protocol: RecBole's "
      f"(history items not excluded) unless marked 'hist-excl'")
    if split_ok and any(r["library"] == "recbole" for r in runs.values()):
        p(f"split: identical in both libraries (train/valid/test rows {negrec_fp['train']['rows']}/"
          f"{negrec_fp['valid']['rows']}/{negrec_fp['test']['rows']}, sha256 of (user, target, last-50 history) "
          f"rows match: train {negrec_fp['train']['fingerprint'][:12]}, valid {negrec_fp['valid']['fingerprint'][:12]}, "
          f"test {negrec_fp['test']['fingerprint'][:12]})")
    elif not split_ok:
        p("split: MISMATCH between the libraries: " + "; ".join(split_notes))
    for key, run in runs.items():
        if run["library"] == "recbole":
            a = run["anomaly"]
            p(f"{key}: torch anomaly detection {'ON' if a['after_import'] else 'off'} after importing RecBole "
              f"(set at import by recbole/model/sequential_recommender/sine.py), switched "
              f"{'ON' if a['during_training'] else 'off'} for training; RecBole defaults kept: "
              + ", ".join(f"{k}={v}" for k, v in run["model_defaults"].items()))
    p("schedule: " + " | ".join(" + ".join(j["name"] for j in slot) for slot in slots)
      + f" ({args.schedule}: runs joined by + trained at the same time; {threads or 'default'} torch "
      f"thread(s) per run)")
    if reused is not None:
        p(f"RecBole runs REUSED from {args.reuse_recbole} (measured {reused['meta']['date']}), not re-run now")
    p("")
    w = max([22] + [len(k) for k in runs])
    hdr = (f"{'library/model':<{w}} {'epochs':>6} {'s/epoch':>8} {'best ep':>7} {'valid':>7} "
           f"{'test NDCG@10 [95% CI]':>24} {'R@10':>7} {'NDCG hist-excl':>14} "
           f"{'t->RB-SASRec':>13} {'t->0.0554':>10} {'ratio':>7}")
    p(hdr)
    p("-" * len(hdr))
    rb_self = target_t.get("recbole/SASRec")
    for key in runs:
        s = summ[key]
        ci = s.get("test_ndcg10_ci", (math.nan, math.nan))
        test_col = f"{fmt(s.get('test_ndcg10'))} [{fmt(ci[0])},{fmt(ci[1])}]"
        t = target_t[key]
        ratio = (t / rb_self) if (t is not None and rb_self) else None
        p(f"{key:<{w}} {s['epochs']:>6d} {fmt(s['s_per_epoch'], '.1f'):>8} {str(s.get('best_epoch', '-')):>7} "
          f"{fmt(s.get('valid_ndcg10')):>7} {test_col:>24} {fmt(s.get('test_recall10')):>7} "
          f"{fmt(s.get('test_ndcg10_hx')):>14} {fmt(t, '.0f', 'not reached') + ('s' if t is not None else ''):>13} "
          f"{fmt(ref_t[key], '.0f', 'no') + ('s' if ref_t[key] is not None else ''):>10} {fmt(ratio, '.3f'):>7}")
    p("")
    p(f"valid = best validation NDCG@10 (selects the model whose test figures are shown); "
      f"t->RB-SASRec = training seconds until the per-epoch test NDCG@10 first reached RecBole SASRec's "
      f"selected-model test NDCG@10 of this run ({fmt(rb_target)}); t->0.0554 likewise for the issue's figure; "
      f"ratio = t->RB-SASRec / RecBole SASRec's own t->RB-SASRec.")
    for key in runs:
        s = summ[key]
        if "recbole_evaluator_test_ndcg10" in s:
            p(f"check {key}: RecBole's evaluator on the selected model {s['recbole_evaluator_test_ndcg10']:.4f}, "
              f"rank-based recomputation {s['test_ndcg10']:.4f}, per-epoch curve {s['curve_test_ndcg10']:.4f}")
        elif "curve_test_ndcg10" in s and abs(s["curve_test_ndcg10"] - s["test_ndcg10"]) > 1e-6:
            p(f"check {key}: best.pt rescored {s['test_ndcg10']:.4f} != per-epoch curve {s['curve_test_ndcg10']:.4f}")
    loads = [r["loadavg1"] for run in runs.values() for r in run["curve"]]
    if loads:
        p(f"1-minute load average during the runs: median {np.median(loads):.1f}, max {max(loads):.1f} "
          f"on {os.cpu_count()} cores (timings include interference from other work on the machine)")

    # headline
    def best_of(lib):
        cands = [k for k in runs if runs[k]["library"] == lib and "test_ndcg10" in summ[k]]
        return max(cands, key=lambda k: summ[k]["valid_ndcg10"]) if cands else None

    nb, rb = best_of("negrec"), best_of("recbole")
    kv = {}
    if "negrec/sasrec" in summ:
        kv["negrec_sasrec_test_ndcg10"] = summ["negrec/sasrec"].get("test_ndcg10")
    if "recbole/SASRec" in summ:
        kv["recbole_sasrec_test_ndcg10"] = rb_sasrec
    if "negrec/gru" in summ:
        kv["negrec_gru_test_ndcg10"] = summ["negrec/gru"].get("test_ndcg10")
    if "recbole/GRU4Rec" in summ:
        kv["recbole_gru4rec_test_ndcg10"] = summ["recbole/GRU4Rec"].get("test_ndcg10")
    if "negrec/sasrec" in target_t and rb_self:
        t = target_t["negrec/sasrec"]
        kv["time_to_recbole_sasrec_ndcg_negrec_s"] = t
        kv["time_to_recbole_sasrec_ndcg_recbole_s"] = rb_self
        kv["time_to_recbole_sasrec_ndcg_ratio"] = (t / rb_self) if t is not None else None
        kv["time_to_recbole_sasrec_ndcg_vs_budget"] = (t / budget_s) if t is not None else None
    if nb:
        kv["negrec_best"] = nb.split("/", 1)[1]
        kv["negrec_best_test_ndcg10"] = summ[nb]["test_ndcg10"]
    if rb:
        kv["recbole_best"] = rb.split("/", 1)[1]
        kv["recbole_best_test_ndcg10"] = summ[rb]["test_ndcg10"]
    kv["budget_min"] = budget_min
    kv["split_identical"] = split_ok
    kv["recbole_reused"] = reused is not None
    if nb:
        p(f"negrec's best model by validation: {nb}; RecBole's: {rb or '-'} "
          f"(the issue's best-peer figure: {ISSUE_RECBOLE_BEST_PEER_NDCG})")

    def kv_fmt(v):
        if v is None:
            return "none"
        if isinstance(v, float):
            return f"{v:g}" if v.is_integer() else (f"{v:.4f}" if abs(v) < 10 else f"{v:.0f}")
        return str(v).lower() if isinstance(v, bool) else str(v)

    print("\n".join(lines), flush=True)

    # ---- files ----
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "negrec_version": negrec.__version__, "torch": torch.__version__,
            "recbole_versions": versions, "machine": platform.machine(), "cpus": os.cpu_count(),
            "budget_min": budget_min, "models": models, "argv": sys.argv[1:],
            "split": negrec_fp, "split_identical": split_ok, "split_notes": split_notes,
            "recbole_reused_from": str(args.reuse_recbole) if reused is not None else None}
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "runs": runs, "summary": summ, "time_to_recbole_sasrec": target_t,
         "time_to_0.0554": ref_t, "headline": kv, "table": lines,
         "key_values": " ".join(f"{k}={kv_fmt(v)}" for k, v in kv.items())}, indent=1, default=float))
    with (out_dir / "curves.csv").open("w", newline="") as f:
        fields = ["run", "epoch", "train_s", "epoch_train_s", "wall_s", "loss", "valid_ndcg10",
                  "valid_recall10", "test_ndcg10", "test_recall10", "loadavg1"]
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for key, run in runs.items():
            for r in run["curve"]:
                w.writerow({"run": key, **r})
    print(f"(curves and results in {out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir})",
          file=sys.stderr)
    print(" ".join(f"{k}={kv_fmt(v)}" for k, v in kv.items()))


if __name__ == "__main__":
    main()
