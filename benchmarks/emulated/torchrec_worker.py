"""The TorchRec baselines on one rank: ``DistributedModelParallel`` with hand-built TW / RW / TWRW plans.

The same model as :mod:`benchmarks.emulated.model` (same tables, same dense part) with a TorchRec
``EmbeddingBagCollection``; tables are placed whole on ranks round-robin (largest first, all are
equal here), like our flat baseline, with ``construct_module_sharding_plan(..., device_type="cpu")``
and the ``dense`` compute kernel (the CPU recipe of ``shared/reference/torchrec-anchor.md`` §4).
DMP wraps the dense part in DDP (gloo all-reduce, overlapped with backward by DDP itself).
Exchanges (``KJTAllToAll`` for ids, ``PooledEmbeddingsAllToAll`` for embeddings, fwd and bwd) go
through ``all_to_all_single`` and are timed and counted by the same :class:`ExchangeTimer`.
Only for the default model (``benchmarks.emulated.model:factory``); other MODEL_SPECs skip it.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["torchrec_available", "TorchRecRun", "KINDS"]


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


def _per_param(kind: str, names: list[str], world: int, local_size: int) -> dict:
    """Hand-built plan of every table for TorchRec's table-wise / row-wise / table-row-wise sharding."""
    from torchrec.distributed.sharding_plan import row_wise, table_row_wise, table_wise

    if kind == "table_wise":
        return {f"t_{n}": table_wise(rank=i % world, compute_kernel="dense") for i, n in enumerate(names)}
    if kind == "row_wise":
        return {f"t_{n}": row_wise(compute_kernel="dense") for n in names}
    if kind == "table_row_wise":
        hosts = max(1, world // local_size)
        return {f"t_{n}": table_row_wise(host_index=i % hosts) for i, n in enumerate(names)}
    raise ValueError(f"TorchRec sharding {kind!r} has no hand-built plan here")


def _sharder(wire_dtype: str | None):
    """EmbeddingBagCollectionSharder, with qcomm codecs on the embedding all-to-all for a coded wire."""
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder

    if wire_dtype in (None, "fp32", "native"):
        return EmbeddingBagCollectionSharder()
    from torchrec.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry

    ct = getattr(CommType, QCOMM[wire_dtype])
    registry = get_qcomm_codecs_registry(QCommsConfig(forward_precision=ct, backward_precision=ct))
    return EmbeddingBagCollectionSharder(qcomm_codecs_registry=registry)


class TorchRecRun:
    """TorchRec DMP of the benchmark model on this rank; ``step()`` is one training step.

    `strategy`: ``torchrec_tw`` | ``torchrec_rw`` | ``torchrec_twrw`` (hand-built plans with the
    ``dense`` CPU kernel); `wire_dtype` fp16 / bf16 / fp8_e4m3 turns on TorchRec's qcomm codec for
    the pooled-embedding all-to-all (forward and backward). ``torchrec_towers`` (TorchRec's
    ``EmbeddingTowerCollection``) has no CPU recipe here and raises; the runner records the error.
    """

    def __init__(self, opts: Any, rank: int, strategy: str = "torchrec_tw", wire_dtype: str | None = None):
        import logging
        import warnings

        logging.getLogger("torchrec").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
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
        per_param = _per_param(KINDS[strategy], model.names, world, L)
        plan = ShardingPlan({"ebc": construct_module_sharding_plan(
            model.ebc, per_param, sharder=sharder, local_size=L, world_size=world, device_type="cpu")})
        self.dmp = DistributedModelParallel(model, device=torch.device("cpu"), plan=plan, sharders=[sharder])
        dense, sparse = make_inputs(world * b, opts.seed, len(ref.names), rows)
        self.dense = dense[rank * b:(rank + 1) * b]
        self.kjt = to_kjt({k: v[rank * b:(rank + 1) * b] for k, v in sparse.items()})
        gen = torch.Generator().manual_seed(1234)
        self.labels = (torch.rand(world * b, 1, generator=gen) > 0.5).float()[rank * b:(rank + 1) * b]
        self.opt = torch.optim.SGD(self.dmp.parameters(), lr=opts.lr)
        self.batch_per_rank = b
        self.towers: list = []
        self.descriptor = {"compression_requested": None, "compression_effective": 1.0, "compression_label": "c=1",
                           "compression_met": True, "feed": ["identity"], "wire_dtype": wire_dtype or "fp32",
                           "interaction": {"unchanged": True}, "sharding": KINDS[strategy],
                           "dense_parameters": sum(p.numel() for p in ref.dense_arch.parameters())}

    def step(self) -> None:
        out = self.dmp(self.dense, self.kjt)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1, 1), self.labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
