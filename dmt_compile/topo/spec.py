"""Topology specs: `"2x4"`, `"h100:64"` / `"h100:8x8"`, JSON text or a dict -> `Topology`."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any, Mapping

from dmt_compile.errors import TopologyError
from dmt_compile.topo.presets import preset_topology
from dmt_compile.topo.topology import Level, Topology

__all__ = ["as_topology", "parse_topology", "topology_from_dict", "topology_from_json"]


def topology_from_dict(data: Mapping[str, Any]) -> Topology:
    if not isinstance(data, Mapping):
        raise TopologyError(f"topology dict expected, got {type(data).__name__}", "pass a dict")
    data = dict(data)
    if "preset" in data:
        name = data.pop("preset")
        gpus = data.pop("gpus", None)
        hosts = data.pop("num_hosts", None)
        base = preset_topology(name, gpus, num_hosts=hosts, local_size=data.pop("local_size", None))
        return replace(base, **_known(data))
    if "num_hosts" not in data or "local_size" not in data:
        raise TopologyError(
            f"topology dict needs num_hosts and local_size (or preset), got keys {sorted(data)}",
            "write {'num_hosts': 2, 'local_size': 4} or {'preset': 'h100', 'gpus': 64}",
        )
    return Topology(**_known(data))

def topology_from_json(text: str) -> Topology:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopologyError(f"topology JSON does not parse: {exc}", "pass valid JSON") from exc
    return topology_from_dict(data)

def parse_topology(spec: "str | Mapping[str, Any]") -> Topology:
    if isinstance(spec, Mapping):
        return topology_from_dict(spec)
    if not isinstance(spec, str):
        raise TopologyError(
            f"topology spec must be a string or dict, got {type(spec).__name__}",
            "pass e.g. '2x4', 'h100:64' or a dict",
        )
    text = spec.strip()
    if text.startswith("{"):
        return topology_from_json(text)
    m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", text)
    if m:
        return Topology(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_.-]*)\s*(?::\s*(?:(\d+)\s*[xX]\s*(\d+)|(\d+)))?", text)
    if m and not text.isdigit():
        hosts, local, gpus = m.group(2), m.group(3), m.group(4)
        if hosts is not None:
            return preset_topology(m.group(1), None, num_hosts=int(hosts), local_size=int(local))
        if gpus is None:
            raise TopologyError(
                f"topology spec {spec!r} names a preset but no GPU count",
                f"write e.g. '{m.group(1)}:64' (64 GPUs) or '{m.group(1)}:8x8' (hosts x ranks)",
            )
        return preset_topology(m.group(1), int(gpus))
    raise TopologyError(
        f"malformed topology spec {spec!r}",
        "write NxL, e.g. '2x4' for 2 hosts with 4 ranks each, or PRESET:GPUS, e.g. 'h100:64'",
    )


def _known(data: dict[str, Any]) -> dict[str, Any]:
    allowed = set(Topology.__dataclass_fields__)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TopologyError(
            f"unknown topology keys {unknown}", f"use only {sorted(allowed | {'preset', 'gpus'})}"
        )
    out = dict(data)
    if "levels" in out:
        out["levels"] = tuple(Level(**lv) if isinstance(lv, Mapping) else lv for lv in out["levels"])
    return out


def as_topology(value: "Topology | str | Mapping[str, Any]") -> Topology:
    """Accept a Topology, a spec string, or a dict spec."""
    if isinstance(value, Topology):
        return value
    if isinstance(value, (str, Mapping)):
        return parse_topology(value)
    raise TopologyError(
        f"topology must be a Topology, a spec string or a dict, got {type(value).__name__}",
        "pass e.g. '2x4', 'h100:64' or dmt_compile.topo.Topology(2, 4)",
    )
