"""Rank functions for the reliability tests (module level, so spawned ranks can import them)."""
from __future__ import annotations

import os
import sys
import time

import torch

from dmt_compile.runtime import HierarchicalGroups, all_to_all_rows, launch_local


def record_pid_and_sleep(rank: int, pid_dir: str) -> None:
    """Write this rank's pid, then sleep far past any test's patience (the launcher gets killed meanwhile)."""
    with open(os.path.join(pid_dir, f"rank{rank}.pid.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(pid_dir, f"rank{rank}.pid.tmp"), os.path.join(pid_dir, f"rank{rank}.pid"))
    time.sleep(600)


def stuck_rank(rank: int, culprit: int) -> None:
    """Every rank but `culprit` enters an exchange; `culprit` stays alive outside any collective."""
    groups = HierarchicalGroups.build("2x2")
    x = torch.ones(8, 4)
    all_to_all_rows(x, [2] * 4, [2] * 4, None, "world")  # one exchange that everyone joins
    if rank == culprit:
        while True:  # alive, busy, never joins the next collective
            time.sleep(0.05)
    all_to_all_rows(x[:4], [2, 2], [2, 2], groups.peer, "cross")


def same_error_everywhere(rank: int) -> None:
    raise ValueError("the factory failed: no such file 'criteo.tsv'")


def identity(rank: int, value):
    return value


def main() -> None:
    """``python rel_workers.py PID_DIR``: a launcher that a test kills while its ranks sleep."""
    launch_local(record_pid_and_sleep, "1x2", args=(sys.argv[1],), timeout_s=500, pg_timeout_s=500)


if __name__ == "__main__":
    main()


def bad_ids_on_rank(rank: int, culprit: int, strategy: str) -> None:
    """Every rank runs its share of a DLRM batch; `culprit` feeds C5 an id one past its 300-row table."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.topo import Topology

    groups = HierarchicalGroups.build("2x2")
    model, (dense, sparse) = load_model_spec(os.path.join(ROOT, "examples", "dlrm.py:factory"), batch_size=8)
    topo = Topology(1, 4) if strategy == "flat" else "2x2"
    dmt = dmt_compile.transform(model, topo, (dense, sparse), num_towers=1 if strategy == "flat" else None)
    sharded = ShardedDmt(dmt, groups, strategy=strategy)
    mine = slice(2 * rank, 2 * rank + 2)
    dense, sparse = dense[mine], {k: v[mine].clone() for k, v in sparse.items()}
    if rank == culprit:
        sparse["C5"][1] = 300
    sharded(dense, sparse)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
