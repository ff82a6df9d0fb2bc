"""Configurations written by earlier versions of negrec, brought to today's layout in one place.

Every path into a :class:`~negrec.train.config.TrainConfig` (a YAML file, a checkpoint's stored
configuration, ``--set key=value`` overrides) goes through :func:`migrate_config` /
:func:`migrate_override`, so an old file, an old checkpoint and an old command line mean what
they meant when they were written:

- ``objective: NAME`` with ``r`` / ``w_dislike`` / ``w_skip`` beside it (until the objective
  registry) -> ``objective: {name: NAME, weights: {positive: r, dislike: w_dislike, skip:
  w_skip}}``;
- ``data.sim_users`` / ``data.sim_events`` / ``data.sim_config`` (an untyped dict) ->
  ``data.sim`` (a :class:`~negrec.sim.SimConfig`: ``num_users`` / ``events_per_user``);
- ``num_workers: 0`` (removed: batches are collated in this process) is dropped; any other
  value asks for something negrec no longer does, and is refused;
- a ``loss`` section with every key negrec wrote before ``loss.ntr_sampler`` existed but not
  that one (a configuration saved by negrec up to stop 27, whose NTR candidates were drawn
  uniformly) gets ``ntr_sampler: uniform``; a hand-written partial section gets the default;
- a ``model`` section (or a checkpoint's ``model_config``) with every key of one of the layouts
  negrec wrote before ``model.feedback_gain_rate`` existed but not that one (the feedback gains
  were plain parameters) gets ``feedback_gain_rate: 1.0``, which computes what it computed then;
- a whole model section (every key negrec has always written) without ``count_prior`` gets
  ``count_prior: false`` (its default was false until stop 44, now automatic); one with
  ``count_prior: true`` but without ``count_prior_item_score`` / ``count_prior_recency`` gets
  the values they defaulted to then (true / false); with ``count_prior: false`` those options
  (which did nothing) are dropped.
"""

from __future__ import annotations

from typing import Any

from negrec.errors import UserError

__all__ = ["REMOVED_KEYS", "migrate_config", "migrate_model", "migrate_objective", "migrate_override"]

# Keys that no longer exist, with the value that asks for what negrec now always does: old
# config files and checkpoints that hold exactly that value still load (nothing they ask for
# is lost); any other value is an error. num_workers: batches are collated in this process by
# the native collator's threads (collate_threads); DataLoader worker processes would each draw
# negatives from their own copy of the data generator, which breaks exact resume.
REMOVED_KEYS = {"num_workers": (0, "batches are collated in this process, by collate_threads "
                                   "native threads")}

#: Old flat objective weights (root keys) -> the feedback type they weigh.
OLD_WEIGHT_KEYS = {"r": "positive", "w_dislike": "dislike", "w_skip": "skip"}
#: The loss section's keys as negrec wrote them before loss.ntr_sampler (NTR candidates uniform).
LOSS_KEYS_BEFORE_NTR_SAMPLER = frozenset({"mode", "sampler", "num_negatives", "alpha",
                                          "temperature", "ntr_negatives",
                                          "ntr_trains_candidates"})
#: The model section's keys in each layout negrec wrote before model.feedback_gain_rate (whose
#: feedback gains were plain parameters, i.e. rate 1): before chrono_init, with it, and with
#: chrono_max_memory too.
_MODEL_KEYS_BASE = ("kind", "dim", "num_layers", "num_heads", "dropout", "max_len",
                    "feedback_input", "cluster_input", "creator_input", "tied")
MODEL_LAYOUTS_BEFORE_GAIN_RATE = (frozenset(_MODEL_KEYS_BASE),
                                  frozenset(_MODEL_KEYS_BASE + ("chrono_init",)),
                                  frozenset(_MODEL_KEYS_BASE + ("chrono_init", "chrono_max_memory")))
#: The count prior's options before stop 44 (when count_prior became automatic and these
#: defaults flipped): a whole model section with count_prior true but without one of them
#: was trained with this value.
COUNT_PRIOR_BEFORE_AUTO = {"count_prior_item_score": True, "count_prior_recency": False}
#: Old simulator keys of the data section -> the SimConfig field they set.
OLD_SIM_KEYS = {"sim_users": "num_users", "sim_events": "events_per_user"}


def migrate_config(values: Any) -> Any:
    """A configuration mapping in today's layout (a new dict; ``values`` is not changed).
    Anything that is not a mapping is returned as it is (the caller reports it)."""
    if not isinstance(values, dict):
        return values
    out = dict(values)
    for key, (accepted, why) in REMOVED_KEYS.items():
        if key in out:
            value = out.pop(key)
            if value != accepted:
                raise UserError(f"unknown config key {key} (removed: {why}); got {key}: {value!r}")
    old_weights = {OLD_WEIGHT_KEYS[k]: out.pop(k) for k in list(out) if k in OLD_WEIGHT_KEYS}
    objective = out.get("objective")
    if isinstance(objective, str) or old_weights:
        section = {"name": objective} if isinstance(objective, str) else dict(objective or {})
        if old_weights:
            section["weights"] = {**old_weights, **dict(section.get("weights") or {})}
        out["objective"] = section
    if isinstance(out.get("data"), dict):
        out["data"] = _migrate_data(out["data"])
    loss = out.get("loss")
    if isinstance(loss, dict) and set(loss) == LOSS_KEYS_BEFORE_NTR_SAMPLER:
        out["loss"] = {**loss, "ntr_sampler": "uniform"}
    if isinstance(out.get("model"), dict):
        out["model"] = migrate_model(out["model"])
    return out


def migrate_model(section: dict) -> dict:
    """A model section (or a checkpoint's ``model_config``) in today's layout (a new dict): one
    written whole before ``feedback_gain_rate`` existed keeps the rate it was trained with (1);
    one written whole before the count prior's defaults changed (stop 44) keeps the prior it
    was trained with (see :data:`COUNT_PRIOR_BEFORE_AUTO`)."""
    out = dict(section)
    if frozenset(out) in MODEL_LAYOUTS_BEFORE_GAIN_RATE:
        out["feedback_gain_rate"] = 1.0
    if not frozenset(_MODEL_KEYS_BASE) <= frozenset(out):
        return out  # a hand-written section: its missing keys take today's defaults
    if "count_prior" not in out:  # written before the count prior existed: none
        out["count_prior"] = False
    if out["count_prior"] is True:  # its options' defaults of the time it was written
        for key, value in COUNT_PRIOR_BEFORE_AUTO.items():
            out.setdefault(key, value)
    elif out["count_prior"] is False:  # options that did nothing; today's defaults
        for key in COUNT_PRIOR_BEFORE_AUTO:
            out.pop(key, None)
    return out


def migrate_objective(stored: dict) -> dict:
    """A checkpoint's stored objective as today's ``{name, weights}``: checkpoints written before
    the objective registry hold ``{name, input_feedback, feedback_input, r, w_dislike, w_skip}``
    (the inputs are derived from the name, so they are not read)."""
    if "weights" in stored:
        return {"name": stored["name"], "weights": dict(stored["weights"])}
    return {"name": stored["name"],
            "weights": {w: stored[k] for k, w in OLD_WEIGHT_KEYS.items() if k in stored}}


def _migrate_data(data: dict) -> dict:
    out = dict(data)
    old = {}
    if "sim_config" in out:
        old.update(out.pop("sim_config") or {})
    for key, field in OLD_SIM_KEYS.items():
        if key in out:
            value = out.pop(key)
            if value is not None:  # None meant "the simulator's default"
                old[field] = value
    if old:
        current = out.get("sim")
        out["sim"] = {**old, **(current if isinstance(current, dict) else {})}
    return out


def migrate_override(key: str, value: Any) -> list[tuple[str, Any]]:
    """An override ``key=value`` (value already parsed) as today's (key, value) pairs:
    ``w_dislike=50`` -> ``objective.weights.dislike=50``, ``objective=NAME`` ->
    ``objective.name=NAME``, ``data.sim_users=N`` -> ``data.sim.num_users=N``,
    ``data.sim_config={...}`` -> one ``data.sim.KEY`` per entry."""
    if key in OLD_WEIGHT_KEYS:
        return [(f"objective.weights.{OLD_WEIGHT_KEYS[key]}", value)]
    if key == "objective" and isinstance(value, str):
        return [("objective.name", value)]
    if key.startswith("data.") and key[5:] in OLD_SIM_KEYS:
        return [(f"data.sim.{OLD_SIM_KEYS[key[5:]]}", value)]
    if key == "data.sim_config" and isinstance(value, dict):
        return [(f"data.sim.{k}", v) for k, v in value.items()]
    return [(key, value)]
