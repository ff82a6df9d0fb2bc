"""Feedback-aware event logs, loaders, splits, negative samplers and the native collator."""

from negrec.data.batch import Batch
from negrec.data.collate import Collator
from negrec.data.collate_config import CollateConfig, TargetRule
from negrec.data.feedback import FEEDBACK_TYPES, Feedback, parse_feedback
from negrec.data.loaders import (ColumnMap, DataFormatError, ItemColumns, KuaiRandMapping,
                                 RatingMapping, load_kuairand, load_movielens, load_table)
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.data.samplers import InBatchSampler, PopularitySampler, UniformSampler, make_sampler
from negrec.data.split import HeldOut, Split, leave_last_out, leave_one_out, time_split

__all__ = [
    "Batch", "CollateConfig", "Collator", "TargetRule", "FEEDBACK_TYPES", "Feedback",
    "parse_feedback", "ColumnMap", "DataFormatError", "ItemColumns", "KuaiRandMapping",
    "RatingMapping", "load_kuairand", "load_movielens", "load_table", "EventLog", "ItemMeta",
    "LoadReport", "InBatchSampler", "PopularitySampler", "UniformSampler", "make_sampler",
    "HeldOut", "Split", "leave_last_out", "leave_one_out", "time_split",
]
