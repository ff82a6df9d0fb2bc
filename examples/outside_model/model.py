"""A small sequential recommender written with PyTorch and numpy only: no negrec import.

It stands for "another team's model": a GRU over item embeddings plus a feedback-code
embedding (so a dislike can change what it recommends next), trained by its own loop (full
softmax cross-entropy on the next positive item) on MovieLens-100K read straight from
``u.data`` / ``u.item``. The only thing it shares with negrec is a contract:

* item ids are the *dense* ids negrec uses: the position of the movie id in ``u.item`` (file
  order), in ``[0, num_items)``;
* feedback codes are negrec's (``POSITIVE`` 1, ``NEUTRAL`` 2, ``SKIP`` 3, ``DISLIKE`` 4; 0 pads),
  from ratings as negrec's MovieLens loader maps them (4-5 positive, 3 neutral, 1-2 dislike);
* :class:`OutsideRecommender` answers ``recommend(items, feedback, k)`` (the structural
  ``negrec.eval.recommender.Recommender`` protocol: no import needed).

Training holds out each user's last two events (time order, ties in file order) when the user
has at least three, as negrec's ``leave_one_out`` split does, so negrec's test metrics are not
measured on events the model was trained on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PAD, POSITIVE, NEUTRAL, SKIP, DISLIKE = 0, 1, 2, 3, 4
NUM_CODES = 5
#: Ratings at or above this are positive, at or below DISLIKE_MAX dislikes, between neutral.
POSITIVE_MIN, DISLIKE_MAX = 4, 2
#: Events held out at the end of each user's history (the validation and test events).
HELD_OUT_EVENTS = 2


@dataclass
class Ml100k:
    """MovieLens-100K as this model reads it. ``movie_ids`` [V] int64: raw movie id of each
    dense item id (``u.item`` order); per user (sorted by raw user id) ``histories``: a list of
    (dense item ids int64 [L], feedback codes int8 [L]) in time order, ties in file order."""

    movie_ids: np.ndarray
    user_ids: np.ndarray
    histories: list[tuple[np.ndarray, np.ndarray]]

    @property
    def num_items(self) -> int:
        return len(self.movie_ids)


def ratings_to_codes(ratings: np.ndarray) -> np.ndarray:
    """int8 feedback codes [N] of MovieLens ratings [N] (4-5 positive, 3 neutral, 1-2 dislike)."""
    codes = np.full(len(ratings), NEUTRAL, dtype=np.int8)
    codes[ratings >= POSITIVE_MIN] = POSITIVE
    codes[ratings <= DISLIKE_MAX] = DISLIKE
    return codes


def read_ml100k(folder: str | Path) -> Ml100k:
    """``u.item`` (movie ids, in file order) and ``u.data`` (user, movie, rating, timestamp, tab
    separated) of an ml-100k folder; a ValueError naming the file for a movie missing from
    ``u.item``."""
    folder = Path(folder)
    for name in ("u.data", "u.item"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: expected the ml-100k file {name}; not found")
    with open(folder / "u.item", encoding="latin-1") as f:
        movie_ids = np.array([int(line.split("|", 1)[0]) for line in f if line.strip()],
                             dtype=np.int64)
    data = np.loadtxt(folder / "u.data", dtype=np.int64, ndmin=2)
    users, movies, ratings, times = data.T
    order = np.argsort(movie_ids, kind="stable")
    pos = np.searchsorted(movie_ids, movies, sorter=order)
    pos = order[np.minimum(pos, len(order) - 1)]
    if not (movie_ids[pos] == movies).all():
        bad = movies[movie_ids[pos] != movies][0]
        raise ValueError(f"{folder / 'u.data'}: movie {bad} is not in u.item")
    codes = ratings_to_codes(ratings)
    perm = np.lexsort((times, users))  # by user, then time; stable: ties keep file order
    user_ids, starts = np.unique(users[perm], return_index=True)
    bounds = list(starts) + [len(perm)]
    histories = [(pos[perm[a:b]].astype(np.int64), codes[perm[a:b]])
                 for a, b in zip(bounds[:-1], bounds[1:])]
    return Ml100k(movie_ids=movie_ids, user_ids=user_ids, histories=histories)


def read_event_store(folder: str | Path) -> Ml100k:
    """A negrec event store (``negrec data convert ... --out DIR``: uncompressed ``.npy`` arrays
    in CSR layout, users' events in time order) read with numpy alone, e.g. a simulated log, so
    that the same model can be trained on negrec's simulator. ``movie_ids`` are the store's raw
    item ids (``item_raw_ids.npy``), whose positions are the dense ids negrec passes in."""
    folder = Path(folder)
    arrays = {}
    for name in ("offsets", "items", "feedback", "user_ids", "item_raw_ids"):
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: expected the event-store array {name}.npy; not found")
        arrays[name] = np.load(path, allow_pickle=False)
    offsets = arrays["offsets"]
    histories = [(arrays["items"][a:b].astype(np.int64), arrays["feedback"][a:b].astype(np.int8))
                 for a, b in zip(offsets[:-1], offsets[1:])]
    return Ml100k(movie_ids=arrays["item_raw_ids"].astype(np.int64),
                  user_ids=arrays["user_ids"].astype(np.int64), histories=histories)


def read_events(folder: str | Path) -> Ml100k:
    """An ml-100k folder (``u.data``) or a negrec event store (``manifest.json``)."""
    return read_event_store(folder) if (Path(folder) / "manifest.json").is_file() else read_ml100k(folder)


def training_histories(data: Ml100k) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each user's history without its last :data:`HELD_OUT_EVENTS` events (users with fewer
    than three events keep all of theirs)."""
    return [(i[:-HELD_OUT_EVENTS], c[:-HELD_OUT_EVENTS]) if len(i) >= 3 else (i, c)
            for i, c in data.histories]


@dataclass
class GRUConfig:
    num_items: int
    dim: int = 64
    max_len: int = 50


class GRUNextItem(nn.Module):
    """Next-item scores from a history: (item embedding + feedback-code embedding) -> GRU ->
    the last state · every item's output embedding."""

    def __init__(self, config: GRUConfig):
        super().__init__()
        self.config = config
        self.items = nn.Embedding(config.num_items + 1, config.dim, padding_idx=config.num_items)
        self.codes = nn.Embedding(NUM_CODES, config.dim, padding_idx=PAD)
        self.gru = nn.GRU(config.dim, config.dim, batch_first=True)
        self.out = nn.Linear(config.dim, config.num_items)

    def states(self, items: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """[B, L, D] float32 states of left-padded item ids [B, L] int64 (padding:
        ``num_items``) and codes [B, L] int64 (padding: 0)."""
        out, _ = self.gru(self.items(items) + self.codes(codes))
        return out

    def forward(self, items: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """[B, V] float32 scores of the next item after each left-padded history."""
        return self.out(self.states(items, codes)[:, -1])


def left_pad(items: Sequence[np.ndarray], codes: Sequence[np.ndarray], max_len: int,
             pad_item: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``max_len`` events of each history, left-padded: items [B, max_len] int64
    (padding ``pad_item``), codes [B, max_len] int64 (padding 0)."""
    out_items = np.full((len(items), max_len), pad_item, dtype=np.int64)
    out_codes = np.zeros((len(items), max_len), dtype=np.int64)
    for b, (i, c) in enumerate(zip(items, codes)):
        n = min(len(i), max_len)
        if n:
            out_items[b, max_len - n:] = i[len(i) - n:]
            out_codes[b, max_len - n:] = c[len(c) - n:]
    return torch.from_numpy(out_items), torch.from_numpy(out_codes)


def windows(histories: list[tuple[np.ndarray, np.ndarray]], length: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every history cut into windows of ``length`` events from its end (the first one
    left-padded): items [W, length] int64 (padding -1), codes [W, length] int64 (padding 0)."""
    items, codes = [], []
    for i, c in histories:
        for stop in range(len(i), 1, -(length - 1)):
            start = max(stop - length, 0)
            row_i = np.full(length, -1, dtype=np.int64)
            row_c = np.zeros(length, dtype=np.int64)
            row_i[length - (stop - start):] = i[start:stop]
            row_c[length - (stop - start):] = c[start:stop]
            items.append(row_i)
            codes.append(row_c)
    return np.stack(items), np.stack(codes)


@dataclass
class TrainSettings:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    max_steps: int | None = None  # stop after this many steps (tests), whatever the epochs
    seed: int = 0


def train(data: Ml100k, config: GRUConfig, settings: TrainSettings, *, log=print
          ) -> GRUNextItem:
    """A :class:`GRUNextItem` trained on :func:`training_histories` of ``data``: at every
    position whose next event is positive, cross-entropy of that item over all items."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = GRUNextItem(config)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    w_items, w_codes = windows(training_histories(data), config.max_len + 1)
    pad = config.num_items
    step, t0 = 0, time.perf_counter()
    for epoch in range(settings.epochs):
        total, count = 0.0, 0
        for rows in np.array_split(rng.permutation(len(w_items)),
                                   max(1, len(w_items) // settings.batch_size)):
            inp_i, inp_c = w_items[rows, :-1], w_codes[rows, :-1]
            tgt_i, tgt_c = w_items[rows, 1:], w_codes[rows, 1:]
            inp_i = torch.from_numpy(np.where(inp_i < 0, pad, inp_i))
            target = torch.from_numpy(np.where(tgt_c == POSITIVE, tgt_i, -100))
            logits = model.out(model.states(inp_i, torch.from_numpy(inp_c)))
            loss = F.cross_entropy(logits.reshape(-1, pad), target.reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count, step = total + loss.item(), count + 1, step + 1
            if settings.max_steps is not None and step >= settings.max_steps:
                break
        log(f"epoch {epoch + 1}: loss {total / max(count, 1):.3f} ({step} steps, "
            f"{time.perf_counter() - t0:.0f}s)")
        if settings.max_steps is not None and step >= settings.max_steps:
            break
    return model.eval()


def save(model: GRUNextItem, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "state": model.state_dict()}, path)
    return path


def load(path: str | Path) -> GRUNextItem:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = GRUNextItem(GRUConfig(**blob["config"]))
    model.load_state_dict(blob["state"])
    return model.eval()


class OutsideRecommender:
    """The model behind the ``recommend(items, feedback, k)`` contract: for n histories
    (``items[b]`` dense item ids int64 [L_b], ``feedback[b]`` codes int8 [L_b], oldest first)
    the k best items [n, k] int64, best first, never an item of the history."""

    def __init__(self, model: GRUNextItem, name: str = "outside_gru"):
        self.model, self.name = model, name

    @torch.no_grad()
    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        cfg = self.model.config
        if len(items) == 0:
            return np.zeros((0, k), dtype=np.int64)
        inp_i, inp_c = left_pad(items, feedback, cfg.max_len, cfg.num_items)
        scores = self.model(inp_i, inp_c)
        rows = np.repeat(np.arange(len(items)), [len(i) for i in items])
        seen = np.concatenate([np.asarray(i, np.int64) for i in items]) if len(items) else \
            np.zeros(0, np.int64)
        scores[torch.from_numpy(rows), torch.from_numpy(seen)] = -torch.inf
        return scores.topk(k, dim=1).indices.numpy()
