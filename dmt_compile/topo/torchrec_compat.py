"""TorchRec's planner estimator, restated (``torchrec/distributed/planner/shard_estimators.py``), for validation.

TorchRec prices one shard of one table with two bandwidth numbers and no latency
(:meth:`Topology.get_bw`), ids at 8 bytes, and a compute template
``(ids·8 + lookups·s + outputs·s)·penalty(d) / HBM``. With the ``torchrec-default`` preset
this reproduces the planner's own numbers for the same shards (checked in
``tests/topo/test_topo_torchrec.py``); our own model (:mod:`dmt_compile.topo.cost_exprs`)
adds what this one lacks (latency, message-size efficiency, congestion, SPTT, TM).

All results are seconds per shard (TorchRec reports milliseconds).
"""
from __future__ import annotations

from dmt_compile.errors import CostModelError
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["torchrec_shard_perf", "SHARDING_TYPES", "BATCHED_COPY_PERF_FACTOR"]

SHARDING_TYPES = ("table_wise", "column_wise", "table_column_wise", "row_wise", "table_row_wise")
BATCHED_COPY_PERF_FACTOR = 2.455  # TorchRec constants.py, RW/TWRW backward copy
ID_BYTES = 8  # BIGINT_DTYPE


def _penalty(dim: int) -> float:
    return 1.0 if dim >= 128 else 1.15 if dim >= 64 else 1.75


def torchrec_shard_perf(
    topology: "Topology | str",
    sharding: str,
    *,
    emb_dim: int,
    batch_per_rank: int = 512,
    pooling_factor: float = 1.0,
    num_poolings: float = 1.0,
    element_bytes: int = 4,
    comm_bytes: int = 4,
) -> dict[str, float]:
    """Per-shard ``fwd_comms, bwd_comms, input_dist, fwd_compute, bwd_compute, total`` (s).

    ``total`` leaves out ``input_dist`` as TorchRec's ``Perf.total`` does. The device
    bandwidth is the topology's ``hbm_bw`` (fused kernel on cuda).
    """
    topo = as_topology(topology)
    topo.require("intra_bw", "inter_bw", "hbm_bw")
    if sharding not in SHARDING_TYPES:
        raise CostModelError(f"unknown TorchRec sharding type {sharding!r}", f"use one of {list(SHARDING_TYPES)}")
    W, L = topo.world_size, topo.local_size
    G = L
    n_groups = max(1, W // G)
    I = pooling_factor * num_poolings * batch_per_rank  # ids per rank
    O = min(1.0, pooling_factor) * num_poolings * batch_per_rank  # pooled outputs per rank
    d = emb_dim
    dbw = topo.hbm_bw
    a2a = topo.get_bw("all_to_all", W, L)
    input_dist = I * W * ID_BYTES / a2a
    if sharding in ("table_wise", "column_wise", "table_column_wise"):
        fwd = O * W * d * comm_bytes / a2a
        bwd = fwd
        compute = (I * W * ID_BYTES + I * W * max(d, 32) * element_bytes + O * W * d * element_bytes)
        compute *= _penalty(d)
    elif sharding == "row_wise":
        fwd = O * W * d * comm_bytes / topo.get_bw("reduce_scatter", W, L)
        bwd = O * W * d * comm_bytes / topo.get_bw("all_gather", W, L)
        bwd += BATCHED_COPY_PERF_FACTOR * O * W * d * comm_bytes / dbw  # type: ignore[operator]
        compute = I * ID_BYTES + I * d * element_bytes + O * W * d * element_bytes
    else:  # table_row_wise
        intra_rs = O * W * d * comm_bytes / topo.get_bw("reduce_scatter", G, min(G, L))
        intra_ag = O * W * d * comm_bytes / topo.get_bw("all_gather", G, min(G, L))
        cross = O * n_groups * d * comm_bytes / topo.get_bw("all_to_all", n_groups, 1) if n_groups > 1 else 0.0
        fwd = intra_rs + cross
        bwd = cross + intra_ag + BATCHED_COPY_PERF_FACTOR * O * W * d * comm_bytes / dbw  # type: ignore[operator]
        compute = I * W * ID_BYTES / G + I * W * d * element_bytes / G + O * W * d * element_bytes
    fwd_compute = compute / dbw  # type: ignore[operator]
    bwd_compute = 2.0 * fwd_compute
    return {
        "fwd_comms": fwd,
        "bwd_comms": bwd,
        "input_dist": input_dist,
        "fwd_compute": fwd_compute,
        "bwd_compute": bwd_compute,
        "total": fwd + bwd + fwd_compute + bwd_compute,
    }
