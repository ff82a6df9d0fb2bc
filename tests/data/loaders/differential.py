"""Running a load with the package's loaders and with the row-by-row oracle (``oracle/``), and
requiring the same outcome: the same EventLog (every array with its dtype, ids, item
metadata, source) and the same LoadReport (counts, examples, and the order of its reasons), or
the same error (type and message)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from negrec.data.loaders import KuaiRandMapping, RatingMapping, load_kuairand, load_movielens, load_table

from . import oracle

LOADERS = {"load_table": (load_table, oracle.load_table),
           "load_movielens": (load_movielens, oracle.load_movielens),
           "load_kuairand": (load_kuairand, oracle.load_kuairand)}


def _oracle_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same options, with the mapping objects as the oracle's own classes (their logic is
    part of what it checks)."""
    out = dict(kwargs)
    for key in ("rating_mapping", "mapping"):
        m = out.get(key)
        if isinstance(m, RatingMapping):
            out[key] = oracle.RatingMapping(m.positive_min, m.dislike_max)
        elif isinstance(m, KuaiRandMapping):
            out[key] = oracle.KuaiRandMapping(m.skip_fraction, m.skip_max_ms)
    return out


def outcome(fn: Callable, *args, **kwargs):
    """("log", log) or ("error", exception)."""
    try:
        return "log", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every error is part of the behaviour compared
        return "error", exc


def assert_same_array(name: str, new: np.ndarray | None, old: np.ndarray | None) -> None:
    assert (new is None) == (old is None), f"{name}: {new!r} vs {old!r}"
    if new is None:
        return
    assert new.dtype == old.dtype, f"{name}: dtype {new.dtype} vs {old.dtype}"
    assert new.shape == old.shape, f"{name}: shape {new.shape} vs {old.shape}"
    assert np.array_equal(new, old), f"{name}: values differ\n{new[:20]!r}\n{old[:20]!r}"


def assert_same_log(new, old) -> None:
    for name in ("offsets", "items", "timestamps", "feedback", "strength", "user_ids"):
        assert_same_array(name, getattr(new, name), getattr(old, name))
    nm, om = new.item_meta, old.item_meta
    for name in ("raw_ids", "cluster", "creator"):
        assert_same_array(f"item_meta.{name}", getattr(nm, name), getattr(om, name))
    for name in ("cluster_names", "creator_names", "titles"):
        assert getattr(nm, name) == getattr(om, name), name
    assert new.source == old.source
    assert_same_report(new.report, old.report)


def assert_same_report(new, old) -> None:
    assert dataclasses.asdict(new) == dataclasses.asdict(old), (new, old)
    for name in ("dropped", "repaired", "notes", "examples"):  # the order reasons came in
        assert list(getattr(new, name)) == list(getattr(old, name)), name
    assert new.summary() == old.summary()


def assert_same_outcome(new: tuple, old: tuple) -> None:
    (kind_new, new_value), (kind_old, old_value) = new, old
    if kind_old == "error":
        assert kind_new == "error", f"the oracle raised {old_value!r}; the loader returned a log"
        assert type(new_value) is type(old_value) and str(new_value) == str(old_value), \
            f"\nnew: {type(new_value).__name__}: {new_value}\nold: {type(old_value).__name__}: {old_value}"
        return
    assert kind_new == "log", f"the loader raised {new_value!r}; the oracle returned a log"
    assert_same_log(new_value, old_value)


def compare(name: str, *args, **kwargs):
    """Runs the loader ``name`` both ways, requires the same outcome and returns (or raises)
    the package's."""
    new_fn, old_fn = LOADERS[name]
    old = outcome(old_fn, *args, **_oracle_kwargs(kwargs))
    new = outcome(new_fn, *args, **kwargs)
    assert_same_outcome(new, old)
    if new[0] == "error":
        raise new[1]
    return new[1]


def differential(name: str) -> Callable:
    """A stand-in for the loader ``name`` that runs :func:`compare`."""
    def run(*args, **kwargs):
        return compare(name, *args, **kwargs)
    run.__name__ = name
    return run
