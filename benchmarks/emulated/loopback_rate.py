"""The loopback rate of gloo's intra-host reduce-scatter and all-gather: a micro-benchmark for the step model.

TorchRec's table-wise-row-wise sharding (TWRW) reduce-scatters every host's pooled partial sums
inside the host and all-gathers their gradients back; on the emulated bench both run between
processes of one network namespace, over loopback TCP, at a rate no tc shaping sets. The step
model (`dmt_compile.topo.cost_fit`, ``StepParams.loopback``) prices those bytes at the rate this
script measures: `ranks` processes on this box, gloo, `reduce_scatter_tensor` of an `mbytes` input
per rank and `all_gather_into_tensor` back, repeated; the rate is the bytes a rank sends per
collective ((ranks - 1) / ranks of its input) over the median wall time. It runs no bench and
needs no root; other jobs on the box slow it (the load is printed with it).

    python -m benchmarks.emulated.loopback_rate --mbytes 13.6 --reps 10 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, ranks: int, nbytes: int, reps: int, port: int, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    n = nbytes // 4 // ranks * ranks
    x, part = torch.ones(n), torch.empty(n // ranks)
    times = {"reduce_scatter": [], "all_gather": []}
    for i in range(reps + 1):
        for name in times:
            dist.barrier()
            t = time.perf_counter()
            if name == "reduce_scatter":
                dist.reduce_scatter_tensor(part, x)
            else:
                dist.all_gather_into_tensor(x, part)
            if i:  # the first round connects
                times[name].append(time.perf_counter() - t)
    if rank == 0:
        out.put({k: statistics.median(v) for k, v in times.items()})
    dist.destroy_process_group()


def measure(mbytes: float = 13.6, ranks: int = 2, reps: int = 10, port: int = 29611) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    nbytes = int(mbytes * 1e6)
    procs = [ctx.Process(target=_worker, args=(r, ranks, nbytes, reps, port, q)) for r in range(ranks)]
    load = os.getloadavg()[0]
    for p in procs:
        p.start()
    med = q.get()
    for p in procs:
        p.join()
    sent = nbytes * (ranks - 1) / ranks
    return {"input_bytes_per_rank": nbytes, "ranks": ranks, "reps": reps, "median_s": med,
            "rate_bytes_per_s": {k: sent / v for k, v in med.items()},
            "loopback_bytes_per_s": sent / statistics.fmean(med.values()),
            "load_before": load, "load_after": os.getloadavg()[0], "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mbytes", type=float, default=13.6, help="reduce-scatter input per rank, MB")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res = measure(args.mbytes, args.ranks, args.reps)
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
