"""The row-by-row loaders as they were before the Arrow rewrite, kept only as the test oracle
of the differential tests (tests/data/loaders/conftest.py, test_differential.py): every
loader test runs them beside the package's loaders and requires the same EventLog (arrays,
ids, metadata) and the same LoadReport, or the same error.

A frozen copy: ``text`` (csv.reader over numbered physical lines), ``parse`` (values),
``events`` (the kept rows), ``table`` / ``movielens`` / ``kuairand`` (the loaders),
``log_build`` (``EventLog.from_events`` as it built their logs) and ``errors`` (the bad-row
policy). Only the classes that are the contract (EventLog, ItemMeta, LoadReport,
DataFormatError, Option, FeedbackLabels) come from the package. Do not change it: it is what
"behaves as before" means."""

from .kuairand import KuaiRandMapping, load_kuairand
from .log_build import from_events
from .movielens import load_movielens
from .parse import RatingMapping
from .table import ColumnMap, ItemColumns, load_table

__all__ = ["ColumnMap", "ItemColumns", "KuaiRandMapping", "RatingMapping", "from_events",
           "load_kuairand", "load_movielens", "load_table"]
