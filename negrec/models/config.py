"""The architecture of a sequential recommender: one configuration for every registered model
kind (:mod:`negrec.models.registry`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
      (needs item metadata);
    - ``tied``: score with the input item table (else a separate output table).
    """

    kind: str = field(default="sasrec", metadata={"help": "the model", "choices": _kinds})
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    feedback_input: bool = True
    cluster_input: bool = False
    creator_input: bool = False
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

    def to_dict(self) -> dict:
        return asdict(self)
