"""Ground-truth user simulator (the embedded default dataset and the closed-loop user model)."""

from negrec.sim.simulator import SimConfig, Simulator, UserState

__all__ = ["SimConfig", "Simulator", "UserState"]
