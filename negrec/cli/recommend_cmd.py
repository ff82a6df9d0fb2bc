"""``negrec recommend``: top-K items for a history given on the command line."""

from __future__ import annotations

import argparse

DESCRIPTION = """Recommend the next items for a history of (raw item id, feedback) events, through
the checkpoint's objective. Item ids are the data source's own (e.g. MovieLens movie ids).

examples:
  negrec recommend --checkpoint runs/ntr/best.pt --history "50:positive,181:positive,172:dislike"
  negrec recommend --checkpoint runs/sim/best.pt --history "3:positive,17:dislike" --k 5 \\
      --filter-disliked --filter-disliked-creators --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--history", required=True,
                   help="comma-separated ITEM:FEEDBACK events, oldest first; FEEDBACK is positive, "
                        "neutral, skip or dislike")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--keep-history-items", action="store_true",
                   help="allow recommending items already in the history")
    p.add_argument("--filter-disliked", action="store_true", help="never recommend disliked items")
    p.add_argument("--filter-disliked-creators", action="store_true",
                   help="never recommend items by the creators of disliked items")
    p.add_argument("--json", action="store_true", help="print JSON")


def parse_history(text: str, raw_to_dense: dict, int_ids: bool) -> tuple[list[int], list[int]]:
    from negrec.cli.options import CLIError
    from negrec.data.feedback import Feedback, parse_feedback

    items, fbs = [], []
    for n, token in enumerate(t for t in text.split(",") if t.strip()):
        if ":" not in token:
            raise CLIError(f"--history event {n + 1} ({token.strip()!r}) must look like ITEM:FEEDBACK")
        raw, fb = token.strip().rsplit(":", 1)
        key: object = raw.strip()
        if int_ids:
            try:
                key = int(raw)
            except ValueError:
                raise CLIError(f"--history event {n + 1}: item id {raw!r} is not an integer (this "
                               "checkpoint's items have integer ids)") from None
        if key not in raw_to_dense:
            raise CLIError(f"--history event {n + 1}: item {raw.strip()!r} is not in the "
                           "checkpoint's catalogue")
        try:
            code = parse_feedback(fb)
        except ValueError as exc:
            raise CLIError(f"--history event {n + 1}: {exc}") from None
        if code is Feedback.PAD:
            raise CLIError(f"--history event {n + 1}: 'pad' is not an event")
        items.append(raw_to_dense[key])
        fbs.append(int(code))
    if not items:
        raise CLIError("--history is empty")
    return items, fbs


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from negrec.cli.options import CLIError
    from negrec.eval.recommend import recommend
    from negrec.files import strict_json
    from negrec.train.checkpoint import load_checkpoint

    ck = load_checkpoint(args.checkpoint)
    meta = ck.item_meta
    if not 0 < args.k <= meta.num_items:
        raise CLIError(f"--k must be in [1, {meta.num_items}]; got {args.k}")
    if args.filter_disliked_creators and meta.creator is None:
        raise CLIError("--filter-disliked-creators: this checkpoint's data has no creators")
    int_ids = np.asarray(meta.raw_ids).dtype.kind in "iu"
    items, fbs = parse_history(args.history, ck.raw_to_dense(), int_ids)
    ids, scores = recommend(ck.model, ck.objective.inputs, [(items, fbs)], args.k,
                            exclude_history=not args.keep_history_items,
                            filter_disliked=args.filter_disliked,
                            filter_disliked_creators=args.filter_disliked_creators, item_meta=meta)
    rows = []
    for rank, (i, s) in enumerate(zip(ids[0], scores[0]), 1):
        raw = meta.raw_ids[i]
        rows.append({
            "rank": rank, "item": raw.item() if hasattr(raw, "item") else raw, "score": float(s),
            "title": meta.titles[i] if meta.titles else None,
            "cluster": meta.cluster_names[meta.cluster[i]] if meta.cluster[i] >= 0 else None,
            "creator": (meta.creator_names[meta.creator[i]]
                        if meta.creator is not None and meta.creator[i] >= 0 else None),
        })
    if args.json:
        print(strict_json({"objective": ck.objective.name, "recommendations": rows}, indent=2))
    else:
        print(f"objective {ck.objective.name}; top {args.k} for a history of {len(items)} events")
        for r in rows:
            extra = ", ".join(str(x) for x in (r["title"], r["cluster"], r["creator"]) if x)
            print(f"{r['rank']:3d}. {r['item']}  score {r['score']:.3f}  {extra}")
    return 0

