"""What every measurement in negrec takes: a :class:`Recommender`, any object that ranks items
for histories, whoever wrote it.

A recommender answers ``recommend(items, feedback, k)``: for n histories (``items[b]`` the dense
item ids of history b, oldest first, int64 [L_b]; ``feedback[b]`` their
:class:`~negrec.data.Feedback` codes, int8 [L_b]) it returns the k items it would show next,
best first, as an int64 array [n, k] of dense item ids in ``[0, num_items)``, no item twice in a
row. It decides what it excludes (negrec's own adapters exclude the history's items, as
evaluation always did). An optional ``name`` attribute names it in reports.

Adapters: :func:`from_model` (a :class:`~negrec.models.SequentialRecommender` and what its
objective lets it see), :func:`from_checkpoint` (a checkpoint written by ``negrec train``) and
:func:`from_function` (a plain function with the signature of ``recommend``).
:func:`recommend_batched` is how the measuring code calls a recommender: in batches, with every
answer checked (shape, dtype, range, repeats), so that a bad answer is reported as what it is
instead of showing up as a strange figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from negrec.errors import UserError
from negrec.eval.recommend import recommend
from negrec.models.base import SequentialRecommender
from negrec.models.inputs import ModelInputs

__all__ = ["DEFAULT_BATCH", "FunctionRecommender", "History", "ModelRecommender", "Recommender",
           "check_recommendations", "from_checkpoint", "from_function", "from_model",
           "recommend_batched", "recommender_name"]

#: Histories per call of ``recommend`` (also the inference batch of negrec's own models, so a
#: checkpoint measured through its adapter sees exactly the batches it saw before).
DEFAULT_BATCH = 1024

#: One history as the measuring code keeps it: (dense item ids, feedback codes), oldest first.
History = tuple[Sequence[int], Sequence[int]]


@runtime_checkable
class Recommender(Protocol):
    """Anything with ``recommend(items, feedback, k) -> np.ndarray`` [n, k] int64 (see the module
    docstring); ``name`` (optional attribute, str) names it in reports."""

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray: ...


def recommender_name(recommender, default: str = "recommender") -> str:
    """The recommender's ``name`` attribute, else ``default``."""
    name = getattr(recommender, "name", None)
    return str(name) if name else default


def check_recommendations(got, n: int, k: int, num_items: int, who: str) -> np.ndarray:
    """``got`` as an int64 [n, k] array, or a UserError naming ``who`` and what it returned:
    another shape, a non-integer dtype, ids outside ``[0, num_items)``, a repeated item in a
    row (it would count twice in every share of the slate)."""
    try:
        arr = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got)
    except Exception as exc:  # an object numpy cannot read: say what it was
        raise UserError(f"{who}: recommend(..., k={k}) returned {type(got).__name__}, not an "
                        f"array of item ids ({exc})") from None
    if arr.shape != (n, k):
        raise UserError(f"{who}: recommend(..., k={k}) for {n} histories returned shape "
                        f"{arr.shape}; expected ({n}, {k})")
    if not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{who}: recommend(..., k={k}) returned dtype {arr.dtype}; expected "
                        "integer item ids (int64)")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= num_items)
    if bad.any():
        raise UserError(f"{who}: recommend(..., k={k}) returned {int(bad.sum())} item ids outside "
                        f"[0, {num_items}) (e.g. {int(arr[bad][0])}); ids must be the data's "
                        "dense item ids")
    if k > 1:
        srt = np.sort(arr, axis=1)
        rows = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(1))
        if len(rows):
            r = int(rows[0])
            dup = srt[r, 1:][srt[r, 1:] == srt[r, :-1]][0]
            raise UserError(f"{who}: recommend(..., k={k}) returned {len(rows)} rows with a "
                            f"repeated item (e.g. row {r}: item {int(dup)} twice); a slate "
                            "holds each item once")
    return arr


def recommend_batched(recommender: Recommender, histories: Sequence[History], k: int,
                      num_items: int, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """[H, k] int64: ``recommender``'s top-``k`` for each history, asked in batches of
    ``batch_size`` histories (items as int64 arrays, codes as int8 arrays), each answer checked
    by :func:`check_recommendations`."""
    who = f"recommender {recommender_name(recommender)!r}"
    out = np.empty((len(histories), k), dtype=np.int64)
    for b0 in range(0, len(histories), batch_size):
        part = histories[b0:b0 + batch_size]
        items = [np.asarray(h[0], dtype=np.int64) for h in part]
        codes = [np.asarray(h[1], dtype=np.int8) for h in part]
        out[b0:b0 + len(part)] = check_recommendations(recommender.recommend(items, codes, k),
                                                       len(part), k, num_items, who)
    return out


@dataclass
class ModelRecommender:
    """A negrec model as a :class:`Recommender`: histories seen as ``inputs`` lets the model see
    them (the last ``max_len`` visible events), history items excluded unless
    ``exclude_history`` is false, scored in batches by :func:`negrec.eval.recommend.recommend`.
    Its scores give more than a top-K list, and the measuring code uses them: the full rank of
    a held-out item (:func:`negrec.eval.metrics.evaluate`) and a ranking of a subset of the
    catalogue (:meth:`top`)."""

    model: SequentialRecommender
    inputs: ModelInputs
    name: str = "model"
    exclude_history: bool = True
    batch_size: int = DEFAULT_BATCH

    @property
    def num_items(self) -> int:
        return self.model.num_items

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        return self.top(list(zip(items, feedback)), k)[0]

    def top(self, histories: Sequence[History], k: int, candidates: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [H, k] int64, scores [H, k] float32) among all items or ``candidates``; an
        excluded item can only appear with score -inf (when fewer than k are left)."""
        return recommend(self.model, self.inputs, histories, k,
                         exclude_history=self.exclude_history, batch_size=self.batch_size,
                         candidates=candidates)


def from_model(model: SequentialRecommender, inputs: ModelInputs, *, name: str = "model",
               exclude_history: bool = True, batch_size: int = DEFAULT_BATCH) -> ModelRecommender:
    """A :class:`ModelRecommender` of ``model`` seeing histories as ``inputs`` says (an
    objective's ``.inputs``)."""
    return ModelRecommender(model=model, inputs=inputs, name=name,
                            exclude_history=exclude_history, batch_size=batch_size)


def from_checkpoint(checkpoint, *, name: str | None = None, exclude_history: bool = True,
                    device: str = "cpu") -> ModelRecommender:
    """The model of a checkpoint (a path, or a loaded
    :class:`~negrec.train.checkpoint.LoadedCheckpoint`), seeing histories through its own
    objective; named after the objective unless ``name`` is given."""
    from negrec.train.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint, map_location=device) if isinstance(checkpoint, (str, Path)) \
        else checkpoint
    return from_model(ck.model, ck.objective.inputs, name=name or ck.objective.name,
                      exclude_history=exclude_history)


@dataclass
class FunctionRecommender:
    """A function ``fn(items, feedback, k) -> [n, k]`` as a :class:`Recommender`."""

    fn: Callable[[Sequence[np.ndarray], Sequence[np.ndarray], int], np.ndarray]
    name: str

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        return self.fn(items, feedback, k)


def from_function(fn: Callable[[Sequence[np.ndarray], Sequence[np.ndarray], int], np.ndarray],
                  *, name: str | None = None) -> FunctionRecommender:
    """A plain function with the signature of ``recommend`` as a recommender (named ``name``,
    else after the function)."""
    if not callable(fn):
        raise UserError(f"from_function: expected a function (items, feedback, k) -> [n, k] "
                        f"item ids; got {type(fn).__name__}")
    return FunctionRecommender(fn, name or getattr(fn, "__qualname__", None) or repr(fn))
