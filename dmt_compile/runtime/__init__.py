"""Distributed runtime of dmt_compile: process groups, instrumented collectives, the wire format,
tower exchanges, point-to-point tags (`tags.py`), launching; no knowledge of passes or models."""
from dmt_compile.runtime.collectives import (
    JaggedExchange,
    all_gather_rows,
    all_reduce_,
    all_reduce_grads,
    all_reduce_mean_grads,
    all_reduce_sum_grads,
    all_to_all_jagged,
    all_to_all_rows,
    exchange_counts,
)
from dmt_compile.runtime.hierarchical_all_reduce import hierarchical_all_reduce_, start_hierarchical_all_reduce_
from dmt_compile.runtime.comm_stats import CommStats, Counters, get_comm_stats, recording, summary_table
from dmt_compile.runtime.groups import HierarchicalGroups, check_fingerprint, validate_world
from dmt_compile.runtime.launch import RankFailure, init_from_env, launch_local

__all__ = [
    "HierarchicalGroups",
    "check_fingerprint",
    "validate_world",
    "CommStats",
    "Counters",
    "get_comm_stats",
    "recording",
    "summary_table",
    "all_to_all_rows",
    "exchange_counts",
    "all_to_all_jagged",
    "JaggedExchange",
    "all_gather_rows",
    "all_reduce_",
    "hierarchical_all_reduce_",
    "start_hierarchical_all_reduce_",
    "all_reduce_grads",
    "all_reduce_mean_grads",
    "all_reduce_sum_grads",
    "launch_local",
    "init_from_env",
    "RankFailure",
]
