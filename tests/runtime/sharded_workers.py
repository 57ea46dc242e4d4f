"""Top-level (picklable) rank workers for tests/runtime/test_runtime_sharded.py."""
from __future__ import annotations

import os
import time

import torch

from dmt_compile.tools.verify import VerifyOptions, verify_worker


def run_cases(rank: int, cases: list[VerifyOptions]) -> list[dict]:
    return [verify_worker(rank, c) for c in cases]


def die_mid_step(rank: int, spec: str, topology: str) -> float:
    """Rank 1 dies after the id exchange has started; the others must fail fast, not hang."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.topo import as_topology

    groups = HierarchicalGroups.build(as_topology(topology))
    model, inputs = load_model_spec(spec)
    sharded = ShardedDmt(dmt_compile.transform(model, topology, inputs), groups)
    if rank == 1:
        time.sleep(0.5)
        os._exit(1)
    start = time.monotonic()
    try:
        sharded(*inputs)
    finally:
        os.environ["DMT_FAILED_AFTER"] = str(time.monotonic() - start)
    return time.monotonic() - start


def different_plan(rank: int, spec: str, topology: str) -> None:
    """Rank 2 pins a feature elsewhere: the plan fingerprints differ and every rank must refuse."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.topo import as_topology

    groups = HierarchicalGroups.build(as_topology(topology))
    model, inputs = load_model_spec(spec)
    pins = {"C1": 1} if rank == 2 else {"C1": 0}
    ShardedDmt(dmt_compile.transform(model, topology, inputs, towers=pins), groups)


def wrong_topology(rank: int, spec: str) -> None:
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.topo import as_topology

    groups = HierarchicalGroups.build(as_topology("2x2"))
    model, inputs = load_model_spec(spec)
    ShardedDmt(dmt_compile.transform(model, "2x4", inputs), groups)


def table_memory(rank: int, spec: str, topology: str) -> dict:
    """Bytes of embedding tables this rank holds after sharding (owner only)."""
    import gc

    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.topo import as_topology

    groups = HierarchicalGroups.build(as_topology(topology))
    model, inputs = load_model_spec(spec)
    dmt = dmt_compile.transform(model, topology, inputs)
    total = sum(p.numel() * p.element_size() for n, p in dmt.graph_module.named_parameters() if "embeddings" in n)
    sharded = ShardedDmt(dmt, groups)
    del dmt, model
    gc.collect()
    held = {id(p): p for p in sharded.parameters()}
    tables = sum(p.numel() * p.element_size() for p in sharded.embedding_params)
    return {"total_tables": total, "held_tables": tables, "held_all": sum(p.numel() * p.element_size()
                                                                          for p in held.values())}


def nothing(rank: int) -> int:
    return torch.zeros(1).numel()
