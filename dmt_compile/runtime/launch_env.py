"""torchrun's environment, checked before anything waits: every mistake is one typed line naming the variable.

:func:`read_torchrun_env` reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
MASTER_PORT and refuses, before any socket is opened, values that cannot work: missing or not an
integer, ``RANK >= WORLD_SIZE`` (it used to wait 51 s for a rank that cannot exist), a world that
does not fit the topology, a port outside 1..65535, a host name that does not resolve.

:func:`rendezvous` builds the TCP store itself (as ``env://`` does: rank 0 hosts it, or torchrun's
agent does when ``TORCHELASTIC_USE_AGENT_STORE`` is set) with a join timeout of its own
(``join_timeout_s``, default 20 s), so a port already in use, a rank 0 that never came up or ranks
that never joined are each reported within 30 s, naming the variable and the fix, instead of a
``DistNetworkError`` / ``DistStoreError`` traceback.
"""
from __future__ import annotations

import datetime
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.groups import validate_world
from dmt_compile.topo.topology import Topology

__all__ = ["TorchrunEnv", "read_torchrun_env", "rendezvous", "DEFAULT_JOIN_TIMEOUT_S"]

#: How long rank 0 waits for the others to join (and the others for rank 0) at start-up.
DEFAULT_JOIN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class TorchrunEnv:
    rank: int
    world_size: int
    local_rank: int | None
    local_world_size: int | None
    master_addr: str | None
    master_port: int | None


def _torchrun(topo: Topology) -> str:
    return f"torchrun --nnodes={topo.num_hosts} --nproc-per-node={topo.local_size}"


def _int(name: str, low: int | None = None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise RuntimeSetupError(f"environment variable {name}={raw!r} is not an integer",
                                f"unset {name} or set it to an integer (torchrun sets it for you)") from None
    if low is not None and value < low:
        raise RuntimeSetupError(f"environment variable {name}={value} must be >= {low}",
                                f"fix {name} (torchrun sets it for you)")
    return value


def read_torchrun_env(topo: Topology, *, need_master: bool) -> TorchrunEnv:
    """The launch variables, checked against each other and `topo` (module docstring)."""
    rank, world = _int("RANK", 0), _int("WORLD_SIZE", 1)
    if rank is None or world is None:
        missing = " and ".join(n for n, v in (("RANK", rank), ("WORLD_SIZE", world)) if v is None)
        raise RuntimeSetupError(f"{missing} not set: this process was not started by torchrun",
                                f"run with {_torchrun(topo)} ..., or use dmt_compile.runtime.launch.launch_local "
                                "on one machine")
    if rank >= world:
        raise RuntimeSetupError(f"RANK={rank} is not below WORLD_SIZE={world} (ranks are 0..{world - 1})",
                                f"give each process a RANK in 0..{world - 1}, or let {_torchrun(topo)} set them")
    local_rank, local_world = _int("LOCAL_RANK", 0), _int("LOCAL_WORLD_SIZE", 1)
    validate_world(topo, world, local_world, source="WORLD_SIZE")
    if local_rank is not None and local_rank != topo.local_of(rank):
        raise RuntimeSetupError(
            f"RANK={rank} has LOCAL_RANK={local_rank}, but topology {topo} puts rank {rank} at local index "
            f"{topo.local_of(rank)} (ranks must be host-major: rank = host * {topo.local_size} + local)",
            "start the same number of processes on every node (torchrun --nproc-per-node) so ranks are host-major")
    addr, port = (_master(topo) if need_master else (None, None))
    return TorchrunEnv(rank, world, local_rank, local_world, addr, port)


def _master(topo: Topology) -> tuple[str, int]:
    addr = (os.environ.get("MASTER_ADDR") or "").strip()
    if not addr:
        raise RuntimeSetupError("MASTER_ADDR is not set: the ranks do not know where rank 0 waits for them",
                                f"export MASTER_ADDR=<rank 0's host name or IP> (torchrun sets it: {_torchrun(topo)})")
    raw = (os.environ.get("MASTER_PORT") or "").strip()
    if not raw:
        raise RuntimeSetupError("MASTER_PORT is not set: the ranks do not know which port rank 0 listens on",
                                "export MASTER_PORT=<a free port, e.g. 29500> (the same on every rank)")
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise RuntimeSetupError(f"MASTER_PORT={raw!r} is not a port number (1..65535)",
                                "export MASTER_PORT=<a free port, e.g. 29500> (the same on every rank)")
    try:
        socket.getaddrinfo(addr, int(raw))
    except (socket.gaierror, UnicodeError) as exc:
        raise RuntimeSetupError(f"MASTER_ADDR={addr!r} does not resolve ({exc})",
                                "export MASTER_ADDR=<rank 0's host name or IP> as every rank can resolve it") from None
    return addr, int(raw)


def _agent_store() -> bool:
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").strip() == str(True)


def _store(env: TorchrunEnv, join_s: float) -> Any:
    """The TCP store of the run, or a typed error naming MASTER_ADDR/MASTER_PORT/WORLD_SIZE."""
    master = env.rank == 0 and not _agent_store()
    where = f"MASTER_ADDR={env.master_addr} MASTER_PORT={env.master_port}"
    try:
        return dist.TCPStore(env.master_addr, env.master_port, env.world_size, is_master=master,
                             timeout=datetime.timedelta(seconds=join_s), multi_tenant=True)
    except dist.DistError as exc:
        text = str(exc)
        if "EADDRINUSE" in text or "address already in use" in text.lower():
            raise RuntimeSetupError(f"rank 0 cannot listen on {where}: the port is already in use (another run "
                                    "or program holds it)",
                                    "pick a free port: export MASTER_PORT=<another port> on every rank "
                                    "(torchrun --master-port), or stop the process that holds it") from None
        joined = re.search(r"(\d+)/(\d+) clients joined", text)
        if joined:
            raise RuntimeSetupError(
                f"only {joined.group(1)} of WORLD_SIZE={env.world_size} ranks joined rank 0 at {where} within "
                f"{join_s:g} s", f"start all {env.world_size} ranks (every node's torchrun, with the same "
                "MASTER_ADDR/MASTER_PORT), or lower WORLD_SIZE to the ranks you start") from None
        raise RuntimeSetupError(
            f"rank {env.rank} could not reach rank 0 at {where} within {join_s:g} s ({text.splitlines()[0][:160]})",
            "start rank 0 first or together, and give every rank rank 0's MASTER_ADDR and MASTER_PORT") from None


def rendezvous(env: TorchrunEnv, backend: str, timeout_s: float, join_timeout_s: float | None = None) -> None:
    """``init_process_group`` on a store built here, each failure a typed line (module docstring)."""
    for name, value in (("timeout_s", timeout_s), ("join_timeout_s", join_timeout_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < float("inf")):
            raise RuntimeSetupError(f"init_from_env: {name}={value!r} is not a positive number of seconds",
                                    f"give {name} > 0, e.g. 30")
    join_s = float(join_timeout_s if join_timeout_s is not None else min(DEFAULT_JOIN_TIMEOUT_S, timeout_s))
    store = _store(env, join_s)
    try:
        dist.init_process_group(backend, store=store, rank=env.rank, world_size=env.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except dist.DistError as exc:
        raise RuntimeSetupError(
            f"rank {env.rank}: the {backend} process group did not form within {join_s:g} s "
            f"({str(exc).splitlines()[0][:160]})",
            f"start all WORLD_SIZE={env.world_size} ranks with the same MASTER_ADDR/MASTER_PORT") from None
    store.set_timeout(datetime.timedelta(seconds=timeout_s))
