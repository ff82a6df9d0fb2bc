"""The architecture of a sequential recommender: one configuration for every registered model
kind (:mod:`negrec.models.registry`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from negrec.errors import UserError

__all__ = ["ModelConfig"]


def _kinds() -> tuple[str, ...]:
    from negrec.models.registry import model_kinds

    return model_kinds()


@dataclass
class ModelConfig:
    """Architecture of a sequential recommender; each field's meaning is on its line
    (``negrec config model`` lists them). ``kind`` is a registered model (``"sasrec"``:
    causal transformer, ``"gru"``); ``cluster_input`` / ``creator_input`` / ``count_prior``
    left ``None`` are resolved by :meth:`for_items` when the model is built.

    The defaults (a one-layer GRU, metadata inputs and the count prior where the data has
    them) were chosen by measurement across MovieLens-100K and several simulated worlds
    (docs/generalization.md).
    """

    kind: str = field(default="gru", metadata={"help": "the model", "choices": _kinds})
    dim: int = 64  # D: embedding and state size
    num_layers: int = 1  # recurrent / transformer layers
    num_heads: int = 2  # attention heads (sasrec)
    dropout: float = 0.2  # dropout rate
    max_len: int = 50  # L: events of history the model sees
    feedback_input: bool = True  # add a feedback-code embedding to each event (set by the objective)
    cluster_input: bool | None = None  # add the item's cluster embedding; null: on when the items have clusters
    creator_input: bool | None = None  # add the item's creator embedding; null: on when the items have creators
    tied: bool = True  # score with the input item table (else a separate output table)
    chrono_init: bool = False  # gru: update-gate biases spread the units' memory log-uniformly over 1..chrono_max_memory events (docs/generalization_screening.md: better offline, worse in the closed loop)
    chrono_max_memory: int | None = None  # with chrono_init: the longest unit memory, in events (units spread log-uniformly over 1..this); null: max_len - 1
    history_mean: bool = False  # gru: add a learnt map (starting at zero) of the running mean of the history's event embeddings (the user's long-run taste) to the state (docs/generalization_screening.md: better on mild tastes, worse in the closed loop on three worlds)
    count_prior: bool | None = None  # items with clusters: add to each item's logit the log shares of the history's positive and of its skipped / disliked events in the item's cluster (and, with its options, a learnt per-item score and recent counts), times learnt scales starting at 0; null: on for a GRU whose items have clusters (docs/generalization.md, "The defaults since stop 44")
    count_prior_item_score: bool = False  # with count_prior: also a learnt per-item score (docs/generalization_screening.md, "The count prior on the test events": it cost ml-100k's ranking)
    count_prior_recency: bool = True  # with count_prior: also, per cluster, decayed counts of the history's recent events and of its recent skipped / disliked ones (what a binge and a recent dislike leave), each times a learnt scale starting at 0 (docs/generalization_screening.md, "Why simulated users dislike, and counts of the recent past")
    feedback_gain_rate: float | None = None  # how fast the feedback-code gains learn: gain = 1 + rate * (stored - 1), the stored value starting at 1; null: sqrt(dim), the item embeddings' rate (1: a plain parameter, as before 2026-12-03)

    def __post_init__(self) -> None:
        from negrec.models.registry import model_class

        kinds = _kinds()
        if self.kind not in kinds:
            raise UserError(f"model.kind must be one of {', '.join(map(repr, kinds))}; got "
                            f"{self.kind!r}")
        for name in ("dim", "num_layers", "num_heads", "max_len"):
            if getattr(self, name) <= 0:
                raise UserError(f"model.{name} must be > 0; got {getattr(self, name)}")
        if self.chrono_max_memory is not None:
            if not self.chrono_init:
                raise UserError("model.chrono_max_memory bounds chrono_init's memories; it does "
                                f"nothing with chrono_init false (got {self.chrono_max_memory}); "
                                "set chrono_init true or chrono_max_memory null")
            if not 1 <= self.chrono_max_memory < self.max_len:
                raise UserError(f"model.chrono_max_memory must be in [1, max_len - 1 = "
                                f"{self.max_len - 1}] events; got {self.chrono_max_memory}")
        for name in _COUNT_PRIOR_OPTIONS:
            value, plain = getattr(self, name), _FIELD_DEFAULTS[name]
            if value != plain and self.count_prior is False:
                raise UserError(f"model.{name} shapes count_prior; it does nothing with "
                                f"count_prior false (got {value}); set count_prior true or "
                                f"{name} {str(plain).lower()}")
        if self.feedback_gain_rate is not None and not (math.isfinite(self.feedback_gain_rate)
                                                        and self.feedback_gain_rate > 0):
            raise UserError(f"model.feedback_gain_rate must be a finite number > 0 (or null: "
                            f"sqrt(dim)); got {self.feedback_gain_rate}")
        model_class(self.kind).check_config(self)
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.dropout must be in [0, 1); got {self.dropout}")

    def for_items(self, cluster: np.ndarray | None, creator: np.ndarray | None) -> "ModelConfig":
        """This configuration with ``cluster_input`` / ``creator_input`` / ``count_prior``
        decided for items with the given metadata ([V] int arrays, -1 = unknown; ``None``: the
        data has none): an automatic (``None``) input is on when some item has a known value;
        an automatic count prior is on when the cluster input is and the model kind has one."""
        def decide(wanted: bool | None, values: np.ndarray | None, what: str) -> bool:
            present = values is not None and bool((np.asarray(values) >= 0).any())
            if wanted and not present:
                raise UserError(f"model.{what}_input is true but the data's items have no "
                                f"{what}s; set it to null (automatic) or false")
            return present if wanted is None else bool(wanted)

        from negrec.models.registry import model_class

        cluster_input = decide(self.cluster_input, cluster, "cluster")
        prior = {}
        if self.count_prior is None:
            prior["count_prior"] = cluster_input and model_class(self.kind).has_count_prior
            if not prior["count_prior"]:  # its options, shaping nothing, back to their defaults
                prior.update({k: _FIELD_DEFAULTS[k] for k in _COUNT_PRIOR_OPTIONS})
        elif self.count_prior and not cluster_input:
            raise UserError("model.count_prior is true but the model has no item clusters (item "
                            "metadata with a cluster per item, and model.cluster_input not "
                            "false); set it to null (automatic) or false")
        return replace(self, cluster_input=cluster_input, **prior,
                       creator_input=decide(self.creator_input, creator, "creator"))

    def to_dict(self) -> dict:
        return asdict(self)


#: Every field's default (the count prior's options are checked against theirs).
_FIELD_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}
#: The options that shape the count prior (nothing without it).
_COUNT_PRIOR_OPTIONS = ("count_prior_item_score", "count_prior_recency")
