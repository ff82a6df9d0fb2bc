"""Reading data runs without torch: ``import negrec`` and ``negrec.data`` load neither torch
nor the compiled extension, and loading a table, writing and opening an event store and
splitting it import neither (a process that only converts data does not carry them). Every
public name is still importable as before, the torch-backed ones loaded on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

READ_DATA = """
import sys
from negrec.data import EventLog, leave_one_out, load_table

log = load_table(sys.argv[1])
log.save_store(sys.argv[2])
opened = EventLog.open(sys.argv[2], verify=True)
split = leave_one_out(opened)
assert opened.num_events == log.num_events == 6 and len(split.test) == 2
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "negrec._C",
                                                                         "negrec.ops")))
print("loaded:", loaded)
"""


def test_loading_converting_opening_and_splitting_import_no_torch(tmp_path):
    table = tmp_path / "events.csv"
    table.write_text("user,item,timestamp,feedback\n" + "".join(
        f"u{u},{i},{t},{fb}\n" for u, i, t, fb in
        [(1, 10, 1, "positive"), (1, 11, 2, "skip"), (1, 12, 3, "dislike"),
         (2, 10, 1, "neutral"), (2, 12, 2, "positive"), (2, 13, 3, "positive")]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(READ_DATA), str(table),
                          str(tmp_path / "store")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded: []"


@pytest.mark.parametrize("package", ["negrec", "negrec.data"])
def test_every_public_name_is_importable(package):
    module = __import__(package, fromlist=["*"])
    for name in module.__all__:
        value = getattr(module, name)
        namespace = {}
        exec(f"from {package} import {name} as value", namespace)
        assert namespace["value"] is value, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(module, "no_such_name")
