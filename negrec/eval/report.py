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


def _value(d: dict | float | None, digits: int) -> str:
    """A figure pooled over seeds (``{mean, ci_low, ci_high}``) or a single number."""
    if isinstance(d, (int, float, np.floating)):
        d = {"mean": float(d)}
    if not d or d.get("mean") is None or math.isnan(d["mean"]):
        return "n/a"
    lo, hi = d.get("ci_low"), d.get("ci_high")
    ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{d['mean']:.{digits}f}{ci}"


def _points(d: dict | None) -> str:
    """A difference of fractions in percentage points, with its interval."""
    if not d or d.get("mean") is None:
        return "n/a"
    lo, hi = d.get("ci_low"), d.get("ci_high")
    ci = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * d['mean']:+.1f} pp{ci}"


def markdown_table(report: dict[str, Any]) -> str:
    """The summary table: per model (trained with ``seeds`` seeds), offline metrics on the
    test events, responsiveness per similarity kind, the same minus the placebo control's,
    the paper's figure (simulated data only: the paper measured simulated users too), and the
    closed-loop dislike rate. Columns without any figure are left out."""
    objs = dict(report["objectives"])
    control = report.get("control")
    if control:
        objs["control (placebo)"] = control
    kinds = [k for k in ("cluster", "creator")
             if any(k in o.get("responsiveness", {}) for o in objs.values())]
    has_offline = any(o.get("offline", {}).get("test") for o in objs.values())
    has_control = any(o.get("vs_control") for o in objs.values())
    has_paper = bool(report.get("simulated"))
    has_loop = any("closed_loop" in o for o in objs.values())
    has_versus = any("closed_loop_vs_positive_only" in o for o in objs.values())
    head = ["model", "seeds"]
    if has_offline:
        head += ["NDCG@10", "dislike exp.@10"]
    for kind in kinds:
        head += [f"resp. {kind}"] + ([f"vs control ({kind})"] if has_control else []) \
            + ([f"paper ({kind})"] if has_paper else [])
    if has_loop:
        head += ["closed-loop dislike rate"] + (["vs positive_only"] if has_versus else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, o in objs.items():
        cells = [name, str(o.get("seeds", 1))]
        if has_offline:
            test = o.get("offline", {}).get("test", {})
            cells += [_value(test.get("ndcg@10"), 4), _value(test.get("dislike_exposure@10"), 3)]
        for kind in kinds:
            cells.append(_est(o.get("responsiveness", {}).get(kind, {}).get("dislike")))
            if has_control:
                cells.append(_points(o.get("vs_control", {}).get(kind, {}).get("dislike"))
                             if o is not control else "-")
            if has_paper:
                cells.append(_pct(PAPER_RESPONSIVENESS.get(name, {}).get(kind)))
        if has_loop:
            cells.append(_rate(o.get("closed_loop", {}).get("rates", {}).get("dislike_rate")))
            if has_versus:
                cells.append(_est(o.get("closed_loop_vs_positive_only", {}).get("dislike_rate")))
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
            if not report.get("simulated"):
                continue  # the paper's figures are of simulated users: not beside real data
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
