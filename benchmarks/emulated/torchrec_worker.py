"""The TorchRec baselines on one rank: ``DistributedModelParallel`` with hand-built TW / RW / TWRW plans
and TorchRec's tower sharding (:mod:`.torchrec_towers`).

The same model as :mod:`benchmarks.emulated.model` (same tables, same dense part) with a TorchRec
``EmbeddingBagCollection``; TW places tables whole, dealt to the hosts in turn and inside a host
round-robin (:func:`host_balanced_ranks`: 13 tables per host on 2x2, like our host-aware flat
baseline), RW splits every table by rows over all ranks, TWRW puts table i row-wise on the ranks of
host ``i mod H``; plans by ``construct_module_sharding_plan(..., device_type="cpu")``, the ``dense``
compute kernel for TW and RW (the descriptor's ``placement`` names the kernels and tables per host).
DMP wraps the dense part in DDP (gloo all-reduce, overlapped with backward by DDP itself).
Ids travel by ``KJTAllToAll`` and pooled embeddings by ``PooledEmbeddingsAllToAll`` (TW, TWRW's
cross-host step, towers) through ``all_to_all_single``, timed and counted by :class:`ExchangeTimer`;
RW returns pooled embeddings by reduce-scatter (backward: all-gather) and TWRW reduce-scatters inside
the host first: those are timed, not counted, and their rows take wire bytes from host 0's NIC
counters (:func:`.bound.wire_from_nic`).
Only for the default model (``benchmarks.emulated.model:factory``); other MODEL_SPECs skip it.
"""
from __future__ import annotations

from typing import Any

import torch

from benchmarks.emulated.descriptor import tables_per_host  # re-exported: the placement facts live there

__all__ = ["torchrec_available", "TorchRecRun", "KINDS", "host_balanced_ranks"]


def torchrec_available() -> str | None:
    """None when TorchRec can be imported, else why not."""
    try:
        import torchrec  # noqa: F401
        from torchrec.distributed import DistributedModelParallel  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "absent"
        return f"{type(exc).__name__}: {exc}"
    return None


KINDS = {"torchrec_tw": "table_wise", "torchrec_rw": "row_wise", "torchrec_twrw": "table_row_wise",
         "torchrec_towers": "towers"}
QCOMM = {"fp16": "FP16", "bf16": "BF16", "fp8_e4m3": "FP8"}  # our wire dtypes -> torchrec CommType


def host_balanced_ranks(world: int, local_size: int) -> list[int]:
    """Ranks in the order tables are dealt to them: one rank of every host in turn (0, L, 2L, ..., 1, L+1, ...),
    so whole tables spread over hosts first (26 tables on 2x2: 13 per host, not 14/12)."""
    hosts = max(1, world // local_size)
    return [h * local_size + lr for lr in range(local_size) for h in range(hosts)]


def _per_param(kind: str, names: list[str], world: int, local_size: int) -> dict:
    """Hand-built plan of every table for TorchRec's table-wise / row-wise / table-row-wise sharding."""
    from torchrec.distributed.sharding_plan import row_wise, table_row_wise, table_wise

    if kind == "table_wise":
        order = host_balanced_ranks(world, local_size)
        return {f"t_{n}": table_wise(rank=order[i % world], compute_kernel="dense") for i, n in enumerate(names)}
    if kind == "row_wise":
        return {f"t_{n}": row_wise(compute_kernel="dense") for n in names}
    if kind == "table_row_wise":
        hosts = max(1, world // local_size)
        return {f"t_{n}": table_row_wise(host_index=i % hosts) for i, n in enumerate(names)}
    raise ValueError(f"TorchRec sharding {kind!r} has no hand-built plan here")


def _registry(wire_dtype: str | None) -> Any:
    """TorchRec's qcomm codecs for a coded wire (forward and backward), None for fp32."""
    if wire_dtype in (None, "fp32", "native"):
        return None
    from torchrec.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry

    ct = getattr(CommType, QCOMM[wire_dtype])
    return get_qcomm_codecs_registry(QCommsConfig(forward_precision=ct, backward_precision=ct))


def _sharder(wire_dtype: str | None):
    """EmbeddingBagCollectionSharder, with qcomm codecs on the embedding all-to-all for a coded wire."""
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder

    return EmbeddingBagCollectionSharder(qcomm_codecs_registry=_registry(wire_dtype))


def _labels(world: int, b: int, rank: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1234)
    return (torch.rand(world * b, 1, generator=gen) > 0.5).float()[rank * b:(rank + 1) * b]


def _ebc_run(opts: Any, rank: int, strategy: str, wire_dtype: str | None) -> tuple:
    """(DMP, step inputs, descriptor) of TW / RW / TWRW on the EBC model."""
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan
    from torchrec.distributed.types import ShardingPlan

    from benchmarks.emulated.model import TorchRecDLRM, factory, make_inputs, to_kjt

    world, L, b = opts.world, opts.local_size, opts.per_rank_batch
    ref, _ = factory(batch_size=1, seed=opts.seed)
    rows, dim = ref.tables[ref.names[0]].num_embeddings, ref.tables[ref.names[0]].embedding_dim
    model = TorchRecDLRM(len(ref.names), dim, rows, device="meta")
    model.dense_arch.load_state_dict(ref.dense_arch.state_dict())
    sharder = _sharder(wire_dtype)
    per_param = construct_module_sharding_plan(model.ebc, _per_param(KINDS[strategy], model.names, world, L),
                                               sharder=sharder, local_size=L, world_size=world, device_type="cpu")
    dmp = DistributedModelParallel(model, device=torch.device("cpu"), plan=ShardingPlan({"ebc": per_param}),
                                   sharders=[sharder])
    dense, sparse = make_inputs(world * b, opts.seed, len(ref.names), rows)
    inputs = (dense[rank * b:(rank + 1) * b], to_kjt({k: v[rank * b:(rank + 1) * b] for k, v in sparse.items()}))
    descriptor = {"compression_requested": None, "compression_effective": 1.0, "compression_label": "c=1",
                  "compression_met": True, "feed": ["identity"], "wire_dtype": wire_dtype or "fp32",
                  "interaction": {"unchanged": True}, "sharding": KINDS[strategy],
                  "dense_parameters": sum(p.numel() for p in ref.dense_arch.parameters()),
                  "placement": {"tables_per_host": tables_per_host(per_param, world, L),
                                "compute_kernels": sorted({ps.compute_kernel for ps in per_param.values()})}}
    return dmp, inputs, descriptor


class TorchRecRun:
    """TorchRec DMP of the benchmark model on this rank; ``step()`` is one training step.

    `strategy`: ``torchrec_tw`` | ``torchrec_rw`` | ``torchrec_twrw`` (hand-built plans on the EBC
    model, the ``dense`` CPU kernel for TW / RW; TW deals tables to hosts in turn,
    :func:`host_balanced_ranks`) or ``torchrec_towers`` (TorchRec's ``EmbeddingTowerCollection`` of
    the ``sptt_tm`` model at `compression`, :mod:`.torchrec_towers`); `wire_dtype` fp16 / bf16 /
    fp8_e4m3 turns on TorchRec's qcomm codec for the pooled-embedding all-to-all (fwd and bwd).
    """

    def __init__(self, opts: Any, rank: int, strategy: str = "torchrec_tw", wire_dtype: str | None = None,
                 compression: float | None = None):
        import logging
        import warnings

        logging.getLogger("torchrec").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
        if KINDS[strategy] == "towers":
            from benchmarks.emulated.torchrec_towers import towers_run

            self.dmp, self.inputs, self.descriptor, self.towers = towers_run(opts, rank, compression, wire_dtype,
                                                                               _registry(wire_dtype))
        else:
            self.dmp, self.inputs, self.descriptor = _ebc_run(opts, rank, strategy, wire_dtype)
            self.towers = []
        self.labels = _labels(opts.world, opts.per_rank_batch, rank)
        self.opt = torch.optim.SGD(self.dmp.parameters(), lr=opts.lr)
        self.batch_per_rank = opts.per_rank_batch

    def step(self) -> None:
        out = self.dmp(*self.inputs)
        if not isinstance(out, torch.Tensor) and hasattr(out, "wait"):
            out = out.wait()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1, 1), self.labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
