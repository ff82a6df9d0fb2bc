"""The factory negrec's ``--recommender`` calls: ``examples.outside_model.factory:make`` from the
repository root (``outside_model.factory:make`` from ``examples/``).

Loads the weights from ``$OUTSIDE_MODEL_WEIGHTS``, else from ``runs/model.pt`` beside this
file (where the README's train command writes them).
"""

from __future__ import annotations

import os
from pathlib import Path

from .model import OutsideRecommender, load

WEIGHTS_ENV = "OUTSIDE_MODEL_WEIGHTS"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "runs" / "model.pt"


def weights_path() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)


def make(item_meta) -> OutsideRecommender:
    """The trained model as a recommender over ``item_meta``'s catalogue (anything with
    ``num_items``, e.g. ``negrec.data.ItemMeta``); a clear error when the weights are missing
    or were trained on another catalogue."""
    path = weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"outside model weights {path}: not found; train them first "
                                f"(examples/outside_model/train.py) or set ${WEIGHTS_ENV}")
    model = load(path)
    if model.config.num_items != item_meta.num_items:
        raise ValueError(f"outside model {path}: trained on {model.config.num_items} items but "
                         f"the data has {item_meta.num_items}; train it on the same data")
    return OutsideRecommender(model)
