"""TorchRec's own tower sharding of the benchmark model: the ``torchrec_towers`` baseline.

The model is the one ``sptt_tm`` times, in TorchRec's objects:

* **Towers.** The bench model with a TorchRec ``EmbeddingBagCollection``
  (:class:`~benchmarks.emulated.model.TorchRecDLRM`) is transformed like the ``sptt_tm`` row
  (same topology, Tower Module, compression and feed) with the ``sptt_tm`` row's towers pinned
  (:func:`feature_groups`: every feature in the same tower), and exported by
  :func:`dmt_compile.interop.to_torchrec_towers` as an ``EmbeddingTowerCollection``: one
  ``EmbeddingTower`` per tower, its ``EmbeddingBagCollection`` holding the tower's tables and, as
  its interaction, the plan's Tower Module; TABLE_ROW_WISE on the ranks of the tower's host.
* **The rest** (bottom MLP, the interaction the feed rebuilt, top MLP, decoders) is the transformed
  model's own graph with each tower's output exchange replaced by a slice of the collection's
  output (:func:`rest_after_towers`), so it computes exactly what ``sptt_tm`` computes after its
  exchange; ``tests/bench`` checks the pair against the transformed model in one process.

``DistributedModelParallel`` with TorchRec's ``EmbeddingTowerCollectionSharder`` refuses this on
CPU: its ``ShardedEmbeddingTowerCollection`` wraps each interaction in
``DistributedDataParallel(device_ids=[device])``, which DDP refuses for a CPU module. The bench
tries it first and keeps the error (``stock_refusal``), then shards with :class:`CpuTowerSharder`:
the same TorchRec classes, the collection built with ``device=None`` (so DDP gets
``device_ids=None``) and each tower's collection sharded on ``cpu``. Data flow is TorchRec's:
ids by ``KJTAllToAll`` over the cross-host group to the tower's host, row-wise lookup inside
the host, the interaction on every rank of the host, outputs back by ``PooledEmbeddingsAllToAll``.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.fx as fx
from torch import nn

__all__ = ["feature_groups", "rest_after_towers", "output_order", "TowersModel", "CpuTowerSharder", "take_slice",
           "towers_run", "build_towers", "local_inputs", "TowersBuild"]


def output_order(hosts: Sequence[int], num_hosts: int) -> list[int]:
    """Tower order of the sharded collection's output: host by host, towers of a host in index order."""
    return [t for h in range(num_hosts) for t, th in enumerate(hosts) if th % num_hosts == h]


def take_slice(x: torch.Tensor, start: int, shape: tuple) -> torch.Tensor:
    """Columns ``[start, start + prod(shape))`` of ``x [B, W]`` as ``[B, *shape]`` (one tower output)."""
    return x[:, start:start + math.prod(shape)].reshape(x.shape[0], *shape)


def rest_after_towers(dmt: Any, order: Sequence[int]) -> fx.GraphModule:
    """The transformed model after its towers: its graph with one more input, the towers' outputs
    ``[B, sum of widths]`` in tower order `order`, read where the output exchanges were.

    Lookups, Tower Modules and exchanges become unused and are erased with their modules.
    """
    from dmt_compile.errors import InputError
    from dmt_compile.ir.graph import tower_nodes
    from dmt_compile.ir.meta import SHAPE

    gm = copy.deepcopy(dmt.graph_module)
    graph = gm.graph
    towers = tower_nodes(graph)
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    with graph.inserting_after(last):
        joined = graph.placeholder("tower_outputs")
    start = 0
    for t in order:
        tn = towers[t]
        parts = {p.args[1]: p for p in tn.parts}
        for k, payload in enumerate(tn.payload):
            shape = payload.meta.get(SHAPE)
            if not isinstance(shape, (tuple, list)) or not all(isinstance(s, int) for s in shape[1:]):
                raise InputError(f"tower {t}: output {k} is not a plain tensor ({shape!r})",
                                 "use a Tower Module whose outputs are tensors")
            if k in parts:
                with graph.inserting_before(parts[k]):
                    node = graph.call_function(take_slice, (joined, start, tuple(shape[1:])))
                parts[k].replace_all_uses_with(node)
            start += math.prod(shape[1:])
    graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


class TowersModel(nn.Module):
    """The root DistributedModelParallel shards: ``etc`` (the collection) and ``rest``.

    ``forward(flat, kjt)``: `flat` is the transformed model's flattened input (the rest reads its
    dense part), `kjt` the sparse features the collection looks up.
    """

    def __init__(self, etc: nn.Module, rest: nn.Module):
        super().__init__()
        self.etc = etc
        self.rest = rest

    def forward(self, flat: list, kjt: Any) -> torch.Tensor:
        out = self.etc(kjt)
        if not isinstance(out, torch.Tensor) and hasattr(out, "wait"):
            out = out.wait()
        return self.rest(*flat, out)


def _cpu_classes():
    from torchrec.distributed.embedding_tower_sharding import EmbeddingTowerCollectionSharder, EmbeddingTowerSharder
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder

    class CpuCollectionSharder(EmbeddingBagCollectionSharder):
        """A tower's EmbeddingBagCollection, sharded on ``cpu`` whatever device the tower got."""

        def shard(self, module, params, env, device=None, module_fqn=None):
            return super().shard(module, params, env, torch.device("cpu"), module_fqn)

    class CpuOneTowerSharder(EmbeddingTowerSharder):
        def embedding_sharder(self, module):
            return CpuCollectionSharder(self.fused_params, qcomm_codecs_registry=self.qcomm_codecs_registry)

    class Sharder(EmbeddingTowerCollectionSharder):
        def __init__(self, fused_params=None, qcomm_codecs_registry=None):
            super().__init__(fused_params, qcomm_codecs_registry=qcomm_codecs_registry)
            self._tower_sharder = CpuOneTowerSharder(self.fused_params, qcomm_codecs_registry=qcomm_codecs_registry)

        def shard(self, module, params, env, device=None, module_fqn=None):
            from torchrec.distributed.embedding_tower_sharding import ShardedEmbeddingTowerCollection

            return ShardedEmbeddingTowerCollection(
                module=module, table_name_to_parameter_sharding=params, tower_sharder=self._tower_sharder, env=env,
                fused_params=self.fused_params, device=None, qcomm_codecs_registry=self.qcomm_codecs_registry)

    return Sharder


def CpuTowerSharder(qcomm_codecs_registry: Any = None) -> Any:  # noqa: N802 - builds an instance of a lazy class
    """TorchRec's ``EmbeddingTowerCollectionSharder`` with the one change CPU needs (module docstring)."""
    return _cpu_classes()(qcomm_codecs_registry=qcomm_codecs_registry)


EXAMPLE_BATCH = 64
_FEATURE = re.compile(r"(?<![A-Za-z0-9])C\d+(?![0-9])")


def feature_groups(dmt: Any) -> list[list[str]]:
    """The bench features (``C1``..``C26``) of every tower of a plan, read from its features and tables."""
    return [sorted({m for x in (*d.features, *d.tables) for m in _FEATURE.findall(str(x))},
                   key=lambda f: int(f[1:])) for d in dmt.plan.details]


def _models(opts: Any, compression: float | None) -> tuple[Any, Any, Any]:
    """(our ``sptt_tm`` transform of the bench model, the same towers on the EBC model, its global inputs)."""
    import dmt_compile
    from dmt_compile.errors import InputError
    from dmt_compile.topo import Topology

    from benchmarks.emulated.model import TorchRecDLRM, factory, to_kjt

    topo, batch = Topology(opts.num_hosts, opts.local_size), opts.world * opts.per_rank_batch
    options = {"tower_module": opts.tower_module, "compression": compression, "feed": opts.feed}
    ref, (dense, sparse) = factory(batch_size=batch, seed=opts.seed)
    small = min(batch, EXAMPLE_BATCH)  # the graphs do not depend on the batch: transform on a small one
    example = (dense[:small], {k: v[:small] for k, v in sparse.items()})
    torch.manual_seed(opts.seed)
    ours = dmt_compile.transform(ref, topo, example, **options)
    groups = feature_groups(ours)
    first = ref.tables[ref.names[0]]
    model = TorchRecDLRM(len(ref.names), first.embedding_dim, first.num_embeddings, device="cpu")
    with torch.no_grad():
        model.dense_arch.load_state_dict(ref.dense_arch.state_dict())
        for n in ref.names:
            model.ebc.embedding_bags[f"t_{n}"].weight.copy_(ref.tables[n].weight)
    torch.manual_seed(opts.seed)
    theirs = dmt_compile.transform(model, topo, (example[0], to_kjt(example[1])), towers=groups,
                                   num_towers=len(groups), **options)
    if feature_groups(theirs) != groups:
        raise InputError(f"the EBC model's towers {feature_groups(theirs)} are not the sptt_tm towers {groups}",
                         "pin the towers of both transforms")
    return ours, theirs, (dense, sparse)


def _stock_refusal(root: nn.Module, plan: Any, every_host_has_a_tower: bool) -> str | None:
    """What TorchRec's own sharder raises for the collection on CPU (None: it shards it)."""
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.embedding_tower_sharding import EmbeddingTowerCollectionSharder
    from torchrec.distributed.types import ShardingPlan

    if not every_host_has_a_tower:  # a rank without towers would not fail with the others: no lockstep
        return "not tried: a host holds no tower"
    try:  # on copies: TorchRec's sharded collection rewrites the plan's shardings in place
        DistributedModelParallel(copy.deepcopy(root), device=torch.device("cpu"),
                                 plan=ShardingPlan({"etc": copy.deepcopy(plan)}),
                                 sharders=[EmbeddingTowerCollectionSharder()])
    except Exception as exc:  # noqa: BLE001 - the exact text goes into the report
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


@dataclass
class TowersBuild:
    """What :func:`build_towers` made: the sharded model and what it was made from."""

    dmp: Any  # DistributedModelParallel of TowersModel
    state: dict  # the unsharded TowersModel's state (tables copied from the bench model)
    ours: Any  # our sptt_tm transform of the bench model (the row it is compared with)
    theirs: Any  # the same towers on the EBC model (what the collection and the rest come from)
    inputs: tuple  # the global batch (dense, {feature: ids})
    plan: Any  # {table: ParameterSharding} (TorchRec rewrites it in place while sharding: read `placement`)
    refusal: str | None  # TorchRec's own sharder on CPU
    placement: dict  # tables per host and compute kernels, read before sharding


def build_towers(opts: Any, compression: float | None, registry: Any = None) -> TowersBuild:
    """TorchRec's tower sharding of the ``sptt_tm`` model on this rank (module docstring)."""
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.embedding_tower_sharding import EmbeddingTowerCollectionSharder
    from torchrec.distributed.types import ShardingPlan

    from dmt_compile.interop.torchrec_towers import to_torchrec_towers

    ours, theirs, inputs = _models(opts, compression)
    etc, plan, export = to_torchrec_towers(theirs, world_size=opts.world, local_size=opts.local_size)
    root = TowersModel(etc, rest_after_towers(theirs, output_order(export.hosts, opts.num_hosts)))
    state = {k: v.detach().clone() for k, v in root.state_dict().items()}
    from benchmarks.emulated.descriptor import tables_per_host

    placement = {"tables_per_host": tables_per_host(plan, opts.world, opts.local_size),
                 "compute_kernels": sorted({ps.compute_kernel for ps in plan.values()})}
    every_host = {h % opts.num_hosts for h in export.hosts} == set(range(opts.num_hosts))
    refusal = _stock_refusal(root, plan, every_host)
    sharder = (CpuTowerSharder(registry) if refusal
               else EmbeddingTowerCollectionSharder(qcomm_codecs_registry=registry))
    dmp = DistributedModelParallel(root, device=torch.device("cpu"), plan=ShardingPlan({"etc": plan}),
                                   sharders=[sharder])
    return TowersBuild(dmp, state, ours, theirs, inputs, plan, refusal, placement)


def local_inputs(build: TowersBuild, rank: int, b: int) -> tuple[list, Any]:
    """``(flat, kjt)`` of this rank's share of the global batch: the arguments of the DMP."""
    from benchmarks.emulated.model import to_kjt

    dense, sparse = build.inputs
    kjt = to_kjt({k: v[rank * b:(rank + 1) * b] for k, v in sparse.items()})
    return build.theirs.input_spec.flatten((dense[rank * b:(rank + 1) * b], kjt), {}), kjt


def towers_run(opts: Any, rank: int, compression: float | None, wire_dtype: str | None,
               registry: Any) -> tuple[Any, tuple, dict[str, Any], list]:
    """(DMP, step inputs, descriptor, tower info) of the ``torchrec_towers`` baseline on this rank."""
    from benchmarks.emulated.descriptor import describe
    from benchmarks.emulated.descriptor import tower_info

    build = build_towers(opts, compression, registry)
    descriptor = describe(build.ours, compression, wire_dtype)
    descriptor.update(sharding="towers", wire_dtype=wire_dtype or "fp32", towers=feature_groups(build.ours),
                      torchrec_stock_refusal=build.refusal,
                      sharder=("EmbeddingTowerCollectionSharder" if build.refusal is None else
                               "EmbeddingTowerCollectionSharder with its collection built on device=None "
                               "(DDP device_ids=None), tower tables sharded on cpu"),
                      placement=build.placement)
    info = tower_info(build.ours)
    dmp, inputs = build.dmp, local_inputs(build, rank, opts.per_rank_batch)
    del build  # the single-process models are not needed while timing
    return dmp, inputs, descriptor, info
