"""IdsPipeline: prefetching the next batch's ids gives bitwise the results of the plain loop
(rows ids and weighted jagged EmbeddingBag ids, identity and compressing Tower Modules), counts the same
bytes, and refuses a forward whose ids are not the prefetched ones."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.runtime.launch import launch_local

pytestmark = pytest.mark.distributed

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
JAGGED = "zoo.m05_weighted_bag_youtube:factory"  # jagged EmbeddingBag ids with per-sample weights


def _train(spec: str, tower_module: str, compression, pipelined: bool, steps: int = 3):
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.pipeline import IdsPipeline
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.training.batching import infer_batch_layout
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.tools.verify import first_tensor

    rank = torch.distributed.get_rank()
    groups = HierarchicalGroups.build("2x2")
    model, inputs = load_model_spec(spec, batch_size=4 * 4 * steps)  # 4 samples per rank and step
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module=tower_module, compression=compression)
    layout = infer_batch_layout(dmt)
    flat = dmt.input_spec.flatten(inputs, {})
    per = layout.batch // (4 * steps)
    batches = [layout.slice(flat, (s * 4 + rank) * per, (s * 4 + rank + 1) * per) for s in range(steps)]
    sharded = ShardedDmt(dmt, groups)
    opt = torch.optim.SGD(sharded.parameters(), lr=0.1)
    pipe = IdsPipeline(sharded)
    losses = []
    with recording() as stats:
        for s, batch in enumerate(batches):
            if pipelined:
                out = pipe.forward_flat(batch, batches[s + 1] if s + 1 < steps else None)
            else:
                out = sharded.gm(*batch)
            loss = first_tensor(out).float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            sharded.sync_gradients()
            opt.step()
            losses.append(loss.item())
    params = [p.detach().clone() for p in sharded.parameters()]
    return losses, params, stats.snapshot()


def worker(rank: int, spec: str, tower_module: str, compression) -> dict:
    from dmt_compile.errors import RuntimeSetupError

    plain = _train(spec, tower_module, compression, False)
    piped = _train(spec, tower_module, compression, True)
    same = plain[0] == piped[0] and all(torch.equal(a, b) for a, b in zip(plain[1], piped[1]))
    # a forward with other ids than the prefetched ones is refused on every rank
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.pipeline import IdsPipeline
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.runtime.groups import HierarchicalGroups

    refused = "not checked"
    if spec == DLRM:
        from torch.utils._pytree import tree_map

        model, inputs = load_model_spec(spec)
        sharded = ShardedDmt(dmt_compile.transform(model, "2x2", inputs), HierarchicalGroups.build("2x2"))
        pipe = IdsPipeline(sharded)
        other = tree_map(lambda x: x.roll(1, 0) if isinstance(x, torch.Tensor) and not x.is_floating_point() else x,
                         inputs)
        pipe.prefetch(other)
        try:
            pipe.forward(inputs)
            refused = None
        except RuntimeSetupError as exc:
            refused = str(exc)
    return {"same": same, "losses": plain[0], "stats_equal": plain[2] == piped[2], "refused": refused}


@pytest.mark.parametrize("spec,tm,c", [(DLRM, "identity", None), (DLRM, "linear", 4), (JAGGED, "identity", None)])
def test_pipelined_ids_are_exact(spec, tm, c):
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    results = launch_local(worker, "2x2", args=(spec, tm, c), timeout_s=240, env=env)
    for r in results:
        assert r["same"], r["losses"]
        assert r["stats_equal"]
        if spec == DLRM:
            assert r["refused"] is not None and "prefetched" in r["refused"] and "another batch" in r["refused"]
