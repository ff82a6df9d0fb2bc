"""The architecture of a sequential recommender: one configuration for every registered model
kind (:mod:`negrec.models.registry`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from negrec.errors import UserError

__all__ = ["ModelConfig"]


def _kinds() -> tuple[str, ...]:
    from negrec.models.registry import model_kinds

    return model_kinds()


@dataclass
class ModelConfig:
    """Architecture of a sequential recommender.

    - ``kind``: a registered model (``"sasrec"``: causal transformer, ``"gru"``);
    - ``dim``: D; ``num_layers``; ``num_heads`` (sasrec); ``dropout``; ``max_len``: L;
    - ``feedback_input``: add a feedback-code embedding to each event (set by the objective:
      off for ``positive_only`` and ``filter_history``, which do not see feedback);
    - ``cluster_input`` / ``creator_input``: add the item's cluster / creator embedding
      (needs item metadata); ``None`` (the default): on when the data's items have clusters /
      creators, resolved by :meth:`for_items` when the model is built;
    - ``tied``: score with the input item table (else a separate output table).

    The defaults (a one-layer GRU, metadata inputs where the data has them) were chosen by
    measurement across MovieLens-100K and several simulated worlds (docs/generalization.md).
    """

    kind: str = field(default="gru", metadata={"help": "the model", "choices": _kinds})
    dim: int = 64
    num_layers: int = 1
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    feedback_input: bool = True
    cluster_input: bool | None = None
    creator_input: bool | None = None
    tied: bool = True

    def __post_init__(self) -> None:
        from negrec.models.registry import model_class

        kinds = _kinds()
        if self.kind not in kinds:
            raise UserError(f"model.kind must be one of {', '.join(map(repr, kinds))}; got "
                            f"{self.kind!r}")
        for name in ("dim", "num_layers", "num_heads", "max_len"):
            if getattr(self, name) <= 0:
                raise UserError(f"model.{name} must be > 0; got {getattr(self, name)}")
        model_class(self.kind).check_config(self)
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.dropout must be in [0, 1); got {self.dropout}")

    def for_items(self, cluster: np.ndarray | None, creator: np.ndarray | None) -> "ModelConfig":
        """This configuration with ``cluster_input`` / ``creator_input`` decided for items with
        the given metadata ([V] int arrays, -1 = unknown; ``None``: the data has none): an
        automatic (``None``) input is on when some item has a known value."""
        def decide(wanted: bool | None, values: np.ndarray | None, what: str) -> bool:
            present = values is not None and bool((np.asarray(values) >= 0).any())
            if wanted and not present:
                raise UserError(f"model.{what}_input is true but the data's items have no "
                                f"{what}s; set it to null (automatic) or false")
            return present if wanted is None else bool(wanted)

        return replace(self, cluster_input=decide(self.cluster_input, cluster, "cluster"),
                       creator_input=decide(self.creator_input, creator, "creator"))

    def to_dict(self) -> dict:
        return asdict(self)
