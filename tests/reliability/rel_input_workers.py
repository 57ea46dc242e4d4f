"""Rank functions of the input-fault tests (module level, so spawned ranks can import them).

Every rank trains one step of the example DLRM on 2x2 with `distribute`; `culprit` spoils its own
share of the batch as `fault` says. The tests check who gets the blame and how.
"""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spoil(fault: str, dense: torch.Tensor, sparse: dict) -> tuple:
    if fault == "float_ids":  # ids + 0.7: the original model refuses them, the exchange used to truncate
        sparse["C5"] = sparse["C5"] + 0.7
    elif fault == "nan_ids":
        sparse["C3"] = sparse["C3"].double()
        sparse["C3"][1] = float("nan")
    elif fault == "inf_ids":
        sparse["C3"] = sparse["C3"].float()
        sparse["C3"][0] = float("inf")
    elif fault == "int16_ids":
        sparse["C7"] = sparse["C7"].to(torch.int16)
    elif fault == "huge_id":
        sparse["C2"][0] = 2**62
    elif fault == "negative_id":
        sparse["C2"][1] = -5
    elif fault in ("empty_batch", "short_batch"):  # 0 or 1 samples on this rank, 2 on the others
        n = 0 if fault == "empty_batch" else 1
        dense, sparse = dense[:n], {k: v[:n] for k, v in sparse.items()}
    elif fault == "nan_dense":
        dense = dense.clone()
        dense[1, 4] = float("nan")
    elif fault == "inf_dense":
        dense = dense.clone()
        dense[0, 0] = float("inf")
    return dense, sparse


def dlrm_step(rank: int, fault: str, culprit: int, check_finite: bool = False, loss_fault: bool = False) -> float:
    """One training step of DLRM on 2x2 (every rank); returns the local loss."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec

    torch.manual_seed(0)
    model, (dense, sparse) = load_model_spec(os.path.join(ROOT, "examples", "dlrm.py:factory"), batch_size=8)
    dmt = dmt_compile.transform(model, "2x2", (dense, sparse))
    dm = dmt_compile.distribute(dmt, "2x2", check_finite=check_finite)
    dense, sparse = dm.local_batch(dense, sparse)
    sparse = {k: v.clone() for k, v in sparse.items()}
    if rank == culprit:
        dense, sparse = _spoil(fault, dense, sparse)
    out = dm(dense, sparse)
    loss = out.float().pow(2).mean()
    if loss_fault and rank == culprit:
        loss = loss * float("inf")
    loss.backward()
    return float(loss.detach())


class TableModel(torch.nn.Module):
    """Two tables read with F.embedding: `frozen` is a parameter without gradient, `held` a buffer or a parameter."""

    def __init__(self, held_as_buffer: bool):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.frozen = torch.nn.Parameter(torch.randn(20, 4, generator=g), requires_grad=False)
        held = torch.randn(30, 4, generator=g)
        if held_as_buffer:
            self.register_buffer("held", held)
        else:
            self.held = torch.nn.Parameter(held, requires_grad=False)
        self.top = torch.nn.Linear(8 + 3, 1)

    def forward(self, dense, ids):
        a = torch.nn.functional.embedding(ids[:, 0], self.frozen)
        b = torch.nn.functional.embedding(ids[:, 1], self.held)
        return self.top(torch.cat([a, b, dense], dim=1))


def table_model(held_as_buffer: bool = False, batch_size: int = 8):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    ids = torch.stack([torch.randint(0, 20, (batch_size,), generator=g),
                       torch.randint(0, 30, (batch_size,), generator=g)], 1)
    return TableModel(held_as_buffer), (torch.randn(batch_size, 3, generator=g), ids)


def frozen_tables_step(rank: int) -> tuple:
    """Frozen (requires_grad=False) tables train on 1x2: this rank's outputs and the top layer's gradient."""
    import dmt_compile

    model, (dense, ids) = table_model(False)
    dm = dmt_compile.distribute(dmt_compile.transform(model, "1x2", (dense, ids)), "1x2")
    dense, ids = dm.local_batch(dense, ids)
    out = dm(dense, ids)
    out.pow(2).mean().backward()
    grad = next(p.grad for n, p in dm.named_parameters() if n.endswith("top.weight"))
    return out.detach(), grad


def stopped_inside_collective(rank: int, culprit: int) -> None:
    """`culprit` enters an exchange first and is stopped (SIGSTOP) while it waits there; the others join later,
    then wait for it in the next exchange."""
    import signal
    import threading
    import time

    from dmt_compile.runtime import HierarchicalGroups, all_to_all_rows

    groups = HierarchicalGroups.build("2x2")
    x = torch.ones(8, 4)
    all_to_all_rows(x, [2] * 4, [2] * 4, None, "world")  # everyone is up
    if rank == culprit:
        threading.Thread(target=lambda: (time.sleep(1.0), os.kill(os.getpid(), signal.SIGSTOP)), daemon=True).start()
    else:
        time.sleep(3.0)
    all_to_all_rows(x, [2] * 4, [2] * 4, None, "world")
    all_to_all_rows(x[:4], [2, 2], [2, 2], groups.peer, "cross")
