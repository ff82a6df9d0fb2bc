"""Sequential recommenders behind one interface, and the training objectives."""

from negrec.models.base import ModelConfig, SequentialRecommender, last_positions
from negrec.models.objectives import OBJECTIVES, Objective, get_objective
from negrec.models.sequential import GRURec, SASRec, build_model

__all__ = ["ModelConfig", "SequentialRecommender", "last_positions", "OBJECTIVES", "Objective",
           "get_objective", "GRURec", "SASRec", "build_model"]
