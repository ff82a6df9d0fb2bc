"""Checks for other teams' test suites: keep "our recommender backs off after a dislike" in CI.

```python
from negrec.testing import check_responsiveness

def test_we_back_off_after_a_dislike():
    check_responsiveness(MyRecommender(), max_ratio=-0.3)   # the demo's simulator
```

:func:`check_responsiveness` measures the recommender's counterfactual responsiveness (dislike
vs positive branch, share of the next top-k in the branched item's cluster: -0.3 is 30% fewer
similar items after a dislike) and raises an ``AssertionError`` whose message shows the figure,
its 95% interval and the number of histories when the figure is above ``max_ratio``.
"""

from __future__ import annotations

import dataclasses

from negrec.data.log import EventLog
from negrec.eval.recommender import Recommender, recommender_name
from negrec.experiments.measure import MeasureSizes, measure_recommender
from negrec.experiments.recommenders import World, world_of_spec
from negrec.sim import Simulator
from negrec.train.data_spec import DataSpec

__all__ = ["CHECK_SIZES", "check_responsiveness"]

#: How much a check measures by default: small enough for a test suite (seconds for a fast
#: recommender), no closed loop.
CHECK_SIZES = MeasureSizes(histories=200, steps=20, actions=("dislike",), loop_users=0,
                           bootstrap=500)


def check_responsiveness(recommender: Recommender, world: Simulator | EventLog | DataSpec | None = None,
                         max_ratio: float = -0.3, *, kind: str = "cluster",
                         use: str = "mean", sizes: MeasureSizes = CHECK_SIZES) -> dict:
    """Fails (``AssertionError``) unless ``recommender``'s responsiveness to a dislike (``kind``:
    "cluster" or "creator") is at most ``max_ratio``. ``world``: a :class:`Simulator`, an
    :class:`EventLog` (its catalogue and training histories), a :class:`DataSpec`, or None
    (the demo's simulator). ``use``: "mean" compares the estimate, "ci_high" its interval's
    upper end (stricter: the whole interval must be below). Returns the estimate
    (``{mean, ci_low, ci_high, n}``)."""
    if use not in ("mean", "ci_high"):
        raise ValueError(f"check_responsiveness: use must be 'mean' or 'ci_high'; got {use!r}")
    if isinstance(world, Simulator):
        place = World(world, world.item_meta(), None, "", True)
    elif isinstance(world, EventLog):
        place = World(world, world.item_meta, world, "", False)
    else:
        place = world_of_spec(world)
    sizes = dataclasses.replace(sizes, loop_users=0)
    m = measure_recommender(recommender, place.item_meta, sizes, place.world,
                            split=place.split or None)
    est = m.entry["responsiveness"].get(kind, {}).get("dislike")
    if est is None:
        raise ValueError(f"check_responsiveness: no {kind!r} similarity in this world (it has "
                         f"{', '.join(m.entry['responsiveness'])})")
    name = recommender_name(recommender)
    figure = (f"{100 * est['mean']:+.1f}% [{100 * est['ci_low']:+.1f}%, {100 * est['ci_high']:+.1f}%]"
              if est["mean"] == est["mean"] else "undefined (no similar items after a like)")
    if not est[use] <= max_ratio:  # also fails on NaN
        raise AssertionError(
            f"{name}: responsiveness to a dislike ({kind}) is {figure} over {est['n']} histories; "
            f"required {'its mean' if use == 'mean' else 'its interval'} at most "
            f"{100 * max_ratio:+.1f}% (a recommender that backs off after a dislike shows fewer "
            "similar items in its next slate)")
    return est
