"""GPU checks in one short run (single-GPU timings, then multi-GPU NCCL training); skips cleanly without CUDA.

    python benchmarks/gpu_check.py                       # on a machine with a CUDA GPU (about a minute)
    python benchmarks/gpu_check.py --out gpu_check.json  # also write the JSON
    python benchmarks/gpu_check.py --device cpu --batch 256 --reps 3   # the same code path on CPU (smoke)

Checks (every timing: CUDA events around ``reps`` calls after warm-up, median of ``trials``):

1. **overhead** of the transformed model (identity Tower Module, the single-process DmtModel)
   against the eager model, forward and forward + backward, at batch >= 4096, on the benchmark
   DLRM (26 features, D = 64) with the two runs interleaved; target <= 1.05x;
2. **Tower Module kernel**: the linear TM (c = 4) of one tower on ``N * b`` rows, forward +
   backward, with its achieved TFLOP/s;
3. **interaction kernel**: the DLRM dot interaction over F + 1 = 27 vectors (the flat model and
   decoder feed) against the hierarchical feed's fewer vectors (towers x ceil(F_t / c) + 1),
   forward + backward;
4. the **multi-rank NCCL tests** need >= 2 GPUs: with fewer they are reported as skipped; with
   >= 2 they run the suite's GPU tests (``pytest -m gpu``: verify and ``distribute`` on NCCL against
   one process) and then the torchrun + NCCL recipe of docs/GPU.md on N = min(GPUs, 8) ranks::

       torchrun --standalone --nproc-per-node N examples/train_distributed.py --topology 1xN --device cuda --steps 5

Prints one JSON document (``--markdown`` adds a table for docs/BENCHMARKS.md). Exit code 0 when
every check ran or was skipped for a stated reason.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from typing import Any, Callable

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _timer(device: torch.device) -> Callable[[Callable[[], Any], int, int], float]:
    """Seconds per call of fn (median over trials of reps calls)."""
    def run(fn: Callable[[], Any], reps: int, trials: int) -> float:
        for _ in range(2):
            fn()
        out = []
        for _ in range(trials):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(reps):
                    fn()
                end.record()
                torch.cuda.synchronize()
                out.append(start.elapsed_time(end) / 1e3 / reps)
            else:
                import time

                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                out.append((time.perf_counter() - t0) / reps)
        return statistics.median(out)
    return run


def check_overhead(device: torch.device, batch: int, reps: int, trials: int) -> dict[str, Any]:
    import dmt_compile
    from benchmarks.emulated.model import factory

    model, (dense, sparse) = factory(batch_size=batch)
    dmt = dmt_compile.transform(model, "2x4", (dense, sparse))  # identity Tower Modules
    model, dmt = model.to(device), dmt.to(device)
    dense, sparse = dense.to(device), {k: v.to(device) for k, v in sparse.items()}
    time_it = _timer(device)
    out: dict[str, Any] = {"batch": batch}
    for what in ("forward", "forward_backward"):
        def step(m):
            if what == "forward":
                return lambda: m(dense, sparse)
            return lambda: m(dense, sparse).sum().backward()

        ratios, eager, towered = [], [], []
        ctx = torch.no_grad() if what == "forward" else torch.enable_grad()
        with ctx:
            for i in range(trials):
                pair = (model, dmt) if i % 2 == 0 else (dmt, model)
                times = {id(m): time_it(step(m), reps, 1) for m in pair}
                eager.append(times[id(model)])
                towered.append(times[id(dmt)])
                ratios.append(towered[-1] / eager[-1])
        out[what] = {"eager_ms": statistics.median(eager) * 1e3, "dmt_ms": statistics.median(towered) * 1e3,
                     "ratio": statistics.median(ratios), "target": 1.05}
    return out


def check_tower_module(device: torch.device, batch: int, reps: int, trials: int, hosts: int = 8) -> dict[str, Any]:
    from torch import nn

    features, dim, c = 26 // 2, 64, 4
    width = features * dim
    rows = hosts * batch  # a tower sees N * b samples
    tm = nn.Linear(width, width // c).to(device)
    x = torch.randn(rows, width, device=device, requires_grad=True)
    sec = _timer(device)(lambda: tm(x).sum().backward(), reps, trials)
    flops = 3 * 2 * rows * width * (width // c)  # fwd + 2x bwd
    return {"rows": rows, "in": width, "out": width // c, "ms": sec * 1e3, "tflops": flops / sec / 1e12}


def _interaction(z: torch.Tensor) -> torch.Tensor:
    f = z.shape[1]
    rows, cols = torch.triu_indices(f, f, offset=1, device=z.device)
    return torch.bmm(z, z.transpose(1, 2))[:, rows, cols]


def check_interaction(device: torch.device, batch: int, reps: int, trials: int, towers: int = 2,
                      c: int = 4) -> dict[str, Any]:
    dim, features = 64, 26
    out = {}
    for name, vectors in (("flat_or_decoder", features + 1),
                          ("hierarchical", towers * math.ceil(features / towers / c) + 1)):
        z = torch.randn(batch, vectors, dim, device=device, requires_grad=True)
        sec = _timer(device)(lambda: _interaction(z).sum().backward(), reps, trials)
        out[name] = {"vectors": vectors, "ms": sec * 1e3,
                     "tflops": 3 * 2 * batch * vectors * vectors * dim / sec / 1e12}
    out["speedup"] = out["flat_or_decoder"]["ms"] / out["hierarchical"]["ms"]
    return out


def check_nccl() -> dict[str, Any]:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        return {"skipped": f"the multi-rank NCCL test needs >= 2 GPUs; found {n}"}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    ranks = min(n, 8)
    recipe = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
              "examples/train_distributed.py", "--topology", f"1x{ranks}", "--device", "cuda", "--steps", "5"]
    run = subprocess.run(recipe, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": ROOT})
    return {"returncode": tests.returncode, "tail": tests.stdout.strip().splitlines()[-1:],
            "torchrun": {"command": " ".join(recipe[1:]), "returncode": run.returncode,
                         "tail": (run.stdout + run.stderr).strip().splitlines()[-2:]}}


def markdown(report: dict[str, Any]) -> str:
    o, t, i = report["overhead"], report["tower_module"], report["interaction"]
    return "\n".join([
        f"GPU: {report['device_name']}, torch {report['torch']}",
        "",
        "| check | result |",
        "|---|---|",
        f"| overhead forward, batch {o['batch']} | {o['forward']['ratio']:.3f}x "
        f"({o['forward']['dmt_ms']:.2f} vs {o['forward']['eager_ms']:.2f} ms) |",
        f"| overhead forward+backward | {o['forward_backward']['ratio']:.3f}x "
        f"({o['forward_backward']['dmt_ms']:.2f} vs {o['forward_backward']['eager_ms']:.2f} ms) |",
        f"| TM linear c=4, {t['rows']} rows, {t['in']}->{t['out']}, fwd+bwd | {t['ms']:.2f} ms, "
        f"{t['tflops']:.1f} TFLOP/s |",
        f"| interaction {i['flat_or_decoder']['vectors']} vectors, fwd+bwd | {i['flat_or_decoder']['ms']:.2f} ms |",
        f"| interaction {i['hierarchical']['vectors']} vectors (hierarchical feed) | {i['hierarchical']['ms']:.2f} ms "
        f"({i['speedup']:.1f}x) |",
        f"| NCCL multi-rank | {report['nccl']} |",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke run of the same code)")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        report: dict[str, Any] = {"skipped": "no CUDA device: the single-GPU checks need one", "torch": torch.__version__}
    else:
        device = torch.device(args.device)
        report = {"device": str(device), "torch": torch.__version__, "batch": args.batch,
                  "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  "overhead": check_overhead(device, args.batch, args.reps, args.trials),
                  "tower_module": check_tower_module(device, args.batch, args.reps, args.trials),
                  "interaction": check_interaction(device, args.batch, args.reps, args.trials),
                  "nccl": check_nccl()}
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.markdown and "skipped" not in report:
        print(markdown(report))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
