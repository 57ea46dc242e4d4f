"""Process groups of a DMT run: world, cross-host peers and intra-host, built on a DeviceMesh.

For a :class:`~dmt_compile.topo.topology.Topology` of ``N`` hosts x ``L`` ranks per host, rank
``r = h * L + l`` lives on host ``h`` with local index ``l``. The mesh is
``init_device_mesh(device_type, (N, L), mesh_dim_names=("host", "local"))``, so

* ``peer`` (the mesh's ``"host"`` dimension, label ``"cross"``) holds the ranks with local index
  ``l`` on every host, ``{l + g * L : g < N}``, ordered by host: a rank's index in it is its host;
* ``intra`` (the ``"local"`` dimension, label ``"intra"``) holds host ``h``'s ranks
  ``{h * L + i : i < L}``: a rank's index in it is its local index;
* ``world`` is the default group (label ``"world"``).

Also: :func:`validate_world` (world size / LOCAL_WORLD_SIZE against the topology) and
:func:`check_fingerprint` (all ranks run the same plan).
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime import exit_drain
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = [
    "HierarchicalGroups",
    "validate_world",
    "check_fingerprint",
    "GROUP_LABELS",
]

logger = logging.getLogger(__name__)

#: Labels under which the collectives of each group are counted in CommStats.
GROUP_LABELS = ("world", "cross", "intra")


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _suggest(world_size: int, local_world_size: int | None) -> str:
    if local_world_size and local_world_size > 0 and world_size % local_world_size == 0:
        return f"{world_size // local_world_size}x{local_world_size}"
    return f"{world_size}x1"


def validate_world(
    topology: Topology | str,
    world_size: int,
    local_world_size: int | None = None,
    *,
    source: str = "torch.distributed",
) -> Topology:
    """Check that ``world_size`` (and ``local_world_size`` if given) fit ``topology``.

    Raises :class:`RuntimeSetupError` saying exactly how they differ; returns the Topology.
    """
    topo = as_topology(topology)
    problems = []
    if world_size != topo.world_size:
        problems.append(
            f"world size is {world_size} (from {source}) but topology {topo} needs "
            f"{_n(topo.num_hosts, 'host')} x {_n(topo.local_size, 'rank')} = {_n(topo.world_size, 'rank')}"
        )
    if local_world_size is not None and local_world_size != topo.local_size:
        problems.append(
            f"LOCAL_WORLD_SIZE is {local_world_size} but topology {topo} has "
            f"{_n(topo.local_size, 'rank')} per host"
        )
    if problems:
        raise RuntimeSetupError(
            "; ".join(problems),
            f"start {_n(topo.world_size, 'process', 'processes')} as {_n(topo.num_hosts, 'node')} x {topo.local_size} per node "
            f"(torchrun --nnodes={topo.num_hosts} --nproc-per-node={topo.local_size}), or use "
            f"--topology {_suggest(world_size, local_world_size)} to match the processes you started",
        )
    return topo


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise RuntimeSetupError(
            f"environment variable {name}={value!r} is not an integer",
            f"unset {name} or set it to an integer",
        ) from None


def _device_type_for(backend: str) -> str:
    return "cuda" if str(backend).lower() == "nccl" else "cpu"


def _backend_options(backend: str, timeout: datetime.timedelta | None) -> Any | None:
    """Backend options carrying ``timeout`` (DeviceMesh sub-groups otherwise get the 30-min default)."""
    if timeout is None:
        return None
    backend = str(backend).lower()
    try:
        if backend == "gloo":
            opts = dist.ProcessGroupGloo._Options()
        elif backend == "nccl" and hasattr(dist, "ProcessGroupNCCL"):
            opts = dist.ProcessGroupNCCL.Options()
        else:
            return None
        opts._timeout = timeout
        return opts
    except Exception:  # pragma: no cover - depends on the torch build
        logger.warning("could not set a %s timeout on the mesh sub-groups", backend, exc_info=True)
        return None


def _default_timeout(backend: str) -> datetime.timedelta | None:
    try:
        pg = dist.distributed_c10d._get_default_group()
        device = torch.device(_device_type_for(backend))
        return pg._get_backend(device).options._timeout
    except Exception:  # pragma: no cover - private API moved
        return None


@dataclass(frozen=True, eq=False)
class HierarchicalGroups:
    """This rank's view of the world / cross-host peer / intra-host groups of a topology."""

    topology: Topology
    rank: int
    mesh: Any  # torch.distributed.device_mesh.DeviceMesh
    world: Any  # ProcessGroup (the default group)
    peer: Any  # ProcessGroup: same local index on every host (mesh dim "host")
    intra: Any  # ProcessGroup: this host's ranks (mesh dim "local")

    @classmethod
    def build(
        cls,
        topology: Topology | str,
        *,
        device_type: str | None = None,
        timeout_s: float | None = None,
    ) -> "HierarchicalGroups":
        """Build the groups; every rank must call this (collective). Needs an initialised default group.

        Validates the world size and the ``LOCAL_WORLD_SIZE`` environment variable (when set)
        against ``topology``. ``device_type`` defaults to ``"cuda"`` for NCCL, else ``"cpu"``;
        ``timeout_s`` defaults to the default group's timeout.
        """
        topo = as_topology(topology)
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeSetupError(
                "torch.distributed is not initialised",
                "call dmt_compile.runtime.launch.init_from_env(...) or run under launch_local first",
            )
        validate_world(topo, dist.get_world_size(), _env_int("LOCAL_WORLD_SIZE"))
        backend = dist.get_backend()
        device_type = device_type or _device_type_for(backend)
        timeout = datetime.timedelta(seconds=timeout_s) if timeout_s else _default_timeout(backend)
        opts = _backend_options(backend, timeout)
        override = {"host": opts, "local": opts} if opts is not None else None
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(
            device_type,
            (topo.num_hosts, topo.local_size),
            mesh_dim_names=("host", "local"),
            backend_override=override,
        )
        rank = dist.get_rank()
        groups = cls(
            topology=topo,
            rank=rank,
            mesh=mesh,
            world=dist.group.WORLD,
            peer=mesh.get_group("host"),
            intra=mesh.get_group("local"),
        )
        groups._check_layout()
        exit_drain.install()  # these groups outlive destroy_process_group: let gloo's workers finish first
        logger.debug("rank %d groups: peer=%s intra=%s", rank, groups.peer_ranks, groups.intra_ranks)
        return groups

    def _check_layout(self) -> None:
        peer = tuple(dist.get_process_group_ranks(self.peer))
        intra = tuple(dist.get_process_group_ranks(self.intra))
        if peer != self.topology.peer_group(self.rank) or intra != self.topology.intra_group(self.rank):
            raise RuntimeSetupError(
                f"rank {self.rank}: DeviceMesh groups peer={peer} intra={intra} differ from the topology's "
                f"peer={self.topology.peer_group(self.rank)} intra={self.topology.intra_group(self.rank)}",
                "report this: the mesh layout of torch.distributed changed",
            )

    @property
    def host(self) -> int:
        return self.topology.host_of(self.rank)

    @property
    def local(self) -> int:
        return self.topology.local_of(self.rank)

    @property
    def world_size(self) -> int:
        return self.topology.world_size

    @property
    def peer_ranks(self) -> tuple[int, ...]:
        """Global ranks of my peer group, ordered by host (my index in it is ``self.host``)."""
        return self.topology.peer_group(self.rank)

    @property
    def intra_ranks(self) -> tuple[int, ...]:
        """Global ranks of my host, ordered by local index (my index in it is ``self.local``)."""
        return self.topology.intra_group(self.rank)

    def group(self, label: str) -> Any:
        """The group of a label: ``"world"``, ``"cross"`` (alias ``"peer"``/``"host"``), ``"intra"`` (``"local"``)."""
        key = label.lower()
        if key == "world":
            return self.world
        if key in ("cross", "peer", "host"):
            return self.peer
        if key in ("intra", "local"):
            return self.intra
        raise RuntimeSetupError(f"unknown group label {label!r}", f"use one of {GROUP_LABELS}")


_DIGEST_BYTES = 32  # sha256
_PREVIEW_BYTES = 120  # what the error quotes of each rank's fingerprint (utf-8, cut on a character boundary)


def _fingerprint_tensor(digest: bytes, preview: str, device: torch.device) -> torch.Tensor:
    """``[digest | preview length | preview, zero padded]`` as one uint8 tensor of fixed size."""
    text = preview.encode("utf-8")[:_PREVIEW_BYTES].decode("utf-8", errors="ignore").encode("utf-8")
    raw = digest + bytes([len(text)]) + text + bytes(_PREVIEW_BYTES - len(text))
    return torch.tensor(list(raw), dtype=torch.uint8, device=device)


def _decode_fingerprint(row: torch.Tensor) -> tuple[str, str]:
    raw = bytes(row.cpu().tolist())
    n = raw[_DIGEST_BYTES]
    return raw[:_DIGEST_BYTES].hex(), raw[_DIGEST_BYTES + 1: _DIGEST_BYTES + 1 + n].decode("utf-8", errors="replace")


def _group_device(group: Any) -> torch.device:
    """The device collectives of `group` run on: CUDA for NCCL-only groups, else the CPU (gloo)."""
    backend = str(dist.get_backend(group)).lower()
    if "nccl" in backend and "gloo" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def check_fingerprint(fingerprint: str, group: Any = None, *, what: str = "plan") -> str:
    """Check that every rank of ``group`` passed the same ``fingerprint`` (collective).

    Returns the fingerprint's sha256 hex digest. Raises :class:`RuntimeSetupError` on every rank
    when they differ, naming which ranks hold which value (the group of the lowest rank is taken as
    the reference; the others are "the ranks that differ").

    The digests travel as fixed-size uint8 tensors in one ``all_gather`` (no pickling, so no
    dependency on numpy, which ``all_gather_object`` needs).
    """
    raw = hashlib.sha256(fingerprint.encode("utf-8")).digest()
    digest = raw.hex()
    preview = fingerprint if len(fingerprint) <= 60 else fingerprint[:57] + "..."
    size = dist.get_world_size(group)
    mine = _fingerprint_tensor(raw, preview, _group_device(group))
    rows = [torch.empty_like(mine) for _ in range(size)]
    dist.all_gather(rows, mine, group=group)
    gathered = [_decode_fingerprint(r) for r in rows]
    ranks = list(dist.get_process_group_ranks(group)) if group is not None else list(range(size))
    by_digest: dict[str, list[int]] = {}
    previews: dict[str, str] = {}
    for rank, (d, p) in zip(ranks, gathered):
        by_digest.setdefault(d, []).append(rank)
        previews[d] = p
    if len(by_digest) == 1:
        return digest
    reference = gathered[0][0]
    differing = sorted(r for d, rs in by_digest.items() if d != reference for r in rs)
    detail = "; ".join(
        f"ranks {rs} have {previews[d]!r} (sha256 {d[:12]})" for d, rs in sorted(by_digest.items(), key=lambda kv: kv[1])
    )
    raise RuntimeSetupError(
        f"ranks {differing} were started with a different {what} than rank {ranks[0]}: {detail}",
        f"start every rank with the same {what} (same model spec, topology and options)",
    )
