"""Seeds for the native code's random draws, taken from a ``torch.Generator``."""

from __future__ import annotations

import torch

__all__ = ["draw_seed"]


def draw_seed(generator: torch.Generator | None) -> int:
    """A 63-bit seed drawn from ``generator`` (torch's default one when None): the native
    collator's random crops and the alias sampler's draws are seeded from it, so they follow
    the generator's state (and a checkpointed generator reproduces them)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, dtype=torch.int64))
