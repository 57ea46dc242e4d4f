"""Which device a rank computes on, and a typed refusal when the asked-for device is not there.

`check_device("cuda", gpus_per_host)` runs before any process starts: a CPU-only torch build or a
machine without enough GPUs raises `RuntimeSetupError` naming what was found and the fix (instead
of torch's `AttributeError: module 'torch._C' has no attribute '_cuda_setDevice'` from every rank).
`rank_device(backend)` is the device a rank's modules, buffers and batches live on: under NCCL the
GPU of its local rank (`cuda:LOCAL_RANK`, made current), under gloo the CPU.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from dmt_compile.errors import RuntimeSetupError

__all__ = ["DEVICES", "check_device", "rank_device", "resolve_rank_device", "to_device"]

DEVICES = ("cpu", "cuda")


def check_device(device: str, gpus_per_host: int = 1) -> None:
    """Refuse a device this machine lacks (typed error, one line and a fix) before any rank starts."""
    if device not in DEVICES:
        raise RuntimeSetupError(f"unknown device {device!r}", "use one of: " + ", ".join(DEVICES))
    if device == "cpu":
        return
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"a CUDA {torch.version.cuda} build"
        raise RuntimeSetupError(
            f"device 'cuda' was asked for, but CUDA is not available here (torch {torch.__version__} is {build}"
            f"{'' if torch.version.cuda is None else ' and no GPU is visible'})",
            "use --device cpu (gloo), or run on a machine with GPUs and a CUDA build of torch (README, Install)")
    found = torch.cuda.device_count()
    if found < gpus_per_host:
        raise RuntimeSetupError(
            f"device 'cuda' needs one GPU per rank of a host ({gpus_per_host}), but {found} are visible",
            f"use a topology with at most {found} ranks per host, or --device cpu")


def rank_device(backend: str | None = None) -> torch.device:
    """This rank's device: `cuda:LOCAL_RANK` (made current) under NCCL, else the CPU."""
    if backend is None:
        import torch.distributed as dist

        backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else "gloo"
    if "nccl" not in str(backend).lower():
        return torch.device("cpu")
    check_device("cuda", 1)
    index = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def resolve_rank_device(device: str | torch.device | None, backend: str | None = None) -> torch.device:
    """The device `distribute(..., device=)` puts this rank on: None / "auto" follows the backend
    (NCCL: `cuda:LOCAL_RANK`, gloo: CPU); "cpu" / "cuda" / "cuda:N" ask for one and are checked."""
    if device is None or device == "auto":
        return rank_device(backend)
    device = torch.device(device)
    if device.type == "cuda":
        check_device("cuda", (device.index or 0) + 1)
        torch.cuda.set_device(device.index if device.index is not None else torch.cuda.current_device())
        return torch.device("cuda", torch.cuda.current_device())
    if device.type != "cpu":
        raise RuntimeSetupError(f"unknown device {str(device)!r}", "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if backend is None:
        import torch.distributed as dist

        backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else "gloo"
    if "nccl" in str(backend).lower():
        raise RuntimeSetupError("device 'cpu' cannot run under the NCCL backend (NCCL moves CUDA tensors only)",
                                "use device='auto' (the rank's GPU), or init the process group with gloo")
    return device


def to_device(value: Any, device: torch.device) -> Any:
    """Every tensor (and torchrec KeyedJaggedTensor) of a nested input structure, moved to `device`."""
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        moved = [to_device(v, device) for v in value]
        return moved if isinstance(value, list) else tuple(moved)
    if isinstance(value, torch.Tensor) or type(value).__name__ == "KeyedJaggedTensor":
        return value.to(device)
    return value
