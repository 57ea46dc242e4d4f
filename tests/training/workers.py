"""Top-level (picklable) rank workers for tests/training (run under launch_local)."""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def _bce(out, labels):
    return torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1, 1), labels)


def _batch(spec: str, world: int, per_rank: int, step: int):
    from dmt_compile.capture.model_spec import load_model_spec

    _, inputs = load_model_spec(spec, batch_size=world * per_rank, seed=100 + step)
    labels = (torch.rand(world * per_rank, 1, generator=torch.Generator().manual_seed(step)) > 0.5).float()
    return inputs, labels


def adam_matches_one_process(rank: int, spec: str, topology: str, steps: int, tm: str = "identity",
                             row_wise: str = "auto", lr: float = 1e-3, bucket_cap_mb: float = 25.0,
                             strategy: str = "sptt", dense_sync: str = "world", device: str | None = None) -> dict:
    """Train the model through `distribute` with a plain Adam loop and one process on the global batch."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.topo import Topology, as_topology

    topo = as_topology(topology)
    world, b = topo.world_size, 4
    model, inputs = load_model_spec(spec, batch_size=world * b)
    target, towers = (Topology(1, world), 1) if strategy == "flat" else (topo, None)
    torch.manual_seed(0)
    dmt_ref = dmt_compile.transform(model, target, inputs, tower_module=tm, num_towers=towers)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, target, inputs, tower_module=tm, num_towers=towers)
    ref = model if tm == "identity" else dmt_ref
    ref_opt = torch.optim.Adam(ref.parameters(), lr=lr)
    dist_model = dmt_compile.distribute(dmt, topology, row_wise=row_wise, bucket_cap_mb=bucket_cap_mb,
                                        strategy=strategy, dense_sync=dense_sync, device=device)
    opt = torch.optim.Adam(dist_model.parameters(), lr=lr)
    here = dist_model.device
    out_diff = 0.0
    with recording() as stats:
        for step in range(steps):
            batch, labels = _batch(spec, world, b, step)
            ref_out = ref(*batch)
            ref_opt.zero_grad()
            _bce(ref_out, labels).backward()
            ref_opt.step()
            out = dist_model(*dist_model.local_batch(*batch))
            opt.zero_grad()
            assert out.device == here, (out.device, here)  # the batch followed the rank's device
            _bce(out, labels[rank * b:(rank + 1) * b].to(here)).backward()
            opt.step()
            out_diff = max(out_diff, float((out.detach().cpu() - ref_out.detach()[rank * b:(rank + 1) * b]).abs().max()))
    ref_state = dict(ref.state_dict()) if tm == "identity" else dmt_ref.state_dict()
    param_diff, checked = 0.0, []
    for key, (t, start, stop) in dist_model.local_state().items():
        want = ref_state[key][start:stop] if stop else ref_state[key]
        assert t.device == here, (key, t.device)
        param_diff = max(param_diff, float((t.detach().cpu() - want).abs().max()) if t.numel() else 0.0)
        checked.append(key)
    return {"out": out_diff, "param": param_diff, "checked": checked, "stats": stats.snapshot(by_op=True),
            "buckets": len(dist_model.reducer.buckets), "describe": dist_model.describe(),
            "launches": dict(dist_model.reducer.launches)}


def adam_cases(rank: int, cases: list[dict]) -> list[dict]:
    return [accumulation_is_exact(rank, **{k: v for k, v in case.items() if k != "kind"})
            if case.get("kind") == "accumulation" else adam_matches_one_process(rank, **case) for case in cases]


def accumulation_is_exact(rank: int, spec: str, topology: str, tm: str = "linear") -> dict:
    """Gradients of one backward on the local batch vs two half-batch backwards: with no_sync(), synchronised
    twice, and on top of zeroed (not None) gradients. Returns the largest differences."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.topo import as_topology

    topo = as_topology(topology)
    world, b = topo.world_size, 4
    model, inputs = load_model_spec(spec, batch_size=world * b)
    torch.manual_seed(0)
    dist_model = dmt_compile.distribute(dmt_compile.transform(model, topo, inputs, tower_module=tm), topology)
    opt = torch.optim.SGD(dist_model.parameters(), lr=0.1)
    batch, labels = _batch(spec, world, b, 0)
    local, y = dist_model.local_batch(*batch), labels[rank * b:(rank + 1) * b]

    def loss_on(lo: int, hi: int):
        out = dist_model(*local)
        return _bce(out[lo:hi], y[lo:hi]) * ((hi - lo) / b)

    def grads():
        return {id(p): p.grad.detach().clone() for p in dist_model.parameters() if p.grad is not None}

    opt.zero_grad()
    loss_on(0, b).backward()
    want = grads()
    out = {}
    for how in ("no_sync", "twice", "zeros"):
        opt.zero_grad(set_to_none=how != "zeros")
        if how == "no_sync":
            with dist_model.no_sync():
                loss_on(0, b // 2).backward()
        else:
            loss_on(0, b // 2).backward()
        loss_on(b // 2, b).backward()
        got = grads()
        assert set(got) == set(want), how
        out[how] = max(float((got[k] - want[k]).abs().max()) for k in want)
    out["params"] = len(want)
    return out


def replicas_after_start(rank: int, spec: str, topology: str, init_sync: str) -> dict:
    """Rank r builds the model with seed r (dense and Tower-Module weights differ); what does ShardedDmt hold?"""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.runtime.groups import HierarchicalGroups

    groups = HierarchicalGroups.build(topology)
    model, inputs = load_model_spec(spec, seed=rank)
    torch.manual_seed(rank)
    dmt = dmt_compile.transform(model, topology, inputs, tower_module="linear", compression=2)
    before = {k: v.clone() for k, v in dmt.state_dict().items()}
    sharded = ShardedDmt(dmt, groups, init_sync=init_sync)
    names = {id(t): n for n, t in dmt.graph_module.named_parameters()}
    dense = {names[id(p)]: p.detach().clone() for p in sharded.dense_params}
    towers = {names[id(p)]: p.detach().clone() for p in sharded.tower_params}
    return {"dense": dense, "towers": towers, "before": before}


def checkpoint_hop(rank: int, spec: str, topology: str, load_from: str | None, save_to: str, steps: int,
                   row_wise: str = "auto", tm: str = "identity") -> dict:
    """Load `load_from` (if any) on `topology`, check every local tensor against the file, train, save."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.checkpoint import read_checkpoint
    from dmt_compile.topo import as_topology

    topo = as_topology(topology)
    world, b = topo.world_size, 2
    model, inputs = load_model_spec(spec, batch_size=world * b)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, topo, inputs, tower_module=tm)
    dist_model = dmt_compile.distribute(dmt, topology, row_wise=row_wise)
    opt = torch.optim.Adam(dist_model.parameters(), lr=1e-2)
    mismatched, compared, extra = [], 0, None
    if load_from:
        extra = dist_model.load_checkpoint(load_from, optimizer=opt)
        _, saved = read_checkpoint(load_from)
        for key, (t, start, stop) in dist_model.local_state().items():
            want = saved["model/" + key][start:stop] if stop else saved["model/" + key]
            compared += 1
            if not torch.equal(t.detach(), want):
                mismatched.append(key)
            p_state = opt.state.get(t, {})
            for name, value in p_state.items():
                ref = saved[f"optim/{key}/{name}"]
                ref = ref[start:stop] if stop and value.shape == t.shape else ref
                compared += 1
                if not torch.equal(value, ref):
                    mismatched.append(f"optim/{key}/{name}")
    for step in range(steps):
        batch, labels = _batch(spec, world, b, step)
        out = dist_model(*dist_model.local_batch(*batch))
        opt.zero_grad()
        _bce(out, labels[rank * b:(rank + 1) * b]).backward()
        opt.step()
    dist_model.save_checkpoint(save_to, optimizer=opt, extra={"hops": (extra or {}).get("hops", []) + [topology]})
    return {"mismatched": mismatched, "compared": compared, "extra": extra, "kinds": dist_model.layout.counts()}


def torchrec_runs_our_plan(rank: int, zoo_name: str, topology: str) -> dict:
    """TorchRec's DistributedModelParallel on our towers (refused on CPU) and on our table placement (runs)."""
    import torch.distributed as dist
    from torchrec.distributed.embedding_tower_sharding import EmbeddingTowerCollectionSharder
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.types import ShardingEnv, ShardingPlan
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    import dmt_compile
    import zoo
    from dmt_compile.interop.torchrec_towers import TowerModel, ebc_sharding_plan, to_torchrec_towers
    from dmt_compile.training.batching import _slice_kjt
    from dmt_compile.topo import as_topology

    topo = as_topology(topology)
    world = topo.world_size
    model, (dense, kjt) = zoo.load(zoo_name, batch_size=4 * world)
    dmt = dmt_compile.transform(model, topo, (dense, kjt))
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    etc, plan, _ = to_torchrec_towers(dmt)
    refused = None
    try:
        DistributedModelParallel(TowerModel(etc), env=env, device=torch.device("cpu"), plan=ShardingPlan({"etc": plan}),
                                 sharders=[EmbeddingTowerCollectionSharder()])
    except Exception as exc:  # noqa: BLE001 - we report exactly what TorchRec raises
        refused = f"{type(exc).__name__}: {exc}"
    reference = model(dense, kjt).detach()
    full = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"), plan=ebc_sharding_plan(dmt, model),
                                   sharders=[EmbeddingBagCollectionSharder()])
    placed = {}
    with torch.no_grad():
        for name, t in dmp.state_dict().items():
            key = name.removeprefix("_dmp_wrapped_module.").replace("module.", "")
            if isinstance(t, ShardedTensor):
                for sh in t.local_shards():
                    rows = slice(sh.metadata.shard_offsets[0], sh.metadata.shard_offsets[0] + sh.metadata.shard_sizes[0])
                    sh.tensor.copy_(full[key][rows])
                    placed[key] = rank
            else:
                t.copy_(full[key])
    b = 4
    local = _slice_kjt(kjt, rank * b, (rank + 1) * b)
    out = dmp(dense[rank * b:(rank + 1) * b], local)
    out = out.wait() if hasattr(out, "wait") and not isinstance(out, torch.Tensor) else out
    err = float((out.detach() - reference[rank * b:(rank + 1) * b]).abs().max())
    return {"refused": refused, "err": err, "placed": placed, "plan": str(plan)}
