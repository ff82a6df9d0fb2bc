"""Configurations, overrides and checkpoints of earlier layouts load as what they meant
(negrec.train.migrate): the flat objective weights, the untyped simulator section, the removed
num_workers key."""

from __future__ import annotations

import pytest
import torch
import yaml

from helpers import one_model_objective
from negrec.models import ModelConfig
from negrec.sim import SimConfig
from negrec.train import TrainConfig, apply_overrides, load_config
from negrec.train.migrate import migrate_config, migrate_objective, migrate_override

OLD_FLAT = """
objective: input_only
r: 2.0
w_dislike: 50
w_skip: 0.5
data:
  source: simulated
  sim_users: 60
  sim_events: 15
  sim_seed: 3
  sim_config: {num_items: 100, num_clusters: 5, num_creators: 20}
num_workers: 0
"""


def test_an_old_config_file_loads_as_what_it_meant(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(OLD_FLAT)
    cfg = load_config(path)
    assert cfg.objective.name == "input_only"
    assert cfg.objective.weights == {"positive": 2.0, "dislike": 50.0, "skip": 0.5}
    assert cfg.data.sim == SimConfig(num_items=100, num_clusters=5, num_creators=20,
                                     num_users=60, events_per_user=15)
    assert cfg.data.sim_seed == 3
    # saved in today's layout, and that loads to the same configuration
    again = tmp_path / "new.yaml"
    cfg.save(again)
    saved = yaml.safe_load(again.read_text())
    assert saved["objective"] == {"name": "input_only",
                                  "weights": {"positive": 2.0, "dislike": 50.0, "skip": 0.5}}
    assert "sim_users" not in saved["data"] and saved["data"]["sim"]["num_users"] == 60
    assert load_config(again).differences(cfg) == {}


def test_old_simulator_keys_set_to_null_mean_the_simulator_default():
    cfg = TrainConfig.from_dict({"data": {"sim_users": None, "sim_events": None, "sim_config": {}}})
    assert cfg.data.sim == SimConfig()


def test_old_override_spellings_still_work():
    cfg = apply_overrides(TrainConfig(), ["w_dislike=50", "r=2", "w_skip=0", "objective=input_only",
                                          "data.sim_users=70", "data.sim_events=12",
                                          "data.sim_config={num_items: 90, num_clusters: 6}"])
    assert cfg.objective.name == "input_only"
    assert cfg.objective.weights == {"positive": 2.0, "dislike": 50.0, "skip": 0.0}
    assert (cfg.data.sim.num_users, cfg.data.sim.events_per_user) == (70, 12)
    assert (cfg.data.sim.num_items, cfg.data.sim.num_clusters) == (90, 6)
    assert migrate_override("optim.lr", 0.1) == [("optim.lr", 0.1)]


def test_today_s_override_spellings():
    cfg = apply_overrides(TrainConfig(), ["objective.name=filter_history",
                                          "objective.weights.dislike=50",
                                          "objective.weights.neutral=0.5", "data.sim.num_users=80"])
    assert cfg.objective.name == "filter_history" and not cfg.model.feedback_input
    assert cfg.objective.weights == {"positive": 1.0, "dislike": 50.0, "skip": 1.0, "neutral": 0.5}
    assert cfg.data.sim.num_users == 80
    with pytest.raises(ValueError, match="unknown config key 'objective.colour' in override"):
        apply_overrides(cfg, ["objective.colour=red"])
    with pytest.raises(ValueError, match="unknown feedback type 'hate'"):
        apply_overrides(cfg, ["objective.weights.hate=1"])


def test_removed_num_workers_is_refused_unless_it_asks_for_what_negrec_does():
    assert "num_workers" not in migrate_config({"num_workers": 0})
    with pytest.raises(ValueError, match="unknown config key num_workers"):
        migrate_config({"num_workers": 2})


def test_a_checkpoint_of_the_old_layout_loads_with_its_objective(tmp_path):
    """A checkpoint written before the objective registry: objective and configuration in the
    flat layout, re-checksummed (as the old code wrote it)."""
    from negrec.data import leave_one_out

    from negrec.sim import Simulator
    from negrec.train import Trainer, load_checkpoint
    from negrec.train.checkpoint import payload_checksum
    from negrec.train.resume import stored_config

    sim = dict(num_items=80, num_clusters=6, num_creators=10, num_users=40, events_per_user=12)
    cfg = TrainConfig(model=ModelConfig(dim=8, num_layers=1, max_len=8),
                      objective=one_model_objective(), epochs=1, progress=False, tensorboard=False, eval_every=0)
    cfg.data.sim = SimConfig(**sim)
    log, _ = Simulator(cfg.data.sim).generate()
    Trainer(cfg, leave_one_out(log).train, tmp_path / "run").fit()
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    state["objective"] = {"name": "input_ntr", "input_feedback": ["dislike", "neutral",
                          "positive", "skip"], "feedback_input": True, "r": 1.0,
                          "w_dislike": 7.0, "w_skip": 0.25}
    config = dict(state["config"])
    objective = config.pop("objective")
    config.update(objective=objective["name"], r=1.0, w_dislike=7.0, w_skip=0.25)
    data = dict(config["data"])
    data.pop("sim")
    data.update(sim_users=40, sim_events=12, sim_config={k: v for k, v in sim.items()
                                                        if k not in ("num_users", "events_per_user")})
    config["data"] = data
    state["config"] = config
    state["checksum"] = payload_checksum(state)
    torch.save(state, tmp_path / "old.pt")
    ck = load_checkpoint(tmp_path / "old.pt")
    assert ck.objective.name == "input_ntr"
    assert ck.objective.weights == {"positive": 1.0, "dislike": 7.0, "skip": 0.25}
    stored = stored_config(ck)
    assert stored.objective.weights["dislike"] == 7.0 and stored.data.sim == SimConfig(**sim)
    assert migrate_objective({"name": "input_ntr", "weights": {"dislike": 3.0}}) == {
        "name": "input_ntr", "weights": {"dislike": 3.0}}


def test_a_saved_loss_section_from_before_ntr_sampler_keeps_uniform_candidates(tmp_path):
    """A configuration negrec saved up to stop 27 (every loss key but ntr_sampler) was trained
    with uniformly drawn NTR candidates; it must load (and resume) as that, while a
    hand-written partial loss section takes today's default."""
    saved = TrainConfig().to_dict()
    del saved["loss"]["ntr_sampler"]
    path = tmp_path / "stop27.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert load_config(path).loss.ntr_sampler == "uniform"
    partial = tmp_path / "mine.yaml"
    partial.write_text("loss: {mode: sampled, ntr_negatives: 64}\n")
    assert load_config(partial).loss.ntr_sampler == TrainConfig().loss.ntr_sampler == "popularity"
    stated = dict(saved, loss={**saved["loss"], "ntr_sampler": "popularity"})
    assert migrate_config(stated)["loss"]["ntr_sampler"] == "popularity"


@pytest.mark.parametrize("dropped", [(), ("chrono_max_memory",),
                                     ("chrono_init", "chrono_max_memory")])
def test_a_model_saved_before_feedback_gain_rate_keeps_plain_gains(tmp_path, dropped):
    """Every layout of the model section negrec wrote before ``model.feedback_gain_rate`` was
    trained with plain gains (rate 1), in a config file, a checkpoint's stored configuration and
    its ``model_config``; a hand-written partial section gets today's default."""
    from negrec.data import leave_one_out

    from negrec.sim import Simulator
    from negrec.train import Trainer, load_checkpoint
    from negrec.train.resume import stored_config

    old = ("history_mean", "count_prior", "count_prior_item_score", "count_prior_recency",
           "feedback_gain_rate") + dropped  # all came later
    saved = TrainConfig().to_dict()
    for key in old:
        del saved["model"][key]
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert load_config(path).model.feedback_gain_rate == 1.0
    partial = tmp_path / "mine.yaml"
    partial.write_text("model: {dim: 32}\n")
    assert load_config(partial).model.feedback_gain_rate == TrainConfig().model.feedback_gain_rate

    cfg = TrainConfig(model=ModelConfig(dim=8, max_len=8, feedback_gain_rate=1.0,
                                        count_prior=False),  # a model of its time
                      objective=one_model_objective(), epochs=1, progress=False, tensorboard=False,
                      eval_every=0)
    cfg.data.sim = SimConfig(num_items=60, num_clusters=6, num_creators=8, num_users=30,
                             events_per_user=10)
    log, _ = Simulator(cfg.data.sim).generate()
    Trainer(cfg, leave_one_out(log).train, tmp_path / "run").fit()
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    with torch.no_grad():  # gains away from 1, so that a changed rate would change the model
        state["model"]["embed.feedback_gain"].uniform_(-1.0, 2.0)
    reference = load_checkpoint(_resaved(state, tmp_path / "new.pt")).model
    for section in (state["model_config"], state["config"]["model"]):
        for key in old:
            del section[key]
    ck = load_checkpoint(_resaved(state, tmp_path / "old.pt"))
    assert ck.model.config.feedback_gain_rate == 1.0
    assert stored_config(ck).model.feedback_gain_rate == 1.0
    torch.testing.assert_close(ck.model.embed.gains(), reference.embed.gains(), rtol=0, atol=0)


def _resaved(state, path):
    """``state`` saved at ``path`` with its checksum recomputed (as negrec writes it)."""
    from negrec.train.checkpoint import payload_checksum

    state["checksum"] = payload_checksum(state)
    torch.save(state, path)
    return path


def test_a_model_saved_before_the_count_prior_was_automatic_keeps_its_prior(tmp_path):
    """Whole model sections of earlier layouts mean what they meant: without count_prior, no
    prior (its default was false); with count_prior true but without its options, the options'
    defaults of the time (a per-item score, no recent counts); with count_prior false, the
    options (which did nothing) give way to today's defaults. A hand-written partial section
    takes today's defaults."""
    from negrec.train.migrate import COUNT_PRIOR_BEFORE_AUTO, migrate_model

    whole = ModelConfig().to_dict()
    before_prior = {k: v for k, v in whole.items() if not k.startswith("count_prior")}
    assert ModelConfig(**migrate_model(before_prior)).count_prior is False
    first_form = {**before_prior, "count_prior": True}
    migrated = ModelConfig(**migrate_model(first_form))
    assert (migrated.count_prior, migrated.count_prior_item_score,
            migrated.count_prior_recency) == (True, True, False) == (
        True, *COUNT_PRIOR_BEFORE_AUTO.values())
    stop43 = {**whole, "count_prior": False, "count_prior_item_score": True,
              "count_prior_recency": False}  # as written whole until stop 44
    assert ModelConfig(**migrate_model(stop43)).count_prior is False
    assert ModelConfig(**migrate_model({"dim": 32})).count_prior is None  # today's default
    # a configuration file of that layout loads the same way
    saved = TrainConfig().to_dict()
    saved["model"] = before_prior
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert load_config(path).model.count_prior is False
