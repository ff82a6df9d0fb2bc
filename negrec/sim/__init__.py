"""Ground-truth user simulator (the embedded default dataset and the closed-loop user model)."""

from negrec.sim.presets import PRESETS, preset
from negrec.sim.simulator import SimConfig, Simulator, UserState

__all__ = ["PRESETS", "SimConfig", "Simulator", "UserState", "preset"]
