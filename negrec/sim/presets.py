"""Named simulator worlds that differ in what matters for learning from negative feedback.

Each preset is a :class:`SimConfig`; they vary the catalogue size, the number of content
clusters and creators, how often users dislike and skip, how strongly a bad experience puts
them off (aversion), whether the log names creators, and the popularity skew. They exist so
that defaults and methods are judged on several worlds instead of the one they were tuned on
(``benches/generalization.py``). The parameters were set once, before any model was run on
them, to span plausible logs (the dislike and skip rates each preset gives are in
docs/generalization.md); they are not tuned against any result.

| preset          | changed from the default world                                             |
|-----------------|----------------------------------------------------------------------------|
| default         | nothing: 1,500 items, 20 clusters, 300 creators, ~15% dislikes, ~27% skips |
| large_catalog   | 5,000 items in 30 clusters by 1,000 creators, steeper popularity (zipf 1.1), |
|                 | and 5,000 users (a larger catalogue comes with more users)                 |
| no_creators     | the log has no creators (categories only, like MovieLens); 8 clusters       |
| rare_dislikes   | ~5% dislikes (most negatives are skips), weaker aversion                    |
| mild_users      | milder tastes: smaller loved / hated gaps, weaker aversion, flatter         |
|                 | popularity                                                                 |

Two presets were changed once after their first measurement, before any method or default was
chosen on them (docs/generalization.md has both versions' figures): ``large_catalog`` had
8,000 items and 2,500 users (12 training events per item) and ``mild_users`` still weaker
tastes; in both, no model tried, with any setting tried, beat the most-popular ranking. A
world with nothing a sequence model can learn cannot show whether learning from negative
feedback generalises.
"""

from __future__ import annotations

from dataclasses import replace

from negrec.errors import UserError
from negrec.sim.simulator import SimConfig

__all__ = ["PRESETS", "preset"]

_DEFAULT = SimConfig()

PRESETS: dict[str, SimConfig] = {
    "default": _DEFAULT,
    "large_catalog": replace(_DEFAULT, num_items=5000, num_clusters=30, num_creators=1000,
                             popularity_zipf=1.1, num_users=5000),
    "no_creators": replace(_DEFAULT, num_clusters=8, num_creators=120, loved_clusters=2,
                           hated_clusters=1, creators_visible=False),
    "rare_dislikes": replace(_DEFAULT, dislike_bias=-4.5, skip_bias=0.6, dislike_aversion=1.5,
                             skip_aversion=0.8),
    "mild_users": replace(_DEFAULT, loved_boost=1.5, hated_penalty=2.0, hated_creator_penalty=2.0,
                          dislike_aversion=1.5, skip_aversion=0.3, popularity_zipf=0.6),
}


def preset(name: str, **overrides) -> SimConfig:
    """The :class:`SimConfig` of preset ``name`` with ``overrides`` (e.g. ``num_users``)."""
    if name not in PRESETS:
        raise UserError(f"unknown simulator preset {name!r}; expected one of "
                         f"{', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
