"""Offline evaluation (full-ranking metrics with intervals), counterfactual responsiveness and
closed-loop simulation."""

from negrec.eval.metrics import EvalResult, bootstrap_ci, evaluate, held_out_ranks

__all__ = ["EvalResult", "bootstrap_ci", "evaluate", "held_out_ranks"]
