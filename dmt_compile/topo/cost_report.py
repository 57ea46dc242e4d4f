"""Strategy comparison and GPU-count sweeps of the cost model, as rows, tables, JSON, plots.

:func:`compare` prices every strategy for one topology and one embedding configuration;
towers for SPTT are a real tower plan's (:class:`PlanTowers`: `dmt-compile dump` and
`cost --model` price the plan `transform` builds, so both print the same numbers) or else the
hosts' equal shares of the features (:func:`split_features`), and SPTT+TM with compression c
shrinks each tower's output to the plan's width out, or width/c without a plan.
:func:`sweep` repeats it over GPU counts of the same cluster kind. Times are microseconds
in tables and seconds in JSON; speedup = flat total / strategy total.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tabulate import tabulate

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_exprs import TERMS
from dmt_compile.topo.cost_limits import check_config, check_rows
from dmt_compile.topo.cost_model import predict_flat, predict_sptt, split_features
from dmt_compile.topo.cost_symbols import CostParams
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["Config", "PlanTowers", "compare", "sweep", "tower_loads", "compare_table", "format_compare", "format_sweep", "report_json",
           "strategy_label", "DEFAULT_STRATEGIES"]

log = logging.getLogger(__name__)
DEFAULT_STRATEGIES = ("flat", "rw", "twrw", "sptt", "sptt_tm")


@dataclass(frozen=True)
class PlanTowers:
    """The towers of a real tower plan: per tower its host, the elements per sample entering it and its
    ids per sample (and rows read per sample, default the width); `widths_out`: for each priced
    compression c, `(c, elements per sample leaving each tower)` as the plan for that c builds them."""

    hosts: tuple[int, ...]
    widths_in: tuple[float, ...]
    ids: tuple[float, ...]
    rows: tuple[float, ...] | None = None
    widths_out: tuple[tuple[float, tuple[float, ...]], ...] = ()

    def out_for(self, c: float) -> list[float]:
        """Elements per sample leaving each tower at compression `c` (width/c where no plan was given)."""
        for cc, widths in self.widths_out:
            if cc == c:
                return list(widths)
        return [w / c for w in self.widths_in]

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "widths_in": list(self.widths_in), "ids": list(self.ids),
                "rows": None if self.rows is None else list(self.rows),
                "widths_out": {f"{c:g}": list(w) for c, w in self.widths_out}}


@dataclass(frozen=True)
class Config:
    """The embedding stage being priced (widths in elements, ids = pooling factors)."""

    feature_widths: tuple[float, ...]
    batch_per_rank: int
    ids_per_sample: tuple[float, ...] | None = None
    compressions: tuple[float, ...] = (4.0, 16.0)
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    host_split: str = "column"
    bytes_per_element: int = 4
    params: CostParams = field(default_factory=CostParams)
    towers: PlanTowers | None = None  # a real plan's towers (None: the hosts' equal shares, `host_split`)

    def __post_init__(self) -> None:
        bad = [s for s in self.strategies if s not in DEFAULT_STRATEGIES]
        if bad or not self.strategies:
            raise CostModelError(f"unknown strategies {bad}", f"choose from {list(DEFAULT_STRATEGIES)}")
        check_config(self.feature_widths, self.batch_per_rank, self.ids_per_sample, self.compressions,
                     self.bytes_per_element)

    def to_dict(self) -> dict[str, Any]:
        return {"feature_widths": list(self.feature_widths), "batch_per_rank": self.batch_per_rank,
                "ids_per_sample": None if self.ids_per_sample is None else list(self.ids_per_sample),
                "compressions": list(self.compressions), "strategies": list(self.strategies),
                "host_split": self.host_split, "bytes_per_element": self.bytes_per_element,
                "params": self.params.to_dict(), "towers": None if self.towers is None else self.towers.to_dict()}


def strategy_label(strategy: str, c: float | None = None) -> str:
    return f"sptt_tm(c={c:g})" if c is not None else strategy


def tower_loads(topology: Topology, config: Config) -> dict[str, list]:
    """`predict_sptt`'s tower keywords: the plan's towers when `config` has them, else the hosts' shares."""
    if config.towers is not None:
        t = config.towers
        return dict(tower_in_widths=list(t.widths_in), ids_per_sample=list(t.ids),
                    rows_per_sample=list(t.rows) if t.rows is not None else None, tower_hosts=list(t.hosts))
    ids = list(config.ids_per_sample) if config.ids_per_sample is not None else [1.0] * len(config.feature_widths)
    per_host = split_features(config.feature_widths, ids, topology.num_hosts, config.host_split)
    hosts = [h for h, x in enumerate(per_host) if x[0] > 0]  # hosts that own a tower
    loads = [per_host[h] for h in hosts]
    return dict(tower_in_widths=[x[0] for x in loads], ids_per_sample=[x[1] for x in loads],
                rows_per_sample=[x[2] for x in loads], tower_hosts=hosts)


def _widths_out(config: Config, towers: dict[str, list], c: float) -> list[float]:
    if config.towers is not None:
        return config.towers.out_for(c)
    return [w / c for w in towers["tower_in_widths"]]


def compare(topology: "Topology | str", config: Config) -> dict[str, dict[str, float]]:
    """``{label: {term: seconds, ..., "total", "speedup"}}`` for every strategy of `config`."""
    topo = as_topology(topology)
    ids = list(config.ids_per_sample) if config.ids_per_sample is not None else [1.0] * len(config.feature_widths)
    common = dict(batch_per_rank=config.batch_per_rank, bytes_per_element=config.bytes_per_element,
                  params=config.params)
    rows: dict[str, dict[str, float]] = {}
    flat = predict_flat(topo, feature_widths=config.feature_widths, ids_per_sample=ids, **common)
    towers = tower_loads(topo, config)
    for s in config.strategies:
        if s == "flat":
            rows["flat"] = flat
        elif s in ("rw", "twrw"):
            rows[s] = predict_flat(topo, feature_widths=config.feature_widths, ids_per_sample=ids,
                                   strategy=s, host_split=config.host_split, **common)
        elif s == "sptt":
            rows["sptt"] = predict_sptt(topo, **towers, **common)
        else:
            for c in config.compressions:
                rows[strategy_label(s, c)] = predict_sptt(
                    topo, tower_out_widths=_widths_out(config, towers, c), **towers, **common)
    for r in rows.values():
        r["speedup"] = flat["total"] / r["total"] if r["total"] > 0 else float("inf")
    check_rows(rows, f" on {topo}")
    return rows


def sweep(topology: "Topology | str", gpus: Sequence[int], config: Config,
          config_for: "Callable[[Topology], Config] | None" = None) -> dict[int, dict[str, dict[str, float]]]:
    """:func:`compare` at each GPU count (same cluster kind, whole hosts only); `config_for(topology)`
    gives each count its own configuration (e.g. the towers a model's plan has on that topology)."""
    base = as_topology(topology)
    out = {}
    for n in gpus:
        topo = base.with_world_size(int(n))
        out[int(n)] = compare(topo, config_for(topo) if config_for is not None else config)
        log.debug("swept %s GPUs", n)
    return out


def _us(x: float) -> str:
    return f"{x * 1e6:.1f}"


def compare_table(rows: dict[str, dict[str, float]], width: int | None = None) -> str:
    """The strategies' terms in µs, each term in its own column (those non-zero for some strategy), then
    fwd, bwd, total and speedup; when that is wider than `width` columns, the same numbers transposed
    (one row per term, one column per strategy). `dmt-compile cost` and `dump` both print this table."""
    terms = [t for t in TERMS if any(r[t] > 0 for r in rows.values())]
    headers = ["strategy", *[f"{t} µs" for t in terms], "fwd µs", "bwd µs", "total µs", "speedup"]
    body = [[name, *[_us(r[t]) for t in terms], _us(r["fwd"]), _us(r["bwd"]), _us(r["total"]),
             f"{r['speedup']:.2f}x"] for name, r in rows.items()]
    wide = tabulate(body, headers=headers, tablefmt="github")
    if width is None or max(map(len, wide.splitlines())) <= width:
        return wide
    names = list(rows)
    tall = [[f"{t} µs", *[_us(rows[n][t]) for n in names]] for t in (*terms, "fwd", "bwd", "total")]
    tall.append(["speedup", *[f"{rows[n]['speedup']:.2f}x" for n in names]])
    return tabulate(tall, headers=["term", *names], tablefmt="github", colalign=("left", *["right"] * len(names)))


def format_compare(topology: Topology, rows: dict[str, dict[str, float]], width: int | None = None) -> str:
    title = f"topology {topology.name or 'custom'} {topology} ({topology.world_size} GPUs)"
    return title + "\n" + compare_table(rows, width) + "\n"


def format_sweep(topology: Topology, result: dict[int, dict[str, dict[str, float]]]) -> str:
    names = list(next(iter(result.values())))
    headers = ["GPUs", *[f"{n} µs" for n in names], *[f"{n} speedup" for n in names if n != "flat"]]
    body = [[g, *[_us(rows[n]["total"]) for n in names],
             *[f"{rows[n]['speedup']:.2f}x" for n in names if n != "flat"]] for g, rows in result.items()]
    title = f"sweep of {topology.name or 'custom'} ({topology.local_size} GPUs/host)"
    return title + "\n" + tabulate(body, headers=headers, tablefmt="github") + "\n"


def report_json(topology: Topology, config: Config, rows: Any, *, swept: bool = False) -> str:
    """Stable JSON (sorted keys) of a comparison or a sweep."""
    data = {"topology": topology.to_dict(), "config": config.to_dict(), "units": "seconds",
            ("sweep" if swept else "strategies"): {str(k): v for k, v in rows.items()} if swept else rows}
    return json.dumps(data, sort_keys=True, indent=2) + "\n"
