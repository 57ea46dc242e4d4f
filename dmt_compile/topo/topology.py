"""Topology: N hosts x L ranks per host, optional rack/pod levels, link numbers.

A :class:`Topology` is frozen and computes every derived quantity (world size, host of a
rank, peer group, intra group, active levels, network taper) in one place. The two
positional fields ``num_hosts`` and ``local_size`` are all the runtime needs; the link
numbers (bandwidth in bytes/s per rank per direction, latency in seconds per collective)
are optional and have **no silent defaults**: the cost model refuses a topology without
them and says which preset to use (see :mod:`dmt_compile.topo.presets`).

Levels above the host follow HiCCL's factorisation: each :class:`Level` groups
``hosts`` consecutive hosts (a rack of 2, a pod of 384, ...); traffic leaving a group of
that level runs at ``inter_bw / oversubscription`` per rank.

Spec forms accepted by :meth:`Topology.parse` / :func:`as_topology`:

* ``"2x4"`` -- 2 hosts x 4 ranks, no link numbers;
* ``"h100:64"`` / ``"h100:8x8"`` -- a preset and its GPU count (or hosts x ranks);
* a dict: ``{"num_hosts": 2, "local_size": 4, "intra_bw": 3e11, ...}`` (the
  :meth:`Topology.to_dict` form) or ``{"preset": "h100", "gpus": 64, "inter_bw": 2.5e10}``;
* a JSON string of either dict.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from dmt_compile.errors import TopologyError

__all__ = ["Level", "Topology", "COLLECTIVES", "MAX_WORLD_SIZE"]

#: Collective kinds of TorchRec's two-tier bandwidth rule (:meth:`Topology.get_bw`).
COLLECTIVES = ("all_to_all", "reduce_scatter", "all_gather", "all_reduce")

_RESERVED = ("host", "local")
#: Largest world a Topology describes (16,777,216 ranks, 32x the largest cost-model cluster): past it,
#: sizes overflow C integers in torch and lists (``99999999999999999999x1`` raised OverflowError).
MAX_WORLD_SIZE = 1 << 24
_OPTIONAL_FLOATS = ("intra_bw", "inter_bw", "intra_latency", "inter_latency", "hbm_bw", "flop_rate")


def _positive_int(name: str, value: Any, fix: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TopologyError(f"{name} must be a positive integer, got {value!r}", fix)


def _check_float(name: str, value: Any, *, allow_zero: bool) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or (value == 0 and not allow_zero) or value == float("inf"):
        raise TopologyError(
            f"{name} must be a finite {'non-negative' if allow_zero else 'positive'} number, "
            f"got {value!r}",
            f"give {name} in SI units (bytes/s for bandwidths, seconds for latencies, "
            "FLOP/s for flop_rate)",
        )


@dataclass(frozen=True)
class Level:
    """A level above the host: groups of ``hosts`` consecutive hosts (rack, pod, ...).

    ``oversubscription`` (>= 1, dimensionless) is the taper of the links that leave one group
    of this level: per-rank bandwidth out of the group is ``inter_bw / oversubscription``.
    ``latency`` (s) is added to the collective start-up when a collective spans groups.
    """

    name: str
    hosts: int
    oversubscription: float = 1.0
    latency: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise TopologyError(
                f"level name must be a lowercase identifier, got {self.name!r}",
                "name levels like 'rack' or 'pod'",
            )
        if self.name in _RESERVED:
            raise TopologyError(
                f"level name {self.name!r} is reserved", "use another name, e.g. 'rack' or 'pod'"
            )
        _positive_int(f"level {self.name!r} hosts", self.hosts, "give hosts >= 2 per group")
        if self.hosts < 2:
            raise TopologyError(
                f"level {self.name!r} groups {self.hosts} host; a level needs >= 2",
                "drop the level or give hosts >= 2",
            )
        _check_float(f"level {self.name!r} latency", self.latency, allow_zero=True)
        o = self.oversubscription
        if not isinstance(o, (int, float)) or isinstance(o, bool) or not (1.0 <= o < float("inf")):
            raise TopologyError(
                f"level {self.name!r} oversubscription must be a number >= 1, got {o!r}",
                "give 1 for a non-blocking level and e.g. 7 for a 7:1 taper",
            )


@dataclass(frozen=True)
class Topology:
    """A cluster: ``num_hosts`` hosts, each with ``local_size`` ranks, plus link numbers.

    Units: ``intra_bw``/``inter_bw``/``hbm_bw`` bytes/s per rank per direction,
    ``intra_latency``/``inter_latency`` seconds per collective, ``flop_rate`` FLOP/s per rank.
    """

    num_hosts: int
    local_size: int
    intra_bw: float | None = None
    inter_bw: float | None = None
    intra_latency: float | None = None
    inter_latency: float | None = None
    levels: tuple[Level, ...] = field(default=())
    name: str | None = None
    hbm_bw: float | None = None
    flop_rate: float | None = None

    def __post_init__(self) -> None:
        for attr in ("num_hosts", "local_size"):
            _positive_int(
                attr, getattr(self, attr), "give at least one host and one rank per host, e.g. '2x4'"
            )
        if self.num_hosts * self.local_size > MAX_WORLD_SIZE:
            raise TopologyError(
                f"topology {self.num_hosts}x{self.local_size} has {self.num_hosts * self.local_size:,} ranks; "
                f"at most {MAX_WORLD_SIZE:,} are supported",
                "give the hosts and ranks per host of a real cluster, e.g. '2x4' or 'h100:64'")
        for attr in _OPTIONAL_FLOATS:
            _check_float(attr, getattr(self, attr), allow_zero=attr.endswith("latency"))
        levels = tuple(Level(**lv) if isinstance(lv, Mapping) else lv for lv in self.levels)
        object.__setattr__(self, "levels", levels)
        previous, seen = 1, set()
        for lv in levels:
            if not isinstance(lv, Level):
                raise TopologyError(f"levels must be Level values, got {lv!r}", "use Level(name, hosts)")
            if lv.name in seen:
                raise TopologyError(f"level {lv.name!r} given twice", "give each level once")
            seen.add(lv.name)
            if lv.hosts <= previous or lv.hosts % previous:
                raise TopologyError(
                    f"level {lv.name!r} groups {lv.hosts} hosts, which is not a multiple above "
                    f"the level below it ({previous} hosts)",
                    "list levels innermost first, each grouping a whole number of the one below",
                )
            if self.num_hosts > lv.hosts and self.num_hosts % lv.hosts:
                raise TopologyError(
                    f"{self.num_hosts} hosts do not fill whole {lv.name}s of {lv.hosts} hosts",
                    f"use a multiple of {lv.hosts} hosts, or at most {lv.hosts}",
                )
            previous = lv.hosts

    # ---- derived quantities -------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.num_hosts * self.local_size

    def _check_rank(self, rank: int) -> None:
        if not isinstance(rank, int) or not 0 <= rank < self.world_size:
            raise TopologyError(
                f"rank {rank!r} is outside topology {self} (world size {self.world_size})",
                f"give a rank in 0..{self.world_size - 1}",
            )

    def host_of(self, rank: int) -> int:
        return rank // self.local_size

    def local_of(self, rank: int) -> int:
        return rank % self.local_size

    def peer_group(self, rank: int) -> tuple[int, ...]:
        """Ranks with the same local index on every host (the cross-host group)."""
        local = self.local_of(rank)
        return tuple(h * self.local_size + local for h in range(self.num_hosts))

    def intra_group(self, rank: int) -> tuple[int, ...]:
        """Ranks on the same host as `rank`."""
        host = self.host_of(rank)
        return tuple(host * self.local_size + i for i in range(self.local_size))

    def group_of(self, rank: int, level: str) -> int:
        """Index of the `level` group ("host" or a level name) that holds `rank`."""
        self._check_rank(rank)
        if level == "host":
            return self.host_of(rank)
        for lv in self.levels:
            if lv.name == level:
                return self.host_of(rank) // lv.hosts
        raise TopologyError(
            f"topology {self} has no level {level!r}",
            f"use one of {['host', *[lv.name for lv in self.levels]]}",
        )

    @property
    def active_levels(self) -> tuple[Level, ...]:
        """Levels whose groups are smaller than the cluster (the others collapse)."""
        return tuple(lv for lv in self.levels if lv.hosts < self.num_hosts)

    @property
    def mesh_shape(self) -> tuple[int, ...]:
        """Shape of :meth:`device_mesh` with ``levels=True``, outermost dimension first."""
        spans = [lv.hosts for lv in self.active_levels]  # innermost first
        if not spans:
            return (self.num_hosts, self.local_size)
        outer = [self.num_hosts // spans[-1]]
        outer += [spans[i] // spans[i - 1] for i in range(len(spans) - 1, 0, -1)]
        return (*outer, spans[0], self.local_size)

    @property
    def mesh_dim_names(self) -> tuple[str, ...]:
        return (*(lv.name for lv in reversed(self.active_levels)), "host", "local")

    def network_taper(self) -> float:
        """Worst per-tier slowdown of uniform cross-host traffic (dimensionless, >= 1).

        A fraction f_k = 1 - hosts_k/N of a rank's bytes leaves its level-k group at
        inter_bw/σ_k, against f_0 = (N-1)/N leaving the host at inter_bw; the taper is
        max(1, max_k σ_k·f_k / f_0) (Thakur et al. 2005).
        """
        n = self.num_hosts
        if n == 1:
            return 1.0
        f0 = (n - 1) / n
        worst = max((lv.oversubscription * (1 - lv.hosts / n) for lv in self.active_levels), default=0.0)
        return max(1.0, worst / f0)

    def cross_latency(self) -> float | None:
        """Collective start-up across hosts: inter_latency plus the spanned levels' latency (s)."""
        if self.inter_latency is None:
            return None
        return self.inter_latency + sum(lv.latency for lv in self.active_levels)

    def get_bw(self, collective: str, world_size: int, local_world_size: int) -> float:
        """TorchRec's two-tier rule (TorchRec's planner constants (`torchrec/distributed/planner/constants.py`)), in bytes/s.

        all_reduce -> inter_bw x local_world_size; anything else -> intra_bw when the group fits
        in one host (world_size <= local_world_size), else inter_bw.
        """
        self.require("intra_bw", "inter_bw")
        if collective not in COLLECTIVES:
            raise TopologyError(f"unknown collective {collective!r}", f"use one of {list(COLLECTIVES)}")
        if collective == "all_reduce":
            return self.inter_bw * local_world_size  # type: ignore[operator]
        return self.intra_bw if world_size <= local_world_size else self.inter_bw  # type: ignore[return-value]

    def require(self, *attrs: str) -> None:
        """Raise TopologyError naming the missing link numbers, if any."""
        missing = [a for a in attrs if getattr(self, a) is None]
        if missing:
            raise TopologyError(
                f"topology {self} has no {', '.join(missing)} (no silent defaults)",
                "use a preset such as 'h100:64' or 'a100:16', or give the numbers in a dict spec "
                "(see `dmt-compile topo --help`)",
            )

    # ---- construction and serialisation -------------------------------------------------
    def with_world_size(self, gpus: int) -> "Topology":
        """The same cluster kind with `gpus` ranks (a whole number of hosts)."""
        _positive_int("gpus", gpus, "give a positive GPU count")
        if gpus % self.local_size:
            raise TopologyError(
                f"{gpus} GPUs is not a whole number of hosts of {self.local_size}",
                f"use a multiple of {self.local_size}",
            )
        return replace(self, num_hosts=gpus // self.local_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["levels"] = [asdict(lv) for lv in self.levels]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ---- runtime --------------------------------------------------------------------------
    def device_mesh(self, device_type: str = "cpu", *, levels: bool = False):
        """Build the torch DeviceMesh of this topology on the initialised default group.

        Dims are ``("host", "local")``: ``mesh.get_group("host")`` is the peer (rail) group of
        a rank, ``mesh.get_group("local")`` its intra-host group. With ``levels=True`` the
        active levels come first, e.g. ``("pod", "rack", "host", "local")``, and "host" then
        indexes hosts within the innermost level group.
        """
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh

        if not dist.is_available() or not dist.is_initialized():
            raise TopologyError(
                "device_mesh() needs an initialised default process group",
                "call torch.distributed.init_process_group(...) first (gloo on CPU)",
            )
        if dist.get_world_size() != self.world_size:
            raise TopologyError(
                f"process group has {dist.get_world_size()} ranks but topology {self} has "
                f"{self.world_size}",
                "start as many processes as the topology has ranks",
            )
        if levels:
            shape, names = self.mesh_shape, self.mesh_dim_names
        else:
            shape, names = (self.num_hosts, self.local_size), ("host", "local")
        return init_device_mesh(device_type, shape, mesh_dim_names=names)

    def __str__(self) -> str:
        return f"{self.num_hosts}x{self.local_size}"
