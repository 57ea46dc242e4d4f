"""The cost model's prediction of every benchmarked step: compute calibrated here, network probed.

Before the emulation starts, :func:`calibrate_runs` builds each strategy's single-process model
at the per-rank batch and measures its training step on this machine
(:func:`dmt_compile.topo.calibrate.time_parts`: CPU seconds of one thread, split into dense part,
Tower Modules, decoders and lookups, plus the optimizer step). A rank of a balanced run does
the same work as that one process: its share of every lookup and Tower Module adds up to one
process's worth, and the dense part and decoders are data-parallel. :func:`predict` then
evaluates ``predict_flat`` / ``predict_sptt`` with those compute terms (per sample), ``k`` = 1 /
the CPU share a rank gets while all ranks compute (measured by the workers before and after the
run: ~cores / ranks on an idle box, less when other jobs share it), three start-ups per id exchange, the probed loopback bandwidth and
latencies, and the NIC rate shared by the host's L ranks (or the probed cross-host rate if the
CPU cannot push that much). The prediction is the sum of the terms: stages do not overlap.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["calibrate_runs", "predict", "part_of_names"]

MEM_BW = 10e9  # bytes/s for the cost model's memory templates (lookup rows, permutes) on one CPU core


def part_of_names(tm: set[str], decoders: set[str], lookups: set[str]):
    """``part_of(parents)`` for module-tracker names: tm > decoder > lookup > dense."""
    def part_of(parents: set[str]) -> str:
        names = {p.rsplit("graph_module.", 1)[-1] for p in parents}
        for part, keys in (("tm", tm), ("decoder", decoders), ("lookup", lookups)):
            if names & keys:
                return part
        return "dense"
    return part_of


def _parts(strategy: str, c: float | None, opts: Any) -> dict[str, Any]:
    from dmt_compile.topo.calibrate import time_parts
    from benchmarks.emulated.worker import _load, _transform, tower_info
    from dmt_compile.tools.verify import first_tensor

    model, inputs = _load(opts.spec, opts.per_rank_batch)
    torch.manual_seed(opts.seed)
    dmt = _transform(strategy, c, opts, model, inputs)
    gm = dmt.graph_module
    embedding = (torch.nn.Embedding, torch.nn.EmbeddingBag)
    names = {n for n, m in gm.named_modules() if isinstance(m, embedding) or "EmbeddingBagCollection" in type(m).__name__}
    tm = {n for n, _ in gm.named_modules() if n.endswith("_tm") or n.endswith("_feed")}
    dec = {n for n, _ in gm.named_modules() if n.endswith("_decoder")}
    labels = (torch.rand(opts.per_rank_batch, 1, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    opt = torch.optim.SGD(dmt.parameters(), lr=opts.lr)

    def forward() -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(first_tensor(dmt(*inputs)).reshape(-1, 1), labels)

    def step() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = time_parts(forward, step, part_of_names(tm, dec, names))
    numel = {k: sum(p.numel() for n, p in gm.named_parameters() if any(n.startswith(m + ".") for m in group))
             for k, group in (("tables", names), ("tm", tm))}
    total = sum(p.numel() for p in gm.parameters())
    return {"times": times.to_dict(), "params": total, "table_params": numel["tables"], "tm_params": numel["tm"],
            "dense_params": total - numel["tables"] - numel["tm"], "towers": tower_info(dmt)}


def calibrate_runs(runs: list[tuple[str, float | None]], opts: Any, log=None) -> dict[str, Any]:
    """Per run key: measured compute (see module docstring). TorchRec uses flat's (the same model)."""
    from benchmarks.emulated.worker import run_key

    out: dict[str, Any] = {}
    for strategy, c in runs:
        if strategy == "torchrec_tw":
            continue
        out[run_key(strategy, c)] = _parts(strategy, c, opts)
        if log:
            t = out[run_key(strategy, c)]["times"]["seconds"]
            log(f"calibrated {run_key(strategy, c)}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items()))
    if "flat" in out:
        out.setdefault("torchrec_tw", out["flat"])
    return out


def predict(row: dict[str, Any], calib: dict[str, Any], *, num_hosts: int, local_size: int, rate_bits: float,
            probe: dict[str, float], ranks_per_core: float, delay_s: float = 0.0) -> dict[str, Any]:
    """The cost model's step (and exchange) time for one report row."""
    from dmt_compile.topo.cost_model import predict_flat, predict_sptt
    from dmt_compile.topo.cost_symbols import CostParams
    from dmt_compile.topo.topology import Topology
    from benchmarks.emulated.analysis import WIRE_EFFICIENCY

    N, L, b = num_hosts, local_size, row["batch_per_rank"]
    W = N * L
    sec, towers = calib["times"]["seconds"], calib["towers"]
    nic = rate_bits / 8 / L
    inter = min(nic, probe["cross_bw"] / WIRE_EFFICIENCY) if probe.get("cross_bw") else nic
    topo = Topology(N, L, intra_bw=probe.get("intra_bw", 5e8), inter_bw=inter,
                    intra_latency=probe.get("intra_latency", 2e-4),
                    inter_latency=probe.get("cross_latency", 2e-4) + 2 * delay_s, hbm_bw=MEM_BW, flop_rate=1e10)
    params = CostParams(eta_intra=1.0, eta_inter=WIRE_EFFICIENCY, ranks_per_device=ranks_per_core, id_collectives=3)
    held = calib["table_params"] / W + calib["dense_params"] + calib["tm_params"] / N
    ids = sum(t["ids"] for t in towers)
    flat = row["strategy"] in ("flat", "torchrec_tw")
    per_rank_ids = b * ids if flat else N * b * max(sum(t["ids"] for t in towers if t["host"] == h) for h in range(N))
    compute = {"t_d": sec.get("dense", 0.0) / b, "t_x": sec.get("decoder", 0.0) / b,
               "t_t": sec.get("tm", 0.0) / (N * b), "t_l": sec.get("lookup", 0.0) / max(1, per_rank_ids),
               "t_o": sec.get("optimizer", 0.0) * held / max(1, calib["params"]), "M_d": calib["dense_params"]}
    if flat:
        widths = [t["width_in"] / max(1, t["ids"]) for t in towers for _ in range(t["ids"])]
        compute.pop("t_x"), compute.pop("t_t")
        out = predict_flat(topo, batch_per_rank=b, feature_widths=widths, ids_per_sample=[1.0] * len(widths),
                           strategy="flat", host_split="table", params=params, compute=compute)
    else:
        tm = row["strategy"] == "sptt_tm"
        out = predict_sptt(topo, batch_per_rank=b, tower_in_widths=[t["width_in"] for t in towers],
                           ids_per_sample=[t["ids"] for t in towers], tower_hosts=[t["host"] for t in towers],
                           tower_out_widths=[t["width_out"] for t in towers] if tm else None,
                           tm_flops_per_sample=[0.0] * len(towers) if tm else None,
                           tm_params=[calib["tm_params"] / max(1, len(towers))] * len(towers) if tm else None,
                           params=params, compute=compute)
    exchange = out["id_dist"] + out["id_intra"] + out["emb_intra"] + out["emb_dist"]
    return {"predicted_step_s": out["total"], "predicted_exchange_s": exchange,
            "predicted_terms": {k: v for k, v in out.items() if v}}
