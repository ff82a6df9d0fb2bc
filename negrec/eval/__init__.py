"""Offline evaluation (full-ranking metrics with intervals), recommendations for ad-hoc
histories, counterfactual responsiveness, closed-loop simulation, the one statistics module and
reports."""

from negrec.eval.metrics import EvalResult, evaluate, held_out_ranks
from negrec.eval.stats import Estimate, bootstrap_ci, hierarchical_ci, ratio_of_means_ci

__all__ = ["EvalResult", "evaluate", "held_out_ranks", "Estimate", "bootstrap_ci",
           "hierarchical_ci", "ratio_of_means_ci"]
