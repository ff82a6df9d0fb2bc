"""Reports of responsiveness, offline metrics and closed-loop runs: JSON, a markdown table and
PNG plots (responsiveness per objective with 95% interval bars, the repeated-dislike curve,
closed-loop rates over time)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from negrec.files import atomic_write_text, json_safe, write_json

__all__ = ["PAPER_RESPONSIVENESS", "markdown_table", "plot_report", "responsiveness_summary",
           "write_report"]

# The reference paper's counterfactual responsiveness (dislike vs positive branch), as fractions.
PAPER_RESPONSIVENESS = {
    "positive_only": {"cluster": 0.0, "creator": 0.0},  # "no dislike signals": ~0
    "input_only": {"cluster": -0.227, "creator": -0.228},
    "input_ntr": {"cluster": -0.608, "creator": -0.641},
    "filter_history": {"cluster": None, "creator": None},  # not reported
}


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _pct(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:+.1f}%"


def _est(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    return f"{_pct(d['mean'])} [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]"


def _rate(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    return f"{100 * d['mean']:.2f}% [{100 * _num(d['ci_low']):.2f}, {100 * _num(d['ci_high']):.2f}]"


def markdown_table(report: dict[str, Any]) -> str:
    """The summary table: per objective, offline metrics, responsiveness (ours and the
    paper's), closed-loop rates."""
    rows = []
    objs = report["objectives"]
    has_creator = any("creator" in o.get("responsiveness", {}) for o in objs.values())
    has_loop = any("closed_loop" in o for o in objs.values())
    head = ["objective", "NDCG@10", "dislike exp.@10", "resp. cluster (95% CI)", "paper cluster"]
    if has_creator:
        head += ["resp. creator (95% CI)", "paper creator"]
    if has_loop:
        head += ["dislike rate", "repeated same-creator dislikes"]
    rows.append("| " + " | ".join(head) + " |")
    rows.append("|" + "---|" * len(head))
    for name, o in objs.items():
        test = o.get("offline", {}).get("test", {})
        resp = o.get("responsiveness", {})
        paper = PAPER_RESPONSIVENESS.get(name, {})
        cells = [name, f"{_num(test.get('ndcg@10')):.4f}",
                 f"{_num(test.get('dislike_exposure@10')):.3f}",
                 _est(resp.get("cluster", {}).get("dislike")), _pct(paper.get("cluster"))]
        if has_creator:
            cells += [_est(resp.get("creator", {}).get("dislike")), _pct(paper.get("creator"))]
        if has_loop:
            loop = o.get("closed_loop", {}).get("rates", {})
            d = loop.get("dislike_rate")
            r = loop.get("repeated_dislike_creator_rate")
            cells += [_rate(d), _rate(r)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    objs = report["objectives"]
    names = list(objs)
    kinds = [k for k in ("cluster", "creator") if any(k in o.get("responsiveness", {}) for o in objs.values())]

    # 1. responsiveness per objective with CI bars (and the paper's figures as markers)
    if kinds:
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(kinds)
        for j, kind in enumerate(kinds):
            means, lo, hi = [], [], []
            for n in names:
                e = objs[n].get("responsiveness", {}).get(kind, {}).get("dislike") or {}
                m, l, h = (100 * _num(e.get(q)) for q in ("mean", "ci_low", "ci_high"))
                means.append(m)
                lo.append(m - l if math.isfinite(m - l) else 0)
                hi.append(h - m if math.isfinite(h - m) else 0)
            x = np.arange(len(names)) + (j - (len(kinds) - 1) / 2) * width
            ax.bar(x, means, width, yerr=[lo, hi], capsize=3, label=f"{kind} (ours, 95% CI)")
            paper = [PAPER_RESPONSIVENESS.get(n, {}).get(kind) for n in names]
            px = [xx for xx, p in zip(x, paper) if p is not None]
            py = [100 * p for p in paper if p is not None]
            ax.scatter(px, py, marker="x", color="k", zorder=3, label="paper" if j == 0 else None)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(np.arange(len(names)), names, rotation=15)
        ax.set_ylabel("change in same-group share of top-10 (%)")
        ax.set_title("Counterfactual responsiveness: dislike vs positive branch")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "responsiveness.png"))

    # 2. repeated dislikes on one cluster
    if any(objs[n].get("repeated_dislikes") for n in names):
        fig, ax = plt.subplots(figsize=(6, 4))
        for n in names:
            rep = objs[n].get("repeated_dislikes", {}).get("cluster", {})
            if not rep:
                continue
            ks = sorted(int(k) for k in rep)
            m = [100 * _num(rep[str(k)]["mean"]) for k in ks]
            lo = [np.nan_to_num(100 * (_num(rep[str(k)]["mean"]) - _num(rep[str(k)]["ci_low"]))) for k in ks]
            hi = [np.nan_to_num(100 * (_num(rep[str(k)]["ci_high"]) - _num(rep[str(k)]["mean"]))) for k in ks]
            ax.errorbar(ks, m, yerr=[lo, hi], marker="o", capsize=3, label=n)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("consecutive dislikes on one cluster")
        ax.set_ylabel("change in same-cluster share of top-10 (%)")
        ax.set_title("Responsiveness to repeated negative feedback")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "repeated_dislikes.png"))

    # 3. closed-loop rates over time
    loops = {n: objs[n]["closed_loop"] for n in names if "closed_loop" in objs[n]}
    if loops:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, rate in zip(axes, ("dislike_rate", "positive_rate")):
            for n, loop in loops.items():
                series = np.asarray(loop["per_step"][rate])
                w = max(1, len(series) // 10)
                smooth = np.convolve(series, np.ones(w) / w, mode="valid")
                ax.plot(np.arange(len(smooth)) + w, 100 * smooth, label=n)
            ax.set_xlabel("step")
            ax.set_ylabel(f"{rate.replace('_', ' ')} (%)")
            ax.set_title(f"Closed loop: {rate.replace('_', ' ')}")
            ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "closed_loop.png"))
    return paths


def responsiveness_summary(objectives: dict[str, Any]) -> dict[str, dict]:
    """The shape README promises in report.json: ``{objective: {mean, ci_low, ci_high}}`` of
    the dislike-vs-positive responsiveness on content clusters, from report entries."""
    return {name: {k: o["responsiveness"]["cluster"]["dislike"][k]
                   for k in ("mean", "ci_low", "ci_high")}
            for name, o in objectives.items()}


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Writes report.json (strict JSON: undefined figures are null), report.md and the PNG
    plots into ``out_dir``; returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = json_safe(report)
    write_json(out / "report.json", report)
    table = markdown_table(report)
    md = [f"# {report.get('title', 'negrec report')}", "", report.get("description", ""), "", table, ""]
    if report.get("notes"):
        md += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    plots = plot_report(report, out)
    md += [f"![{p.stem}]({p.name})" for p in plots]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return {"json": out / "report.json", "markdown": out / "report.md",
            **{p.stem: p for p in plots}}
