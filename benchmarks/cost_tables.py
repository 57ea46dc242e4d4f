"""End-to-end step predictions of the cost model on DGX clusters, compute terms included.

    python benchmarks/cost_tables.py --topology h100 --gpus 16,64,512 [--batch 1024] [--op-time 4e-6]

The embedding stage is docs/COST_MODEL.md §5's (26 features, D = 128, fp32, one id each); the
dense part is MLPerf's DLRM (bottom 13-512-256-128, dot interaction, top 1024-1024-512-256-1).
Compute per sample comes from FLOPs at an achieved rate (``--tflops``, default 200: ~40 % of
an H100's TF32 peak for these GEMM sizes) plus a fixed cost per operator (``--op-time``: a kernel
launch in eager PyTorch, ~4 us; 0 models CUDA graphs), with the operator counts below. SPTT+TM
rows: the linear Tower Module (D_t -> D_t/c on N*b rows per rank) either with per-tower
decoders (o_t -> D_t on b rows, then the full 27-vector interaction) or with the hierarchical
feed (the interaction over towers x ceil(F_t/c) + 1 vectors and a top MLP rebuilt for that
width, no decoders). Prints markdown tables (times in ms per step, speedup vs flat, flat's wire
share).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmt_compile.topo import as_topology  # noqa: E402
from dmt_compile.topo.cost_model import predict_flat, predict_sptt, split_features  # noqa: E402

FEATURES, DIM = 26, 128
BOTTOM = (13, 512, 256, 128)
TOP = (1024, 1024, 512, 256, 1)
OPS_PER_LINEAR = 6  # fwd addmm + relu; bwd 2 mm, bias sum, relu backward
OPS_FIXED = 30  # interaction (stack, bmm, index, cat and their backward), loss, optimizer (foreach)


def dense_flops(vectors: int) -> float:
    """Forward FLOPs per sample of the dense part with `vectors` interaction inputs (incl. the bottom output)."""
    mlp = lambda dims: sum(2 * a * b for a, b in zip(dims, dims[1:]))  # noqa: E731
    top_in = vectors * (vectors - 1) // 2 + DIM
    return mlp(BOTTOM) + 2 * vectors * vectors * DIM + mlp((top_in,) + TOP)


def dense_ops() -> int:
    return OPS_PER_LINEAR * (len(BOTTOM) - 1 + len(TOP)) + OPS_FIXED


def _t(fwd_flops_per_sample: float, ops: float, b: int, rate: float, op_time: float) -> float:
    """fwd + bwd seconds per sample: 3x the forward FLOPs, plus the operators' fixed cost spread over b."""
    return 3 * fwd_flops_per_sample / rate + ops * op_time / b


def rows(topo, b: int, rate: float, op_time: float, compressions=(4.0, 16.0)) -> dict[str, dict]:
    widths = [float(DIM)] * FEATURES
    loads = [x for x in split_features(widths, [1.0] * FEATURES, topo.num_hosts) if x[0] > 0]
    hosts = [h for h, x in enumerate(split_features(widths, [1.0] * FEATURES, topo.num_hosts)) if x[0] > 0]
    towers = dict(tower_in_widths=[x[0] for x in loads], ids_per_sample=[x[1] for x in loads],
                  rows_per_sample=[x[2] for x in loads], tower_hosts=hosts)
    m_dense = sum(a * b_ + b_ for a, b_ in zip(BOTTOM, BOTTOM[1:])) + sum(
        a * b_ + b_ for a, b_ in zip((FEATURES * (FEATURES + 1) // 2 + DIM,) + TOP, TOP))
    base = {"t_d": _t(dense_flops(FEATURES + 1), dense_ops(), b, rate, op_time), "M_d": m_dense}
    out = {"flat": predict_flat(topo, batch_per_rank=b, feature_widths=widths, compute=base),
           "sptt": predict_sptt(topo, batch_per_rank=b, **towers, compute=base)}
    for c in compressions:
        o = [x[0] / c for x in loads]
        tm_ops = OPS_PER_LINEAR * len(loads)
        dec = dict(base, t_x=_t(sum(2 * oo * x[0] for oo, x in zip(o, loads)), tm_ops, b, rate, op_time),
                   M_d=m_dense + sum(oo * x[0] + x[0] for oo, x in zip(o, loads)))
        vectors = sum(math.ceil(x[0] / DIM / c) for x in loads) + 1
        hier = dict(base, t_d=_t(dense_flops(vectors), dense_ops(), b, rate, op_time))
        for name, compute in ((f"sptt_tm c={c:g} decoder", dec), (f"sptt_tm c={c:g} hierarchical", hier)):
            out[name] = predict_sptt(topo, batch_per_rank=b, tower_out_widths=o, **towers, compute=compute,
                                     tm_flops_per_sample=[2 * x[0] * oo for x, oo in zip(loads, o)])
            out[name]["vectors"] = vectors if "hier" in name else FEATURES + 1
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="h100")
    p.add_argument("--gpus", default="16,64,512")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--tflops", type=float, default=200.0)
    p.add_argument("--op-time", type=float, default=4e-6)
    args = p.parse_args(argv)
    for g in (int(x) for x in args.gpus.split(",")):
        topo = replace(as_topology(f"{args.topology}:{g}"), flop_rate=args.tflops * 1e12)  # achieved, not peak
        table = rows(topo, args.batch, args.tflops * 1e12, args.op_time)
        flat = table["flat"]
        share = flat["comm"] / flat["total"]
        print(f"\n{args.topology} x {g} GPUs ({topo}), b = {args.batch}, {args.tflops:g} TFLOP/s, "
              f"{args.op_time * 1e6:g} us/op; flat wire share {share:.3f}\n")
        print("| strategy | comm ms | compute ms | total ms | speedup vs flat |")
        print("|---|---|---|---|---|")
        for name, r in table.items():
            print(f"| {name} | {r['comm'] * 1e3:.3f} | {r['compute'] * 1e3:.3f} | {r['total'] * 1e3:.3f} | "
                  f"{flat['total'] / r['total']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
