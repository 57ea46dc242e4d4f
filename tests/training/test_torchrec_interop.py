"""TorchRec interop (needs torchrec): our plan as TorchRec objects, what TorchRec runs and refuses, pins back."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT, has_torchrec

pytestmark = pytest.mark.skipif(not has_torchrec(), reason="torchrec is not installed")


def _dmt(name: str, topology: str = "2x2", **kw):
    import dmt_compile
    import zoo

    model, inputs = zoo.load(name)
    torch.manual_seed(0)
    return model, inputs, dmt_compile.transform(model, topology, inputs, **kw)


@pytest.mark.parametrize("name", ["torchrec_dlrm", "torchrec_dlrm_dcn"])
def test_identity_towers_reproduce_the_original_collections_bit_exactly(name):
    from dmt_compile.interop.torchrec_towers import to_torchrec_towers

    model, (dense, kjt), dmt = _dmt(name)
    etc, plan, export = to_torchrec_towers(dmt)
    assert type(etc).__name__ == "EmbeddingTowerCollection" and len(etc.towers) == dmt.plan.num_towers
    out = etc(kjt)
    sources = {}
    col = 0
    for t, keys in enumerate(export.tower_keys):
        for k in keys:
            fqn, key = export.key_to_source[(t, k)]
            sources.setdefault(fqn, model.get_submodule(fqn)(kjt).to_dict())
            ref = sources[fqn][key]
            assert torch.equal(out[:, col:col + ref.shape[1]], ref), (t, k)
            col += ref.shape[1]
    assert col == out.shape[1]
    for t, refs in enumerate(export.tables):  # every table row-wise on the ranks of its tower's host
        host = dmt.plan.details[t].host
        for r in refs:
            assert plan[r.tower_table].sharding_type == "table_row_wise"
            assert plan[r.tower_table].ranks == [2 * host, 2 * host + 1]


def test_compressing_towers_carry_the_plans_tower_modules():
    from dmt_compile.interop.torchrec_towers import to_torchrec_towers

    model, (dense, kjt), dmt = _dmt("torchrec_dlrm", tower_module="linear", compression=2)
    etc, _, export = to_torchrec_towers(dmt)
    captured = {}
    hooks = [dmt.graph_module.get_submodule(f"dmt.tower{t}_tm").register_forward_hook(
        lambda m, a, o, t=t: captured.__setitem__(t, torch.cat([x.reshape(x.shape[0], -1) for x in o], 1)))
        for t in range(dmt.plan.num_towers)]
    with torch.no_grad():
        dmt(dense, kjt)
        out = etc(kjt)
    for h in hooks:
        h.remove()
    assert out.shape[1] == sum(export.widths) == sum(d.width_out for d in dmt.plan.details)
    assert torch.equal(out, torch.cat([captured[t] for t in range(dmt.plan.num_towers)], 1))


def test_models_without_torchrec_collections_are_refused():
    from dmt_compile.errors import InputError
    from dmt_compile.interop.torchrec_towers import to_torchrec_towers

    _, _, dmt = _dmt("dict_dlrm")
    with pytest.raises(InputError, match="not a torchrec EmbeddingBagCollection table"):
        to_torchrec_towers(dmt)


@pytest.mark.parametrize("name", ["torchrec_dlrm", "torchrec_dlrm_dcn", "torchrec_ebc_deepfm"])
def test_torchrec_placement_back_to_pins_reproduces_the_plan(name):
    import dmt_compile
    from dmt_compile.interop.torchrec_pins import towers_from_torchrec_plan
    from dmt_compile.interop.torchrec_towers import ebc_sharding_plan

    model, inputs, dmt = _dmt(name)
    plan = ebc_sharding_plan(dmt, model)
    pins, num_towers, notes = towers_from_torchrec_plan(plan, model, world_size=4, local_size=2)
    assert num_towers == 2
    again = dmt_compile.transform(model, "2x2", inputs, towers=pins, num_towers=num_towers)
    host = {f: d.host for d in dmt.plan.details for f in d.features}
    assert {f: d.host for d in again.plan.details for f in d.features} == host
    assert set(pins) <= set(host) and pins  # every pin is a real feature, on the plan's host


def test_replicated_and_host_spanning_tables_are_left_free():
    from torchrec.distributed.sharding_plan import column_wise, data_parallel, table_wise

    from dmt_compile.interop.torchrec_pins import pins_from_torchrec_plan

    model, _, _ = _dmt("torchrec_dlrm")
    ebc = model.sparse_arch.embedding_bag_collection
    plan = {"t0": data_parallel(), "t1": column_wise(ranks=[0, 2]), "t2": table_wise(rank=3)}
    plan.update({f"t{i}": data_parallel() for i in range(3, 8)})
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan

    built = construct_module_sharding_plan(ebc, plan, sharder=EmbeddingBagCollectionSharder(), local_size=2,
                                           world_size=4, device_type="cpu")
    notes: list[str] = []
    assert pins_from_torchrec_plan(built, ebc, local_size=2, notes=notes) == {"f2": 1}
    assert any("t0: data_parallel" in n for n in notes) and any("t1: column_wise spans hosts [0, 1]" in n
                                                                  for n in notes)


@pytest.mark.distributed
def test_torchrec_refuses_our_towers_on_cpu_and_runs_our_placement():
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology
    from workers import torchrec_runs_our_plan

    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "training"), os.path.join(ROOT, "tests"),
                                          ROOT])}
    results = launch_local(torchrec_runs_our_plan, Topology(2, 1), args=("torchrec_dlrm", "2x1"), timeout_s=300,
                           env=env)
    for r in results:
        # exactly what DistributedModelParallel raises for EmbeddingTowerCollection on CPU
        assert r["refused"].startswith("ValueError: DistributedDataParallel device_ids and output_device arguments "
                                       "only work with single-device/multiple-device GPU modules or CPU modules, "
                                       "but got device_ids [device(type='cpu')]"), r["refused"]
        assert r["err"] == 0.0  # our table placement, run by TorchRec, equals one process exactly
    owners = {k: r["placed"][k] for r in results for k in r["placed"]}
    assert len(owners) == 8 and set(owners.values()) == {0, 1}  # tables on both hosts, as our plan placed them
