"""Train a transformed model with SPTT towers on torch.distributed (gloo on CPU, NCCL on GPUs).

On a cluster, one process per rank with torchrun (LOCAL_WORLD_SIZE must match the topology):

    torchrun --nnodes 2 --nproc-per-node 4 ... examples/train_distributed.py --topology 2x4

On GPUs (NCCL, one GPU per rank, tensors on cuda:LOCAL_RANK), add --device cuda (the default, auto,
picks cuda when torchrun's machine has CUDA and cpu otherwise); docs/GPU.md has the multi-node recipe.

On one box, the local launcher starts hosts x ranks processes itself:

    python examples/train_distributed.py --local --topology 2x2 --steps 6 \
        --checkpoint-dir ckpt --checkpoint-every 3          # ... and after a crash: add --resume

The loop is the usual one: `dmt_compile.distribute(dmt)` takes each rank's local batch in the
model's own call convention, gradients are synchronised during backward, any torch.optim
optimizer steps them. Checkpoints (DCP) hold the model, the optimizer, the RNG and the data
order (epoch and position of a shuffled sequence of batches), so a resumed run continues
bitwise where the interrupted one stopped. Rank 0 prints one line per start-up phase (transform,
distribute, resume) and progress every --log-every steps; with --local the model is transformed
in the launching process first, so a model that cannot be transformed fails in seconds.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import dmt_compile
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.errors import CheckpointError, CollectiveError, DmtError
from dmt_compile.training.checkpoint_run import CheckpointRun, check_root
from dmt_compile.training.log import TrainingLog
from dmt_compile.runtime.devices import check_device
from dmt_compile.runtime import HierarchicalGroups, init_from_env, launch_local
from dmt_compile.topo import as_topology

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dlrm.py") + ":factory"
OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}


class ShuffledBatches:
    """A resumable data order: `num_batches` global batches (MODEL_SPEC factory, seed 1000 + i),
    visited in a new random order every epoch. `state_dict()` is (epoch, position)."""

    def __init__(self, spec: str, global_batch: int, num_batches: int, seed: int = 0):
        self.spec, self.global_batch, self.num_batches, self.seed = spec, global_batch, num_batches, seed
        self.epoch, self.position = 0, 0

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num_batches, generator=g).tolist()

    def next(self) -> tuple[tuple, torch.Tensor]:
        index = self._order()[self.position]
        self.position += 1
        if self.position == self.num_batches:
            self.epoch, self.position = self.epoch + 1, 0
        _, inputs = load_model_spec(self.spec, batch_size=self.global_batch, seed=1000 + index)
        labels = (torch.rand(self.global_batch, 1, generator=torch.Generator().manual_seed(index)) > 0.5).float()
        return inputs, labels

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


def _resume(run: CheckpointRun, dist_model, opt, data: ShuffledBatches, rank: int) -> tuple[int, str | None]:
    """(first step, checkpoint resumed from): the newest intact checkpoint of the run, damage named."""
    extra, resumed_from, notes = run.resume(dist_model, opt)
    if rank == 0:
        for note in run.notes + notes:
            print(f"resume: {note}", flush=True)
    if resumed_from is None:
        return 0, None
    if not isinstance(extra, dict) or not isinstance(extra.get("step"), int) or "data" not in extra:
        raise CheckpointError(f"{resumed_from} was not written by this trainer (its extra is {extra!r:.80})",
                              "resume from a directory this script wrote")
    data.load_state_dict(extra["data"])
    return extra["step"], resumed_from


def _phase(rank: int, text: str, started: float) -> None:
    """One start-up progress line from rank 0 (every rank does the same work)."""
    if rank == 0:
        print(f"train_distributed: {text} ({time.monotonic() - started:.1f} s)", flush=True)


def _transform(args: argparse.Namespace, topo):
    model, inputs = load_model_spec(args.model, batch_size=topo.world_size * args.batch_per_rank, seed=0)
    torch.manual_seed(args.seed)  # Tower-Module weights (replicas are also broadcast from one rank)
    return dmt_compile.transform(model, topo, inputs, tower_module=args.tower_module,
                                 compression=None if args.tower_module == "identity" else args.compression)


def train(rank: int, args: argparse.Namespace, groups: HierarchicalGroups | None = None) -> dict:
    started = time.monotonic()
    topo = as_topology(args.topology)
    groups = groups or HierarchicalGroups.build(topo)
    world, b = topo.world_size, args.batch_per_rank
    _phase(rank, f"{world} ranks joined ({dist.get_backend()}, {topo})", started)
    dmt = _transform(args, topo)
    towers = dmt.plan.num_towers
    _phase(rank, f"transformed: {towers} tower{'s' if towers != 1 else ''}", started)
    dist_model = dmt_compile.distribute(dmt, groups, device=None if args.device == "auto" else args.device,
                                        pipeline_chunks=getattr(args, "pipeline_chunks", 1),
                                        dense_sync=getattr(args, "dense_sync", "world"))
    _phase(rank, f"distributed on {dist_model.device}: replicas broadcast, {len(dist_model.reducer.buckets)} "
                 "gradient buckets", started)
    opt = OPTIMIZERS[args.optimizer](dist_model.parameters(), lr=args.lr)
    data = ShuffledBatches(args.model, world * b, args.num_batches, seed=args.seed)
    run = CheckpointRun.open(dist_model, args.checkpoint_dir, resume=args.resume, overwrite=args.overwrite) \
        if args.checkpoint_dir else None
    try:
        return _train_steps(rank, args, dist_model, opt, data, run)
    finally:
        if run is not None:
            run.close(dist_model)


def _train_steps(rank: int, args: argparse.Namespace, dist_model, opt, data: ShuffledBatches,
                 run: CheckpointRun | None) -> dict:
    b = args.batch_per_rank
    start, resumed_from = _resume(run, dist_model, opt, data, rank) if args.resume else (0, None)
    if rank == 0 and run is not None and not args.resume:
        for note in run.notes:
            print(f"checkpoints: {note}", flush=True)
    crash_step, crash_rank = args.simulate_crash or (None, None)
    log = TrainingLog(dist_model, args.steps, every=args.log_every, first_step=start)
    if rank == 0 and resumed_from:
        print(f"train_distributed: resumed from {resumed_from} at step {start}", flush=True)
    saved = []
    for step in range(start, args.steps):
        if step + 1 == crash_step and rank == crash_rank:
            os.kill(os.getpid(), signal.SIGKILL)  # --simulate-crash: this rank dies without a word
        batch, labels = data.next()
        local = dist_model.local_batch(*batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            dist_model(*local).reshape(-1, 1), labels[rank * b:(rank + 1) * b].to(dist_model.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.step(step + 1, loss.detach(), samples=b)
        every = args.checkpoint_every or args.steps  # without --checkpoint-every: once, at the end
        if run is not None and (step + 1) % every == 0:
            saved.append(run.save(dist_model, step + 1, optimizer=opt,
                                  extra={"step": step + 1, "data": data.state_dict()}))
    log.close(f"checkpoints: {', '.join(saved)}" if saved else "")
    return {"rank": rank, "describe": dist_model.describe(), "saved": saved, "start": start}


def _crash(text: str) -> tuple[int, int]:
    step, _, rank = text.partition(":")
    return int(step), int(rank or 0)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="MODEL_SPEC, path/to/file.py:factory (default: DLRM)")
    p.add_argument("--topology", default="2x2", help="hosts x ranks per host (default 2x2)")
    p.add_argument("--tower-module", default="identity", help="identity (default), linear, dot, cross, wukong")
    p.add_argument("--compression", type=float, default=4, help="compression of a compressing Tower Module")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="torch.optim optimizer")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cuda: NCCL, one GPU per rank (cuda:LOCAL_RANK); cpu: gloo; auto (default): cuda when "
                        "CUDA is available under torchrun, cpu with --local unless --device cuda")
    p.add_argument("--pipeline-chunks", type=int, default=1, metavar="K",
                   help="run each step as K micro-batches whose exchanges overlap compute (default 1: off)")
    p.add_argument("--dense-sync", choices=("world", "hierarchical", "hierarchical_async"), default="world",
                   help="all-reduce of dense gradients (default world; see distribute)")
    p.add_argument("--steps", type=int, default=6, help="training steps in all (default 6)")
    p.add_argument("--batch-per-rank", type=int, default=8, help="samples per rank and step (default 8)")
    p.add_argument("--num-batches", type=int, default=4, help="global batches per epoch (shuffled every epoch)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of Tower-Module weights and the data order")
    p.add_argument("--log-every", type=int, default=1, help="print a progress line every K steps (rank 0)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="write DCP checkpoints to DIR/step_NNNNNN (DIR/latest names the newest)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="checkpoint every K steps (default with --checkpoint-dir: once, after the last step)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --checkpoint-dir from its latest checkpoint (the newest intact one "
                        "if latest is damaged); refused if the directory holds no run")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a --checkpoint-dir that holds another run (its checkpoints are "
                        "deleted) or other files (left untouched)")
    p.add_argument("--simulate-crash", type=_crash, default=None, metavar="STEP:RANK",
                   help="SIGKILL rank RANK at the start of step STEP (to try --resume)")
    p.add_argument("--local", action="store_true", help="start all ranks on this machine")
    return p


def _report(exc: BaseException, rank: int) -> None:
    """A failure, once: the root cause of a local launch; rank 0's error under torchrun."""
    failures = getattr(exc, "failures", None)
    if failures:
        first = sorted(failures.values(), key=lambda f: (f.kind == "killed", f.is_consequence, f.elapsed_s))[0]
        what = f"{first.exc_type}: {first.message}" if first.kind == "raised" else first.describe().splitlines()[0]
        print(f"train_distributed: error: rank {first.rank}: {what}\n"
              f"  ({len(failures)} of the ranks failed; the others because of it)", file=sys.stderr)
    elif rank == 0 or not isinstance(exc, DmtError):
        print(f"train_distributed: error on rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    if args.resume and not args.checkpoint_dir:
        get_parser().error("--resume needs --checkpoint-dir")
    if args.checkpoint_every and not args.checkpoint_dir:
        get_parser().error("--checkpoint-every needs --checkpoint-dir (where to write the checkpoints)")
    if args.checkpoint_every < 0:
        get_parser().error(f"--checkpoint-every must be >= 0, not {args.checkpoint_every}")
    if args.resume and args.overwrite:
        get_parser().error("--resume continues a run, --overwrite starts a new one: pass one of them")
    rank = int(os.environ.get("RANK", "0"))
    try:
        if args.checkpoint_dir:  # refused in seconds, before any rank starts
            check_root(args.checkpoint_dir, args.resume, args.overwrite)
    except CheckpointError as exc:
        print(f"train_distributed: error: CheckpointError: {exc}", file=sys.stderr)
        return 2
    try:
        topo = as_topology(args.topology)
        if args.device == "cuda":
            check_device("cuda", topo.local_size)
        if args.local:
            started = time.monotonic()
            _transform(args, topo)  # in this process first: errors in seconds, before any rank starts
            backend = "nccl" if args.device == "cuda" else "gloo"
            _phase(0, f"transformed in this process; starting {topo.world_size} ranks ({backend})", started)
            launch_local(train, topo, args=(args,), timeout_s=600, backend=backend)
        else:
            backend = {"auto": None, "cuda": "nccl", "cpu": "gloo"}[args.device]
            groups = init_from_env(topo, backend)
            train(groups.rank, args, groups)
    except (DmtError, CollectiveError) as exc:
        _report(exc, rank)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
