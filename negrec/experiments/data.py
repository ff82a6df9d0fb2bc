"""The event log a :class:`~negrec.train.data_spec.DataSpec` describes: the simulator, or the
loader registered for the data source (:mod:`negrec.data.loaders.sources`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.loaders import source_loader
from negrec.data.log import EventLog
from negrec.sim import Simulator
from negrec.train.data_spec import SIMULATED, DataSpec

__all__ = ["load_data"]


def load_data(spec: DataSpec) -> EventLog:
    """The :class:`EventLog` a :class:`DataSpec` describes (``all_positive`` applied)."""
    if spec.source == SIMULATED:
        log, _ = Simulator(spec.sim, seed=spec.sim_seed).generate()
    else:
        path = Path(spec.path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        log = source_loader(spec.source)(path, spec)
    if spec.all_positive:
        log.feedback = np.full_like(log.feedback, int(Feedback.POSITIVE))
        log.source += " [all positive]"
    return log
