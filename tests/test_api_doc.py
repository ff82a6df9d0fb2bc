"""docs/api.md's snippets run, in order, as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_api_doc_snippets_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5, "docs/api.md lost its examples"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for n, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/api.md block {n + 1}", "exec"), scope)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"docs/api.md block {n + 1} failed: {exc!r}\n{code}") from exc
    report = scope["report"]
    assert report["objectives"]["input_ntr"]["seeds"] == 2 and report["control"]["seeds"] == 1
    assert (tmp_path / "runs" / "api_resp" / "report.md").exists()
    assert scope["items"].shape == (1, 10)
