"""Reports: strict JSON with null for undefined figures, the markdown table, the paper's figures."""

from __future__ import annotations

import json

import numpy as np

from negrec.eval.report import PAPER_RESPONSIVENESS, write_report
from helpers import assert_png


def test_report_writes_undefined_figures_as_null(tmp_path):
    report = {"title": "t", "objectives": {"input_ntr": {
        "offline": {"test": {"ndcg@10": np.float32(0.1)}},
        "responsiveness": {"cluster": {"dislike": {"mean": float("nan"), "ci_low": float("nan"),
                                                   "ci_high": float("nan"), "n": np.int64(3)}}}}}}
    paths = write_report(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["objectives"]["input_ntr"]["responsiveness"]["cluster"]["dislike"]["mean"] is None
    assert "| input_ntr | 1 | 0.1000 |" in paths["markdown"].read_text()
    assert "n/a" in paths["markdown"].read_text()
    assert_png(paths["responsiveness"])


def test_paper_figures_are_the_papers():
    assert PAPER_RESPONSIVENESS["input_only"]["cluster"] == -0.227
    assert PAPER_RESPONSIVENESS["input_ntr"]["creator"] == -0.641


def test_report_explains_its_columns_and_surprising_rows(tmp_path):
    est = {"mean": -0.5, "ci_low": -0.6, "ci_high": -0.4}
    entry = {"seeds": 3, "responsiveness": {"cluster": {"dislike": est}},
             "vs_control": {"cluster": {"dislike": est}}}
    report = {"title": "t", "objectives": {"input_ntr": entry, "filter_history": entry},
              "control": {"seeds": 3, "responsiveness": {"cluster": {"dislike": est}}}}
    paths = write_report(report, tmp_path)
    md = paths["markdown"].read_text()
    assert "Learning from Negative User Feedback and Measuring Responsiveness" in md
    assert "- **vs control**: responsiveness minus the placebo control's" in md
    assert "- **resp.**: counterfactual responsiveness" in md
    assert "- **filter_history** drops disliked items" in md
    # columns the table does not have are not defined
    assert "**closed-loop dislike rate**" not in md and "**NDCG@10**" not in md
    assert "**paper**" not in md  # not simulated data: no paper column
