#!/usr/bin/env python
"""Train the outside example model on MovieLens-100K, or on any log written as a negrec event
store, e.g. negrec's simulator (PyTorch and numpy only, no negrec):

  python examples/outside_model/train.py --data ../shared/data/ml-100k --out examples/outside_model/runs
  negrec data convert --source simulated --out sim.store
  python examples/outside_model/train.py --data sim.store --out runs_sim

writes DIR/model.pt, the weights that ``examples.outside_model.factory:make`` loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: examples/ importable

from outside_model.model import GRUConfig, TrainSettings, read_events, save, train  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True,
                    help="the ml-100k folder (u.data, u.item) or a negrec event store folder")
    ap.add_argument("--out", type=Path, required=True, help="folder for model.pt")
    ap.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--dim", type=int, default=GRUConfig.dim)
    ap.add_argument("--seed", type=int, default=TrainSettings.seed)
    args = ap.parse_args(argv)
    data = read_events(args.data)
    model = train(data, GRUConfig(num_items=data.num_items, dim=args.dim),
                  TrainSettings(epochs=args.epochs, max_steps=args.max_steps, seed=args.seed))
    path = save(model, args.out / "model.pt")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
