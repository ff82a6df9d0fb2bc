"""benches/generalization.py's run folders: named by the resolved configuration, one process
at a time."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from negrec.models import ModelConfig

BENCH = Path(__file__).resolve().parents[2] / "benches" / "generalization.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("generalization_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def world(bench):
    from negrec.sim import preset
    from negrec.train.data_spec import DataSpec

    spec = DataSpec(source="simulated", sim=preset("default", num_users=50, events_per_user=20))
    return bench.World("default", spec, None, None)


def args(*sets: str, tag: str = "") -> argparse.Namespace:
    return argparse.Namespace(set=list(sets), set_for=[], holdout=5, tag=tag)


def test_run_folders_are_named_by_the_resolved_configuration(bench, monkeypatch):
    w = world(bench)
    tag = bench.settings_tag(args(), w, "input_ntr")
    # the same configuration, spelt out or left to the default, is the same run
    dropout = ModelConfig().dropout
    assert bench.settings_tag(args(f"model.dropout={dropout}"), w, "input_ntr") == tag
    assert bench.settings_tag(args(f"model.dropout={dropout / 2}"), w, "input_ntr") != tag
    assert bench.settings_tag(args(tag="x"), w, "input_ntr") != tag
    # the control is input_ntr's configuration trained on permuted feedback: another run
    assert bench.settings_tag(args(), w, bench.CONTROL) != tag
    # a changed default (here: of the dropout) is a changed run, so --reuse never takes a run
    # trained with the old default for one of the new
    resolved = bench.run_config

    def new_default(world, name, seed, args, dislike=None):
        config = resolved(world, name, seed, args, dislike)
        return dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                     dropout=dropout / 2))

    monkeypatch.setattr(bench, "run_config", new_default)
    assert bench.settings_tag(args(), w, "input_ntr") != tag


def test_a_run_folder_is_trained_by_one_process_at_a_time(bench, tmp_path, capsys):
    out = tmp_path / "default" / "seed0" / "input_ntr-0"
    order: list[str] = []
    second_started = threading.Event()

    def second():
        second_started.set()
        with bench.run_lock(out):
            order.append("second")

    with bench.run_lock(out):
        thread = threading.Thread(target=second)
        thread.start()
        second_started.wait(5)
        thread.join(0.5)  # it must still be waiting for the lock
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    assert "waiting for another process training" in capsys.readouterr().out


def test_a_busy_run_is_left_for_later_instead_of_waited_for(bench, tmp_path, capsys):
    out = tmp_path / "default" / "seed0" / "input_ntr-0"
    with bench.run_lock(out) as held:
        assert held
        seen = []

        def other_process():
            with bench.run_lock(out, wait=False) as other_holds:
                seen.append(other_holds)

        thread = threading.Thread(target=other_process)
        thread.start()
        thread.join(5)
        assert seen == [False]  # told at once that another process holds it, without waiting
    assert "waiting" not in capsys.readouterr().out
    with bench.run_lock(out, wait=False) as held:  # free again
        assert held


def test_measure_all_measures_busy_runs_last_and_waits_for_them(bench):
    busy = {(0, "input_only")}  # another process is training this one
    calls = []

    def attempt(job, wait):
        calls.append((job, wait))
        return None if job in busy and not wait else f"figures of {job}"

    jobs = [(0, "positive_only"), (0, "input_only"), (0, "input_ntr"), (1, "positive_only")]
    results = bench.measure_all(jobs, attempt)
    assert results == {job: f"figures of {job}" for job in jobs}
    assert calls == [((0, "positive_only"), False), ((0, "input_only"), False),
                     ((0, "input_ntr"), False), ((1, "positive_only"), False),
                     ((0, "input_only"), True)]


def test_the_summary_counts_the_held_out_dislikes_behind_each_dislike_exposure(bench):
    # an exposure of a few events is a floor two objectives can share (rare_dislikes: both at
    # the same 3-4 of 538 held-out dislikes, "+0.0% [+0.0, +0.0]"); the lines show the counts
    import numpy as np

    rng = np.random.default_rng(0)

    def run(hits: int) -> dict:
        dexp = np.zeros(40)
        dexp[:hits] = 1.0
        sims = {"dislike": rng.random(30), "positive": rng.random(30) + 1.0}
        return {"ndcg": rng.random(100), "dexp": dexp, "sim": sims, "loop": None}

    runs = {"positive_only": [run(8), run(6)], "input_only": [run(4), run(4)],
            "input_ntr": [run(1), run(2)]}
    base = {"ndcg": rng.random(100), "dexp": np.zeros(40)}
    lines, verdict, _ = bench.summarize(world(bench), runs, base, base, resamples=50)
    text = "\n".join(lines)
    assert "input_ntr       NDCG@10" in text and "(1.5 of 40 held-out dislikes a seed)" in text
    assert "(7.0 of 40 held-out dislikes a seed)" in text
    assert "vs positive_only: " in text and "(1.5 vs 7.0 of 40 held-out dislikes in the top 10 a seed)" in text
    assert "(1.5 vs 4.0 of 40 held-out dislikes in the top 10 a seed)" in text
    assert set(verdict) >= {"dexp_below_positive_only", "dexp_below_input_only"}


def test_the_summary_compares_the_closed_loop_with_input_only_too(bench):
    # offline, input_only can share input_ntr's floor of a few held-out dislikes; the loop
    # (every slate a simulated user consumes) still shows the NTR term's share beyond the inputs
    import numpy as np

    rng = np.random.default_rng(1)

    def run(loop_rate: float) -> dict:
        sims = {"dislike": rng.random(30), "positive": rng.random(30) + 1.0}
        loop = (rng.random(200) < loop_rate).astype(float)
        return {"ndcg": rng.random(100), "dexp": np.zeros(40), "sim": sims, "loop": loop}

    runs = {"positive_only": [run(0.4), run(0.4)], "input_only": [run(0.3), run(0.3)],
            "input_ntr": [run(0.1), run(0.1)]}
    base = {"ndcg": rng.random(100), "dexp": np.zeros(40)}
    lines, verdict, rows = bench.summarize(world(bench), runs, base, base, resamples=200)
    text = "\n".join(lines)
    assert "input_ntr closed-loop dislike rate vs positive_only: " in text
    assert "input_ntr closed-loop dislike rate vs input_only: " in text
    assert verdict["loop_below_positive_only"] and verdict["loop_below_input_only"]
    vs_io = [e for m, figure, e in rows if figure == "closed_loop_dislike_rate_vs_input_only"]
    assert len(vs_io) == 1 and -0.85 < vs_io[0].mean < -0.45  # 0.1 against 0.3: about -67%


def test_set_for_names_a_known_objective_and_a_key_value(bench):
    good = ["input_ntr:objective.weights.dislike=60", "positive_only:optim.lr=0.001"]
    assert bench.malformed_set_for(good) == []
    # a misspelt objective, a missing ':', a missing '=', the control (it follows input_ntr)
    bad = ["input-ntr:objective.weights.dislike=60", "objective.weights.dislike=60",
           "input_ntr:objective.weights.dislike", "control:optim.lr=0.001"]
    assert bench.malformed_set_for(good + bad) == bad
    # and the policy it guards: a --set-for reaches its objective (and the control) only
    ns = argparse.Namespace(set=["a=1"], set_for=good)
    assert bench.overrides_for(ns, "input_ntr") == ["a=1", "objective.weights.dislike=60"]
    assert bench.overrides_for(ns, "input_only") == ["a=1"]


def test_csv_rows_record_every_override_the_set_fors_included(bench):
    from negrec.eval.stats import Estimate

    ns = argparse.Namespace(set=["model.count_prior=true"],
                            set_for=["input_ntr:objective.weights.dislike=60"], tune_dislike=False)
    rows = bench.csv_rows([("default", "input_ntr", "ndcg10_vs_popular", Estimate(0.1, 0.0, 0.2, 100))],
                          ns, seeds=5)
    assert rows[0]["overrides"] == "model.count_prior=true input_ntr:objective.weights.dislike=60"
    assert (rows[0]["world"], rows[0]["seeds"], rows[0]["mean"]) == ("default", 5, 0.1)


def test_a_swept_weight_is_the_run_a_set_for_of_that_weight_names(bench):
    # the sweep of an auto weight reuses the runs a --set-for input_ntr:objective.weights.dislike=W trained
    # (and the other way round): the same resolved configuration, the same folder
    w = world(bench)
    swept = bench.settings_tag(args(), w, "input_ntr", 60.0)
    set_for = argparse.Namespace(set=[], set_for=["input_ntr:objective.weights.dislike=60"],
                                 holdout=5, tag="")
    assert bench.settings_tag(set_for, w, "input_ntr") == swept
    assert bench.settings_tag(args(), w, "input_ntr", 100.0) != swept
    assert bench.run_config(w, "input_ntr", 0, args(), 60.0).objective.weights["dislike"] == 60.0


def test_tune_dislike_chooses_per_seed_with_negrec_tunes_rule(bench):
    import numpy as np

    rng = np.random.default_rng(0)
    ref = [rng.random(400) for _ in range(2)]
    # seed 0: every weight level with the reference, so the largest; seed 1: the two larger
    # weights cost 0.1 NDCG, far beyond the noise of 400 users, so the smallest
    costs = {0: {20.0: 0.0, 60.0: 0.0, 100.0: 0.0}, 1: {20.0: 0.0, 60.0: 0.1, 100.0: 0.1}}
    done = {(s, "positive_only", None): {"valid_ndcg": ref[s]} for s in (0, 1)}
    done.update({(s, "input_ntr", w): {"valid_ndcg": ref[s] - c} for s in (0, 1)
                 for w, c in costs[s].items()})
    choices = bench.choose_per_seed(done, [0, 1], resamples=200)
    assert (choices[0].weight, choices[1].weight) == (100.0, 20.0)
    assert choices[1].passed and not choices[1].passes(60.0)


def test_the_dislike_weight_is_chosen_unless_a_set_gives_it(bench):
    from negrec.eval.stats import Estimate

    assert bench.chooses_dislike_weight(argparse.Namespace(set=[], set_for=[]))
    for ns in (argparse.Namespace(set=["objective.weights.dislike=5"], set_for=[]),
               argparse.Namespace(set=[], set_for=["input_ntr:objective.weights.dislike=60"])):
        assert not bench.chooses_dislike_weight(ns)
    # another objective's weight leaves input_ntr's auto
    assert bench.chooses_dislike_weight(argparse.Namespace(
        set=[], set_for=["input_only:objective.weights.dislike=7"]))
    ns = argparse.Namespace(set=["model.count_prior=false"], set_for=[], tune_dislike=True)
    rows = bench.csv_rows([("default", "input_ntr", "ndcg10_vs_popular", Estimate(0.1, 0.0, 0.2, 100))],
                          ns, seeds=3)
    assert rows[0]["overrides"] == "model.count_prior=false tune_dislike=20,60,100"
