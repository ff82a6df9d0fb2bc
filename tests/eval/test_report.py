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
