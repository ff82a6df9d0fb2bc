"""Turning an event log into training and inference batches (the native collator).

A batch row is one user's window of events. With an input filter F (the feedback types the
model may see) the user's *kept* events are those whose feedback is in F, in time order;
events outside F are neither inputs nor targets. A training row holds up to L inputs and, at
each input position j, the *next* kept event as its target, labelled and weighted through the
feedback table (e.g. positive -> (+1, w_positive), dislike -> (-1, w_dislike), neutral -> (0, 0)).
An inference row holds the last L kept events and no targets.

Layout of every [B, L] tensor: left-padded by default (the most recent event last), padding
item id ``pad_item`` (models use ``V``), padding feedback code ``Feedback.PAD`` (0), target
label 0 and weight 0 at padding.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from negrec import _extension
from negrec.data.batch import Batch
from negrec.data.collate_config import CollateConfig, TargetRule
from negrec.data.log import EventLog
from negrec.data.rows import EventRows
from negrec.data.samplers import NegativeSampler
from negrec.data.seeding import draw_seed

__all__ = ["Batch", "CollateConfig", "Collator", "TargetRule"]


def _integer_array(values, name: str) -> np.ndarray:
    """int64 array of ``values``; refuses non-integer dtypes (a float user index such as 1.7
    would otherwise be truncated to user 1 without a word)."""
    arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Collator: {name} must be integers; got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _tensor(array: np.ndarray) -> Tensor:
    """A tensor of ``array`` without a copy. The collator only reads it, so a read-only array
    (an opened event store's, or a split's view of one) is fine: torch's warning that it
    cannot protect such an array from writes does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _bounds(rows: EventRows) -> np.ndarray:
    """[2U] int64 ``starts[0], stops[0], starts[1], stops[1], ...``: the native collator reads
    "user" k's events at ``offsets[k]:offsets[k + 1]``, so "user" 2u is user u's events of a
    view (rows that leave events out, or share them), without copying any event."""
    bounds = np.empty(2 * len(rows.starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = rows.starts, rows.stops
    return bounds


class Collator:
    """Builds batches from an :class:`EventLog` with the C++ collator (GIL released): training
    batches (``with_targets``) and every inference batch of the package (evaluation,
    recommendation, counterfactuals, the closed loop).

    Usable as a ``torch.utils.data.DataLoader`` ``collate_fn`` over a dataset of user indices
    (also with worker processes; it pickles as its log: an event store's arrays by reference).
    ``threads`` > 1 fills rows in parallel on torch's intra-op pool; results never depend on
    it. Randomness (random crops, negatives) comes from ``generator`` or torch's default
    generator, which DataLoader seeds per worker, so runs are reproducible. Without the
    compiled extension it builds the same batches with
    :func:`negrec.data.collate_reference.collate_python` (the package's one warning,
    :func:`negrec._extension.warn_fallback`; no random crops there).

    ``sampler`` draws the shared candidates of the softmax term (``neg_ids``, ``neg_logq``,
    ``target_logq``); ``ntr_sampler`` those of the not-to-recommend term (``ntr_neg_ids``).
    """

    def __init__(self, log: EventLog, config: CollateConfig = CollateConfig(), *,
                 sampler: NegativeSampler | None = None,
                 ntr_sampler: NegativeSampler | None = None, with_targets: bool = True,
                 threads: int = 1, generator: torch.Generator | None = None):
        log.validate()
        self._log = log  # for the pure-PyTorch fallback
        self.num_items = log.num_items
        self.pad_item = log.num_items
        self.config, self.sampler, self.with_targets = config, sampler, with_targets
        self.ntr_sampler = ntr_sampler
        self.threads, self.generator = int(threads), generator
        self._tables = config.tables()
        self._read_log()

    def _read_log(self) -> None:
        """The tensors the native collator reads: the log's arrays, without a copy."""
        rows = self._log.event_rows()
        self._num_users = self._log.num_users
        if rows.offsets is not None:  # the users' events end to end (CSR)
            self._offsets, self._user_stride = _tensor(rows.offsets), 1
        else:  # a view (a split's part): user u's events are starts[u]:stops[u]
            self._offsets, self._user_stride = _tensor(_bounds(rows)), 2
        self._items = _tensor(rows.items)
        self._feedback = _tensor(rows.feedback)

    def __getstate__(self):
        """The collator without the tensors it reads from its log (made again from the log
        when unpickled: a log opened from an event store pickles its arrays by reference,
        :mod:`negrec.data.log_store`, so that a worker process maps the store's pages instead
        of receiving a copy of its events)."""
        state = dict(self.__dict__)
        for name in ("_offsets", "_items", "_feedback"):
            del state[name]
        state["generator"] = None  # generators do not pickle; workers use their seeded default
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._read_log()

    def __call__(self, users: Sequence[int] | Tensor | np.ndarray, ends: Tensor | None = None) -> Batch:
        users_t = torch.as_tensor(_integer_array(users, "users"))
        if users_t.dim() != 1:
            raise ValueError(f"Collator: users must be a 1-D list of user indices; got shape "
                             f"{list(users_t.shape)}")
        if ends is not None:
            ends = torch.as_tensor(_integer_array(ends, "ends"))
        if _extension._C is None:
            batch = self._collate_python(users_t, ends)
        else:
            batch = self._collate_native(users_t, ends)
        if self.sampler is not None and self.with_targets:
            batch.neg_ids, batch.neg_logq = self.sampler.sample(batch, self.generator)
            batch.target_logq = self.sampler.log_prob(
                batch.target_items.clamp(max=self.num_items - 1))
        if self.ntr_sampler is not None and self.with_targets:
            batch.ntr_neg_ids, _ = self.ntr_sampler.sample(batch, self.generator)
        return batch

    def _collate_native(self, users_t: Tensor, ends: Tensor | None) -> Batch:
        allowed, labels, weights = self._tables
        seed = draw_seed(self.generator) if self.config.random_crop and self.with_targets else 0
        rows_t = users_t
        if self._user_stride != 1:  # user u's bounds are entries 2u, 2u + 1 (_bounds)
            out = (users_t < 0) | (users_t >= self._num_users)
            if bool(out.any()):
                b = int(torch.nonzero(out)[0, 0])
                raise ValueError(f"collate: users[{b}] = {int(users_t[b])} is out of range "
                                 f"[0, {self._num_users})")
            rows_t = users_t * self._user_stride
        (in_items, in_fb, tg_items, tg_labels, tg_weights, mask, lengths) = _extension._C.collate(
            self._offsets, self._items, self._feedback, rows_t, ends, self.num_items,
            self.config.max_len, self.config.left_pad, self.pad_item, allowed, labels, weights,
            self.config.random_crop, self.with_targets, seed, self.threads)
        return Batch(users=users_t, input_items=in_items, input_feedback=in_fb, mask=mask,
                     lengths=lengths, target_items=tg_items, target_labels=tg_labels,
                     target_weights=tg_weights)

    def _collate_python(self, users_t: Tensor, ends: Tensor | None) -> Batch:
        from negrec.data.collate_reference import collate_python

        _extension.warn_fallback("negrec.data.Collator",
                                 "negrec.data.collate_reference.collate_python")
        return collate_python(self._log, users_t.tolist(), self.config, self.with_targets,
                              None if ends is None else ends.tolist())
