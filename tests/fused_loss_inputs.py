"""Random inputs for the fused-loss tests (shared by the CPU and CUDA test files)."""

from __future__ import annotations

import torch


def make_inputs(
    n: int,
    k: int,
    d: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    id_range: int | None = None,
    logq: bool = True,
    weight: bool = True,
    scale: float = 0.5,
    requires_grad: bool = True,
    label_choices: tuple[int, ...] = (-1, 0, 1),
) -> dict:
    """Query/target/negative embeddings with ids that collide on purpose.

    ``id_range`` small relative to N and K produces accidental hits and duplicate negatives.
    Returns the keyword arguments of ``fused_loss`` plus ``query``, ``target_emb``, ``neg_emb``.
    """
    g = torch.Generator().manual_seed(seed)
    id_range = id_range if id_range is not None else max(2, (n + k) // 2)

    def emb(rows: int) -> torch.Tensor:
        x = (torch.randn(rows, d, generator=g, dtype=torch.float64) * scale).to(dtype).to(device)
        return x.requires_grad_(requires_grad)

    choices = torch.tensor(label_choices, dtype=torch.int64)
    out = {
        "query": emb(n),
        "target_emb": emb(n),
        "neg_emb": emb(k),
        "target_ids": torch.randint(0, id_range, (n,), generator=g).to(device),
        "neg_ids": torch.randint(0, id_range, (k,), generator=g).to(device),
        "label": choices[torch.randint(0, len(label_choices), (n,), generator=g)].to(device),
    }
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    if weight:
        out["weight"] = (torch.rand(n, generator=g, dtype=torch.float64) * 2).to(acc).to(device)
    if logq:
        out["target_logq"] = (-torch.rand(n, generator=g, dtype=torch.float64) * 5).to(acc).to(device)
        out["neg_logq"] = (-torch.rand(k, generator=g, dtype=torch.float64) * 5).to(acc).to(device)
    return out


def split(inputs: dict) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], dict]:
    """(query, target_emb, neg_emb), keyword arguments."""
    kw = {key: v for key, v in inputs.items() if key not in ("query", "target_emb", "neg_emb")}
    return (inputs["query"], inputs["target_emb"], inputs["neg_emb"]), kw


def op_args(inputs: dict, temperature: float = 1.0, reduction: str = "mean") -> tuple:
    """Positional arguments of torch.ops.negrec.fused_loss."""
    return (inputs["query"], inputs["target_emb"], inputs["neg_emb"], inputs["target_ids"],
            inputs["neg_ids"], inputs["label"], inputs.get("weight"), inputs.get("target_logq"),
            inputs.get("neg_logq"), float(temperature), reduction)
