"""`distribute` places this rank's modules, buffers and batches on its device (NCCL: cuda:LOCAL_RANK)."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.devices import resolve_rank_device, to_device
from dmt_compile.runtime.launch import launch_local
from dmt_compile.topo import Topology
from workers import DLRM, adam_cases

ENV = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "training"), os.path.join(ROOT, "tests"), ROOT])}


def test_auto_device_follows_the_backend():
    assert resolve_rank_device(None, "gloo") == torch.device("cpu")
    assert resolve_rank_device("auto", "gloo") == torch.device("cpu")
    assert resolve_rank_device("cpu", "gloo") == torch.device("cpu")
    with pytest.raises(RuntimeSetupError, match="cannot run under the NCCL backend"):
        resolve_rank_device("cpu", "nccl")
    with pytest.raises(RuntimeSetupError, match="unknown device"):
        resolve_rank_device("meta", "gloo")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal path cannot run")
def test_absent_cuda_is_refused_with_a_typed_error():
    for device, backend in (("cuda", "gloo"), (None, "nccl"), ("cuda:1", "nccl")):
        with pytest.raises(RuntimeSetupError, match="CUDA is not available"):
            resolve_rank_device(device, backend)


def test_to_device_moves_nested_inputs_and_keeps_the_rest():
    x = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": "text"}
    moved = to_device(x, torch.device("cpu"))
    assert moved["b"] == "text" and moved["a"][1][1] == 3 and isinstance(moved["a"][1], tuple)
    assert torch.equal(moved["a"][0], x["a"][0])


@pytest.mark.distributed
def test_explicit_cpu_device_trains_like_one_process():
    results = [r[0] for r in launch_local(adam_cases, Topology(1, 2), timeout_s=300, env=ENV,
                                          args=([dict(spec=DLRM, topology="1x2", steps=2, device="cpu")],))]
    assert all(r["out"] <= 1e-5 and r["param"] <= 1e-5 for r in results), results


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_nccl_on_two_gpus_trains_like_one_process():
    """Under NCCL, `distribute` puts every tensor on cuda:LOCAL_RANK; Adam for 3 steps matches one CPU process."""
    results = [r[0] for r in launch_local(adam_cases, Topology(1, 2), timeout_s=300, env=ENV, backend="nccl",
                                          args=([dict(spec=DLRM, topology="1x2", steps=3, tm="linear")],))]
    assert all(r["out"] <= 1e-4 and r["param"] <= 1e-4 for r in results), results


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal path cannot run")
def test_trainer_refuses_absent_cuda_before_any_rank(capsys):
    import sys

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import train_distributed
    finally:
        sys.path.pop(0)
    assert train_distributed.main(["--local", "--topology", "1x2", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "RuntimeSetupError: device 'cuda' was asked for" in err and "fix: use --device cpu" in err
