"""Rank functions for the checkpoint reliability tests (module level, so spawned ranks can import them)."""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}


def _model(topology: str, tm: str = "identity"):
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.topo import as_topology

    topo = as_topology(topology)
    model, inputs = load_model_spec(DLRM, batch_size=topo.world_size * 2)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, topo, inputs, tower_module=tm)
    return dmt_compile.distribute(dmt, topology), inputs


def _step(dist_model, inputs, opt) -> None:
    out = dist_model(*dist_model.local_batch(*inputs))
    opt.zero_grad()
    out.float().pow(2).mean().backward()
    opt.step()


def save_after_steps(rank: int, topology: str, path: str, steps: int = 1, optimizer: str = "adam",
                     extra=None, overwrite: bool = False, tm: str = "identity") -> dict:
    """Train `steps` steps, save to `path`; the local state for comparisons."""
    dist_model, inputs = _model(topology, tm)
    opt = OPTIMIZERS[optimizer](dist_model.parameters(), lr=0.01)
    for _ in range(steps):
        _step(dist_model, inputs, opt)
    dist_model.save_checkpoint(path, optimizer=opt, extra=extra, overwrite=overwrite)
    return {k: t.detach().clone() for k, (t, _, _) in dist_model.local_state().items()}


def load_from(rank: int, topology: str, path: str, optimizer: str | None = "adam", tm: str = "identity") -> dict:
    """Load `path` into a fresh model (and optimizer); (extra, local state) or the error's type and text."""
    dist_model, _ = _model(topology, tm)
    opt = OPTIMIZERS[optimizer](dist_model.parameters(), lr=0.01) if optimizer else None
    try:
        extra = dist_model.load_checkpoint(path, optimizer=opt)
    except Exception as exc:  # noqa: BLE001 - the test asserts on the type and the text
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"extra": extra, "state": {k: t.detach().clone() for k, (t, _, _) in dist_model.local_state().items()}}


def load_rank_path(rank: int, topology: str, paths: list[str]) -> dict:
    """Rank r loads paths[r] (load_from): ranks that disagree about the checkpoint."""
    return load_from(rank, topology, paths[rank])


def save_sgd_and_adam(rank: int, topology: str, directory: str) -> None:
    """Two checkpoints of one trained model: `sgd` (momentum 0: its state holds None records) and `adam`."""
    dist_model, inputs = _model(topology)
    sgd = torch.optim.SGD(dist_model.parameters(), lr=0.01)
    _step(dist_model, inputs, sgd)
    dist_model.save_checkpoint(os.path.join(directory, "sgd"), optimizer=sgd, extra={"step": 1, "note": "sgd"})
    adam = torch.optim.Adam(dist_model.parameters(), lr=0.01)
    _step(dist_model, inputs, adam)
    dist_model.save_checkpoint(os.path.join(directory, "adam"), optimizer=adam, extra={"step": 2, "note": "adam"})


def load_each(rank: int, topology: str, cases: list[tuple[str, str | None]]) -> list[dict]:
    """Load every (path, optimizer) into a fresh model; the outcome of each."""
    dist_model, _ = _model(topology)
    out = []
    for path, optimizer in cases:
        opt = OPTIMIZERS[optimizer](dist_model.parameters(), lr=0.01) if optimizer else None
        try:
            out.append({"extra": dist_model.load_checkpoint(path, optimizer=opt)})
        except Exception as exc:  # noqa: BLE001 - the test asserts on the type and the text
            out.append({"error": type(exc).__name__, "message": str(exc)})
    return out


def save_each(rank: int, topology: str, cases: list[dict]) -> list[dict]:
    """save_checkpoint for every case (path, extra, overwrite, file_limit); the outcome of each."""
    import resource
    import signal

    dist_model, inputs = _model(topology)
    opt = torch.optim.Adam(dist_model.parameters(), lr=0.01)
    _step(dist_model, inputs, opt)
    out = []
    for case in cases:
        if case.get("file_limit"):  # an I/O error while writing (as a full disk): files may not grow past it
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (case["file_limit"], resource.RLIM_INFINITY))
        try:
            out.append({"path": dist_model.save_checkpoint(case["path"], optimizer=opt, extra=case.get("extra"),
                                                           overwrite=case.get("overwrite", False))})
        except Exception as exc:  # noqa: BLE001 - the test asserts on the type and the text
            out.append({"error": type(exc).__name__, "message": str(exc)})
        finally:
            if case.get("file_limit"):
                resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return out
