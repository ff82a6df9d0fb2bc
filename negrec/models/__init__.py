"""Sequential recommenders behind one interface: one module per model (``sasrec``, ``gru``;
``popularity``: the most-popular baseline), the shared input embedding, the registry, and what
a model sees of a history (:class:`ModelInputs`)."""

from negrec.models.base import SequentialRecommender, last_positions
from negrec.models.config import ModelConfig
from negrec.models.gru import GRURec
from negrec.models.inputs import ModelInputs
from negrec.models.popularity import MostPopular
from negrec.models.registry import build_model, model_kinds, register_model
from negrec.models.sasrec import SASRec

__all__ = ["ModelConfig", "ModelInputs", "SequentialRecommender", "last_positions", "GRURec",
           "MostPopular", "SASRec", "build_model", "model_kinds", "register_model"]
