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
