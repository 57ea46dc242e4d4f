"""Hardware presets for :class:`~dmt_compile.topo.topology.Topology`, with sources.

Every bandwidth is bytes/s **per rank per direction**; latencies are seconds per collective;
``hbm_bw`` is the GPU memory bandwidth (bytes/s) and ``flop_rate`` the dense bf16/fp16 peak
(FLOP/s) used for Tower-Module compute. Sources, per preset:

* ``dgx1-v100`` -- DGX-1 (V100): NVLink2 hybrid cube-mesh, ~100 GB/s effective per GPU for
  all-to-all (6 links x 25 GB/s, not all-to-all connected); four 100 Gb IB NICs for 8 GPUs,
  i.e. 6.25 GB/s per GPU (NVIDIA DGX-1 whitepaper, 2nd-hand copies). HBM2 900 GB/s,
  125 TFLOP/s fp16 tensor (V100 datasheet).
* ``dgx2`` -- DGX-2 (16 x V100): 12 NVSwitch, 300 GB/s bidirectional per GPU -> 150 GB/s per
  direction; eight 100 Gb EDR NICs for 16 GPUs -> 6.25 GB/s per GPU (PCPer, AnandTech).
* ``dgx-a100`` -- DGX A100: NVLink3 600 GB/s total -> 300 GB/s per direction; 8 x HDR 200 Gb/s
  -> 25 GB/s per GPU (NVIDIA NVLink page; Tutel's Azure NDm A100 v4 testbed). HBM2e
  2039 GB/s (80 GB), 312 TFLOP/s bf16 (A100 datasheet).
* ``dgx-h100`` -- DGX H100: NVLink4 900 GB/s bidirectional -> 450 GB/s per direction;
  8 x CX-7 400 Gb/s -> 50 GB/s per GPU (DGX BasePOD RA; nccl-tests #267: 48-49 GB/s
  achievable). HBM3 3.35 TB/s, 989 TFLOP/s bf16 dense (H100 SXM datasheet).
* ``h800`` -- H800 as used by DeepSeek-V3: NVLink 160 GB/s, IB 50 GB/s (DeepSeek-V3 §3.2.2).
* ``grand-teton`` -- Meta Grand Teton (HGX H100, 8 x 400G backend NICs): H100 numbers plus a
  rack of 2 hosts, a non-blocking pod of 384 hosts (3,072 GPUs) and a 7:1 taper above the pod
  (Glenn Lockwood, "Meta's H100 clusters", 2nd-hand).
* ``torchrec-default`` -- TorchRec's planner constants for comparison: 600 GiB/s intra,
  12.5 GiB/s cross-node, 897 GiB/s HBM, zero latency, 8 ranks per host (TorchRec
  ``torchrec/distributed/planner/constants.py``).

Latencies (10 µs intra, 15 µs inter) are assumptions to calibrate, of the order of a small
single-node all_reduce (nccl-tests report ~13 µs at 8 B on 8 H100s).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from dmt_compile.errors import TopologyError
from dmt_compile.topo.topology import Level, Topology

__all__ = ["Preset", "PRESETS", "ALIASES", "preset_names", "get_preset", "preset_topology"]

GB = 1e9
GiB = 2.0**30


@dataclass(frozen=True)
class Preset:
    """Per-host hardware numbers of a cluster kind (see the module docstring for sources)."""

    name: str
    local_size: int
    intra_bw: float
    inter_bw: float
    intra_latency: float
    inter_latency: float
    hbm_bw: float
    flop_rate: float | None
    levels: tuple[Level, ...] = ()
    source: str = ""

    def topology(self, num_hosts: int, local_size: int | None = None) -> Topology:
        return Topology(
            num_hosts,
            self.local_size if local_size is None else local_size,
            intra_bw=self.intra_bw,
            inter_bw=self.inter_bw,
            intra_latency=self.intra_latency,
            inter_latency=self.inter_latency,
            levels=self.levels,
            name=self.name,
            hbm_bw=self.hbm_bw,
            flop_rate=self.flop_rate,
        )


_H100 = dict(intra_bw=450 * GB, inter_bw=50 * GB, intra_latency=10e-6, inter_latency=15e-6,
             hbm_bw=3350 * GB, flop_rate=989e12)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("dgx1-v100", 8, 100 * GB, 6.25 * GB, 10e-6, 15e-6, 900 * GB, 125e12,
               source="DGX-1 V100 whitepaper: NVLink2 cube-mesh, 4x100Gb IB per 8 GPUs"),
        Preset("dgx2", 16, 150 * GB, 6.25 * GB, 10e-6, 15e-6, 900 * GB, 125e12,
               source="DGX-2: 12 NVSwitch, 300 GB/s bidir per GPU, 8x100Gb EDR per 16 GPUs"),
        Preset("dgx-a100", 8, 300 * GB, 25 * GB, 10e-6, 15e-6, 2039 * GB, 312e12,
               source="DGX A100: NVLink3 600 GB/s total, 8x HDR 200Gb/s"),
        Preset("dgx-h100", 8, source="DGX H100: NVLink4 900 GB/s bidir, 8x CX-7 400Gb/s", **_H100),
        Preset("h800", 8, 160 * GB, 50 * GB, 10e-6, 15e-6, 3350 * GB, 989e12,
               source="DeepSeek-V3 report: NVLink 160 GB/s, IB 50 GB/s"),
        Preset("grand-teton", 8,
               levels=(Level("rack", 2), Level("pod", 384, oversubscription=7.0)),
               source="Meta Grand Teton: HGX H100; rack=2 hosts, pod=384 hosts, 7:1 above pod",
               **_H100),
        Preset("torchrec-default", 8, 600 * GiB, 12.5 * GiB, 0.0, 0.0, 897 * GiB, None,
               source="TorchRec planner/constants.py (INTRA/CROSS_NODE_BANDWIDTH, HBM_MEM_BW)"),
    )
}

#: Short names accepted in specs (lowercase; '_' and '-' are interchangeable).
ALIASES: dict[str, str] = {
    "v100": "dgx1-v100", "dgx1": "dgx1-v100", "dgx-1": "dgx1-v100",
    "dgx-2": "dgx2", "a100": "dgx-a100", "dgxa100": "dgx-a100",
    "h100": "dgx-h100", "dgxh100": "dgx-h100", "hgx-h100": "dgx-h100",
    "gt": "grand-teton", "grandteton": "grand-teton",
    "torchrec": "torchrec-default",
}


def preset_names() -> list[str]:
    """Canonical preset names, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """Look a preset up by name or alias; raise TopologyError naming the valid choices."""
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        raise TopologyError(
            f"unknown topology preset {name!r}",
            f"use one of {', '.join(preset_names())} (aliases: {', '.join(sorted(ALIASES))})",
        )
    return PRESETS[key]


def preset_topology(
    name: str,
    gpus: int | None,
    *,
    num_hosts: int | None = None,
    local_size: int | None = None,
) -> Topology:
    """A Topology of preset `name` with `gpus` ranks, or `num_hosts` x `local_size`.

    `gpus` must be a whole number of hosts of the preset's (or the given) local size; we fail
    loudly instead of rounding.
    """
    p = get_preset(name)
    local = p.local_size if local_size is None else local_size
    if num_hosts is None:
        if gpus is None:
            raise TopologyError(
                f"preset {p.name!r} needs a GPU count", f"write e.g. '{p.name}:{8 * p.local_size}'"
            )
        if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
            raise TopologyError(f"GPU count must be a positive integer, got {gpus!r}",
                                f"write e.g. '{p.name}:{8 * p.local_size}'")
        if gpus % local:
            raise TopologyError(
                f"{gpus} GPUs is not a whole number of {p.name} hosts of {local} GPUs",
                f"use a multiple of {local} (e.g. {max(local, gpus - gpus % local)})"
                + (f", or write '{p.name}:1x{gpus}' for one partly used host" if gpus < local else ""),
            )
        num_hosts = gpus // local
    elif gpus is not None and gpus != num_hosts * local:
        raise TopologyError(
            f"gpus={gpus} disagrees with {num_hosts} hosts x {local} ranks",
            "give either gpus or num_hosts/local_size",
        )
    return replace(p.topology(num_hosts, local))
