"""Where a rank's CPU goes in one training step: flat vs a DMT strategy, per op, all ranks on this box.

The bench's ranks (`worker.DmtRun`: same model, batch share, SGD, hierarchical dense sync) on
loopback, no shaped NIC: the wire is nearly free, so what is left is each strategy's CPU work --
where DMT's CPU seconds per step exceed flat's when the network does not dominate. Per run:
CPU seconds of the process per step (all threads, gloo's included: `time.process_time`), and
`torch.profiler`'s self CPU time per op on the profiled steps (the main thread's ops; gloo's
own threads show only as the waits of the collectives that started them), summed over ranks.

    python -m benchmarks.emulated.profile_step --runs flat,sptt_tm@4 --tower-module dot --feed hierarchical \
        --steps 12 --ops 15 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Any

import torch
import torch.distributed as dist

from benchmarks.emulated.model import MODEL_SPEC
from benchmarks.emulated.worker import BenchOptions, DmtRun


def _key(run: str) -> tuple:
    name, _, c = run.partition("@")
    return (name, float(c) if c else None, "fp32")


def profile_worker(rank: int, opts: BenchOptions, profiled: int, shapes: tuple = ()) -> dict[str, Any]:
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.topo import Topology

    torch.set_num_threads(1)
    groups = HierarchicalGroups.build(Topology(opts.num_hosts, opts.local_size))
    runs = {k: DmtRun(k[0], k[1], opts, groups, rank, k[2]) for k in opts.runs}
    out: dict[str, Any] = {}
    for k, run in runs.items():  # warm up every run first, then measure them interleaved
        for _ in range(opts.warmup):
            dist.barrier()
            run.step()
    cpu: dict[tuple, list[float]] = defaultdict(list)
    wall: dict[tuple, list[float]] = defaultdict(list)
    for _ in range(opts.steps):
        for k, run in runs.items():
            dist.barrier()
            c0, t0 = time.process_time(), time.perf_counter()
            run.step()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    for k, run in runs.items():
        dist.barrier()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=bool(shapes)) as prof:
            for _ in range(profiled):
                run.step()
        ops = {e.key: e.self_cpu_time_total / 1e3 / profiled for e in prof.key_averages()}
        by_shape = {f"{e.key} {e.input_shapes}": e.self_cpu_time_total / 1e3 / profiled
                    for e in prof.key_averages(group_by_input_shape=True) if e.key in shapes} if shapes else {}
        out["@".join(str(x) for x in k[:2] if x is not None)] = {
            "cpu_s": cpu[k], "step_s": wall[k], "ops_ms": ops, "batch_per_rank": run.batch_per_rank,
            "by_shape_ms": by_shape}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="flat,sptt_tm@4")
    ap.add_argument("--tower-module", default="dot")
    ap.add_argument("--feed", default="hierarchical")
    ap.add_argument("--topology", default="2x2")
    ap.add_argument("--per-rank-batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profiled", type=int, default=4)
    ap.add_argument("--ops", type=int, default=15)
    ap.add_argument("--shapes", default="", help="ops whose time rank 0 also breaks down by input shape")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology

    hosts, local = (int(x) for x in args.topology.split("x"))
    runs = tuple(_key(r) for r in args.runs.split(","))
    opts = BenchOptions(runs, MODEL_SPEC, hosts, local, args.per_rank_batch, args.steps, args.warmup,
                        feed=args.feed, tower_module=args.tower_module, probe=False)
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[0]
    results = launch_local(profile_worker, Topology(hosts, local), args=(opts, args.profiled, tuple(filter(None, args.shapes.split(",")))),
                           timeout_s=1200)
    with open("/proc/loadavg") as fh:
        load_after = fh.read().split()[0]
    report: dict[str, Any] = {"args": vars(args), "load": [load_before, load_after], "runs": {}}
    for name in results[0]:
        per_rank = [r[name] for r in results]
        cpu_all = [sum(r["cpu_s"][i] for r in per_rank) for i in range(args.steps)]
        ops: dict[str, float] = defaultdict(float)
        for r in per_rank:
            for op, ms in r["ops_ms"].items():
                ops[op] += ms
        report["runs"][name] = {"cpu_s_all_ranks": cpu_all, "step_s_rank0": per_rank[0]["step_s"],
                                "ops_ms_all_ranks": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}
    print(f"load {load_before} -> {load_after}; CPU seconds per step, all {hosts * local} ranks (median of {args.steps})")
    base = None
    for name, r in report["runs"].items():
        med = statistics.median(r["cpu_s_all_ranks"])
        base = base or med
        print(f"  {name:12s} {med * 1e3:8.1f} ms  ({med / base:.2f}x {next(iter(report['runs']))})")
    names = list(report["runs"])
    top = sorted({op for n in names for op in list(report["runs"][n]["ops_ms_all_ranks"])[:args.ops]},
                 key=lambda op: -max(report["runs"][n]["ops_ms_all_ranks"].get(op, 0) for n in names))
    print("\n| op (self CPU ms per step, all ranks) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for op in top:
        print(f"| `{op}` | " + " | ".join(f"{report['runs'][n]['ops_ms_all_ranks'].get(op, 0):.1f}" for n in names) + " |")
    for name in names:
        shaped = sorted(results[0][name]["by_shape_ms"].items(), key=lambda kv: -kv[1])[:12]
        if shaped:
            print(f"\nrank 0, {name}, by input shape (ms per step):")
            for key, ms in shaped:
                print(f"  {ms:7.2f}  {key}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
