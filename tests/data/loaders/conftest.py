"""Every loader test is a differential test: each call of ``load_table``, ``load_movielens`` or
``load_kuairand`` in these test modules (and through the data-source registry) also runs the
row-by-row oracle (``oracle/``) on the same files and requires the same EventLog and report,
or the same error (:mod:`.differential`)."""

from __future__ import annotations

import pytest

from negrec.data.loaders import kuairand, movielens, table

from .differential import LOADERS, differential


@pytest.fixture(autouse=True)
def loaders_against_the_oracle(request, monkeypatch):
    if request.module.__name__.endswith("test_differential"):
        return  # compares explicitly
    for name in LOADERS:
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, differential(name))
    for module, name in ((table, "load_table"), (movielens, "load_movielens"),
                         (kuairand, "load_kuairand")):
        monkeypatch.setattr(module, name, differential(name))
