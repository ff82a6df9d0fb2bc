"""The dislike weight chosen on validation events: the rule (the largest weight whose NDCG@10
is not significantly below positive_only's) and the tuning folder negrec tune writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from negrec.errors import UserError
from negrec.experiments.tuning import (RANKING_MARGIN, REFERENCE_OBJECTIVE, choose_dislike_weight, read_plan,
                                       trial_folder, tune_dislike_weight)
from negrec.models import ModelConfig
from negrec.sim import SimConfig
from negrec.train import TrainConfig
from negrec.train.checkpoint import load_checkpoint
from negrec.train.data_spec import DataSpec


def per_user(seed: int, users: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).random(users)


def test_the_largest_weight_that_passes_is_chosen():
    ref = per_user(0)
    noise = np.random.default_rng(1).normal(0, 0.01, ref.shape)
    noise -= noise.mean()  # differences of mean 0: their interval straddles 0
    choice = choose_dislike_weight(ref, {20.0: ref + 0.01, 60.0: ref + noise, 100.0: ref - 0.1},
                                   resamples=300)
    assert choice.weight == 60.0 and choice.passed
    assert choice.passes(20.0) and choice.passes(60.0) and not choice.passes(100.0)
    cost = choice.versus_reference[100.0]
    assert cost.mean == pytest.approx(-0.1) and cost.ci_high < 0 and cost.n == 500


def test_a_weight_that_lifts_the_ranking_passes_and_the_order_of_the_grid_does_not_matter():
    ref = per_user(2)
    choice = choose_dislike_weight(ref, {100.0: ref + 0.05, 20.0: ref - 0.2, 60.0: ref},
                                   resamples=300)
    assert choice.weight == 100.0 and not choice.passes(20.0)


def test_when_every_weight_costs_ranking_the_smallest_is_kept_and_said_so():
    ref = per_user(3)
    choice = choose_dislike_weight(ref, {w: ref - 0.05 * w / 20 for w in (20.0, 60.0, 100.0)},
                                   resamples=300)
    assert choice.weight == 20.0 and not choice.passed


def test_a_wide_interval_that_takes_in_a_large_cost_does_not_pass():
    # leave-one-out validation on ml-100k gave w 100 -0.0159 [-0.0380, +0.0057] against a
    # reference of about 0.11: no evidence of a cost, but no evidence against a 30% one; the
    # rule took the largest weight there, where it could see least
    rng = np.random.default_rng(4)
    ref = (rng.random(300) < 0.11).astype(float)  # hit-or-miss NDCG of one held-out event
    large = ref.copy()  # 15 hits lost, 15 misses hit: mean cost 0, a wide paired interval
    large[rng.choice(np.flatnonzero(ref == 1), 15, replace=False)] = 0
    large[rng.choice(np.flatnonzero(ref == 0), 15, replace=False)] = 1
    choice = choose_dislike_weight(ref, {20.0: ref, 100.0: large}, resamples=300)
    wide = choice.versus_reference[100.0]
    assert wide.ci_low < 0 < wide.ci_high and wide.ci_low < -RANKING_MARGIN * ref.mean()
    assert choice.weight == 20.0 and not choice.passes(100.0)


def test_candidates_must_cover_the_reference_users():
    with pytest.raises(ValueError, match="weight 60 has 499 per-user values, the reference 500"):
        choose_dislike_weight(per_user(0), {60.0: per_user(0)[:-1]})
    with pytest.raises(ValueError, match="no candidate weights"):
        choose_dislike_weight(per_user(0), {})


def tiny_config(**changes) -> TrainConfig:
    sim = SimConfig(num_users=60, events_per_user=15, num_items=100, num_clusters=5,
                    num_creators=20)
    return TrainConfig(data=DataSpec(source="simulated", sim=sim), epochs=1, batch_size=16,
                       model=ModelConfig(dim=8, num_layers=1, max_len=10), progress=False,
                       tensorboard=False, **changes)


def test_tuning_trains_the_reference_and_every_weight_and_links_the_choice(tmp_path):
    out = tmp_path / "tune"
    result = tune_dislike_weight(tiny_config(), out, weights=(100, 20), resamples=50)
    stored = json.loads((out / "tune.json").read_text())
    assert stored == json.loads(json.dumps(result))
    assert [t["dislike_weight"] for t in result["trials"]] == [20.0, 100.0]  # ascending
    for trial in result["trials"]:
        config = yaml.safe_load((out / trial["run"] / "config.yaml").read_text())
        assert config["objective"] == {"name": "input_ntr", "weights": {
            "positive": 1.0, "dislike": trial["dislike_weight"], "skip": 1.0}}
        interval = trial["minus_reference"]
        assert trial["passes"] == (interval["ci_high"] >= 0 and interval["ci_low"] >= -RANKING_MARGIN
                                   * result["reference"]["valid_ndcg@10"])
    reference = yaml.safe_load((out / REFERENCE_OBJECTIVE / "config.yaml").read_text())
    assert reference["objective"]["name"] == "positive_only"
    assert reference["model"] == config["model"] and reference["seed"] == config["seed"]
    chosen = out / "chosen"
    assert chosen.is_symlink() and chosen.resolve() == (out / trial_folder(result["chosen_weight"])).resolve()
    assert result["test"] == json.loads((chosen / "metrics.json").read_text())["test"]
    for name in ("best.pt", "config.yaml", "metrics.json"):  # OUT/best.pt is the model to use
        assert (out / name).resolve() == (chosen / name).resolve()
    # the default model on items with clusters: the count prior, decided when it was built
    assert load_checkpoint(out / "best.pt").model.config.count_prior is True
    assert config["model"]["count_prior"] is None
    assert json.loads((out / "metrics.json").read_text())["model"]["count_prior"] is True  # as built
    config, weights = read_plan(out)
    assert weights == (20.0, 100.0) and config.to_dict() == tiny_config().to_dict()


def test_a_tuning_folder_is_resumed_or_overwritten_never_mixed(tmp_path):
    out = tmp_path / "tune"
    tune_dislike_weight(tiny_config(), out, weights=(20, 60), resamples=20)
    with pytest.raises(UserError, match="already holds a tuning run"):
        tune_dislike_weight(tiny_config(), out, weights=(20, 60))
    # resumed: the evaluated runs are kept as they are, an interrupted one is trained
    kept = (out / "dislike_20" / "best.pt").stat().st_mtime_ns
    (out / "dislike_60" / "metrics.json").unlink()
    config, weights = read_plan(out)
    result = tune_dislike_weight(config, out, weights=weights, resume=True, resamples=20)
    assert (out / "dislike_20" / "best.pt").stat().st_mtime_ns == kept
    assert (out / "dislike_60" / "metrics.json").exists() and result["chosen_weight"] in (20.0, 60.0)


@pytest.mark.parametrize("change, needle", [
    (dict(objective="input_only"), "needs an objective that trains dislikes with the "
                                   "not-to-recommend term (input_ntr); got input_only"),
    (dict(placebo=True), "got placebo true"),
])
def test_a_config_whose_dislike_weight_means_nothing_is_refused(tmp_path, change, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        tune_dislike_weight(tiny_config(**change), tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("weights", [(), (20, 20), (0, 20), (math.inf,)])
def test_a_grid_of_distinct_positive_weights_is_required(tmp_path, weights):
    with pytest.raises(UserError, match="dislike weights: expected distinct finite numbers > 0"):
        tune_dislike_weight(tiny_config(), tmp_path / "t", weights=weights)
