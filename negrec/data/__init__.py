"""Feedback-aware event logs, loaders, splits, negative samplers and the native collator.

Logs, loaders, splits and the event store use numpy and pyarrow only: reading data does not
import torch. The pieces that make tensors (``Batch``, ``Collator``, the samplers) are loaded
on first use.
"""

from negrec.data.collate_config import CollateConfig, TargetRule
from negrec.data.feedback import FEEDBACK_TYPES, Feedback, parse_feedback
from negrec.data.loaders import (ColumnMap, DataFormatError, ItemColumns, KuaiRandMapping,
                                 RatingMapping, load_kuairand, load_movielens, load_table)
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.data.split import HeldOut, Split, leave_last_out, leave_one_out, time_split

__all__ = [
    "Batch", "CollateConfig", "Collator", "TargetRule", "FEEDBACK_TYPES", "Feedback",
    "parse_feedback", "ColumnMap", "DataFormatError", "ItemColumns", "KuaiRandMapping",
    "RatingMapping", "load_kuairand", "load_movielens", "load_table", "EventLog", "ItemMeta",
    "LoadReport", "InBatchSampler", "PopularitySampler", "UniformSampler", "make_sampler",
    "HeldOut", "Split", "leave_last_out", "leave_one_out", "time_split",
]

_SAMPLERS = ("InBatchSampler", "PopularitySampler", "UniformSampler", "make_sampler")


def __getattr__(name: str):  # the torch-backed names, imported on first use
    if name == "Batch":
        from negrec.data.batch import Batch

        return Batch
    if name == "Collator":
        from negrec.data.collate import Collator

        return Collator
    if name in _SAMPLERS:
        from negrec.data import samplers

        return getattr(samplers, name)
    raise AttributeError(f"module 'negrec.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
