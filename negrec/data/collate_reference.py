"""Two non-native implementations of the collator, with the native one's exact output:

- :func:`collate_python`: plain Python loops, the executable specification (and the fallback
  when the extension is absent);
- :class:`VectorizedCollator`: whole-batch torch gathers, the strongest pure-PyTorch baseline
  (used by ``benches/bench_collate.py``).

Neither draws random crops: they build the most recent window (``random_crop=False``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from negrec.data.batch import Batch
from negrec.data.collate_config import CollateConfig
from negrec.data.feedback import Feedback
from negrec.data.log import EventLog

__all__ = ["collate_python", "VectorizedCollator", "window"]


def window(n: int, max_len: int, with_targets: bool) -> tuple[int, int]:
    """(first, m): the most recent window of a row with ``n`` kept events holds the ``m`` events
    from index ``first``; with targets each input needs a next event, so the last event is
    only a target (m = min(max_len, n - 1), none when n < 2)."""
    if with_targets:
        m = min(max_len, n - 1) if n >= 2 else 0
        return n - 1 - m, m
    m = min(max_len, n)
    return n - m, m


def collate_python(log: EventLog, users: Sequence[int], config: CollateConfig,
                   with_targets: bool = True, ends: Sequence[int] | None = None) -> Batch:
    if config.random_crop:
        raise ValueError("collate_python builds the most recent window only (random_crop=False)")
    allowed, labels, weights = config.tables()
    L, pad = config.max_len, log.num_items
    B = len(users)
    in_items = [[pad] * L for _ in range(B)]
    in_fb = [[int(Feedback.PAD)] * L for _ in range(B)]
    mask = [[False] * L for _ in range(B)]
    tg_items = [[pad] * L for _ in range(B)]
    tg_labels = [[0] * L for _ in range(B)]
    tg_weights = [[0.0] * L for _ in range(B)]
    lengths = [0] * B
    for b, u in enumerate(users):
        if not 0 <= u < log.num_users:
            raise ValueError(f"collate: users[{b}] = {u} is out of range [0, {log.num_users})")
        items, feedback = log.user_events(int(u))
        kept = [k for k in range(len(items)) if allowed[int(feedback[k])]]
        if ends is not None and ends[b] >= 0:
            kept = kept[: ends[b]]
        first, m = window(len(kept), L, with_targets)
        p0 = L - m if config.left_pad else 0
        for j in range(m):
            k = kept[first + j]
            p = p0 + j
            in_items[b][p] = int(items[k])
            in_fb[b][p] = int(feedback[k])
            mask[b][p] = True
            if with_targets:
                t = kept[first + j + 1]
                f = int(feedback[t])
                tg_items[b][p] = int(items[t])
                tg_labels[b][p] = labels[f]
                tg_weights[b][p] = weights[f] if labels[f] != 0 else 0.0
        lengths[b] = m
    out = Batch(users=torch.tensor(list(users), dtype=torch.int64),
                input_items=torch.tensor(in_items, dtype=torch.int64).reshape(B, L),
                input_feedback=torch.tensor(in_fb, dtype=torch.int8).reshape(B, L),
                mask=torch.tensor(mask, dtype=torch.bool).reshape(B, L),
                lengths=torch.tensor(lengths, dtype=torch.int64))
    if with_targets:
        out.target_items = torch.tensor(tg_items, dtype=torch.int64).reshape(B, L)
        out.target_labels = torch.tensor(tg_labels, dtype=torch.int8).reshape(B, L)
        out.target_weights = torch.tensor(tg_weights, dtype=torch.float32).reshape(B, L)
    return out


class VectorizedCollator:
    """The collator as whole-batch torch gathers: per log (once) the global list of kept
    events and each user's count of them; per batch a [B, L] index grid into that list."""

    def __init__(self, log: EventLog, config: CollateConfig, with_targets: bool = True):
        if config.random_crop:
            raise ValueError("VectorizedCollator builds the most recent window only")
        allowed, labels, weights = config.tables()
        self.config, self.with_targets, self.pad = config, with_targets, log.num_items
        items = torch.from_numpy(log.items)
        feedback = torch.from_numpy(log.feedback).long()
        kept = torch.tensor(allowed)[feedback]
        self.kept_idx = kept.nonzero().flatten()
        # prefix[i] = kept events among the first i events of the log
        prefix = torch.zeros(log.num_events + 1, dtype=torch.int64)
        prefix[1:] = torch.cumsum(kept.long(), 0)
        at_offsets = prefix[torch.from_numpy(log.offsets)]
        self.kept_start = at_offsets[:-1]
        self.kept_count = at_offsets[1:] - at_offsets[:-1]
        # one sentinel at the end so the (masked) gathers of padded positions stay in range
        # even when nothing is kept
        self.items_of_kept = torch.cat([items[self.kept_idx], torch.tensor([self.pad])])
        self.fb_of_kept = torch.cat([feedback[self.kept_idx], torch.tensor([0])])
        self.labels = torch.tensor(labels, dtype=torch.int8)
        self.weights = torch.tensor(weights, dtype=torch.float32)

    def __call__(self, users: Sequence[int]) -> Batch:
        L = self.config.max_len
        u = torch.as_tensor(np.asarray(users, dtype=np.int64))
        n = self.kept_count[u]
        if self.with_targets:
            m = torch.clamp(n - 1, min=0, max=L)
            first = n - 1 - m
        else:
            m = torch.clamp(n, max=L)
            first = n - m
        pos = torch.arange(L).expand(len(u), L)
        p0 = (L - m)[:, None] if self.config.left_pad else torch.zeros_like(m)[:, None]
        j = pos - p0
        real = (j >= 0) & (j < m[:, None])
        r = self.kept_start[u][:, None] + first[:, None] + j
        r = torch.where(real, r, torch.zeros_like(r))
        in_items = torch.where(real, self.items_of_kept[r], self.pad)
        in_fb = torch.where(real, self.fb_of_kept[r], 0).to(torch.int8)
        batch = Batch(users=u, input_items=in_items, input_feedback=in_fb, mask=real, lengths=m)
        if self.with_targets:
            rt = torch.where(real, r + 1, torch.zeros_like(r))
            f = self.fb_of_kept[rt]
            lab = torch.where(real, self.labels[f], 0).to(torch.int8)
            batch.target_items = torch.where(real, self.items_of_kept[rt], self.pad)
            batch.target_labels = lab
            batch.target_weights = torch.where(lab != 0, self.weights[f], 0.0)
        return batch
