"""DCP checkpoints of the distributed module: bitwise across topologies, optimizer state, --to-flat."""
from __future__ import annotations

import io
import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.errors import CheckpointError, CollectiveError
from dmt_compile.training.checkpoint import flat_state_from_checkpoint, read_checkpoint, read_meta
from dmt_compile.runtime.launch import launch_local
from dmt_compile.tools.cli import main
from dmt_compile.topo import as_topology
from workers import DLRM, checkpoint_hop

pytestmark = pytest.mark.distributed
ENV = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "training"), os.path.join(ROOT, "tests"), ROOT])}


def _hop(topology: str, load_from, save_to, steps: int = 0, row_wise: str = "auto", tm: str = "identity"):
    return launch_local(checkpoint_hop, as_topology(topology), args=(DLRM, topology, load_from, save_to, steps,
                                                                     row_wise, tm), timeout_s=400, env=ENV)


@pytest.fixture(scope="module")
def hops(tmp_path_factory):
    """Train 2 Adam steps on 2x2 (tables sharded by rows), then 2x2 -> 1x4 -> 1x1 -> 2x4, saving after each load."""
    d = tmp_path_factory.mktemp("ckpt")
    paths = {t: str(d / t) for t in ("2x2", "1x4", "1x1", "2x4")}
    results = {"2x2": _hop("2x2", None, paths["2x2"], steps=2, row_wise="always")}
    results["1x4"] = _hop("1x4", paths["2x2"], paths["1x4"])
    results["1x1"] = _hop("1x1", paths["1x4"], paths["1x1"])
    results["2x4"] = _hop("2x4", paths["1x1"], paths["2x4"], row_wise="always")
    return paths, results


def test_checkpoint_loads_bitwise_across_topologies(hops):
    paths, results = hops
    for topology in ("1x4", "1x1", "2x4"):
        for r in results[topology]:
            assert r["mismatched"] == [], (topology, r["mismatched"])
            assert r["compared"] > 0
    assert results["2x2"][0]["kinds"]["rows"] > 0  # the first checkpoint held row shards
    assert results["2x4"][0]["extra"] == {"hops": ["2x2", "1x4", "1x1"]}  # extra state travels too
    _, first = read_checkpoint(paths["2x2"])
    _, last = read_checkpoint(paths["2x4"])
    keys = [k for k in first if k.startswith(("model/", "optim/"))]
    assert any(k.endswith("/exp_avg_sq") for k in keys) and any(k.endswith("/step") for k in keys)
    assert sorted(keys) == sorted(k for k in last if k.startswith(("model/", "optim/")))
    differ = [k for k in keys if not torch.equal(first[k], last[k])]
    assert not differ, differ


def _writers(path: str, fqn: str) -> list[tuple[tuple[int, ...], int]]:
    """(offset, writing rank) of every stored piece of `fqn`."""
    from dmt_compile.training.checkpoint_safety import SafeReader

    md = SafeReader(path).read_metadata()
    return sorted((tuple(k.offset), int(v.relative_path.split("_")[2])) for k, v in md.storage_data.items()
                  if k.fqn == fqn)


def test_each_table_is_written_once_by_its_owner(hops):
    paths, _ = hops
    meta = read_meta(paths["1x4"])
    assert meta["topology"] == "1x4" and meta["optimizer"] == "Adam"
    rows = _writers(paths["2x2"], "model/embeddings.C1.weight")  # row-wise on 2x2: one shard per rank of a host
    assert [offset for offset, _ in rows] == [(0, 0), (500, 0)]
    assert len({rank // 2 for _, rank in rows}) == 1 and len({rank for _, rank in rows}) == 2
    assert _writers(paths["2x2"], "optim/embeddings.C1.weight/exp_avg") == rows  # its Adam state sharded alike
    assert len(_writers(paths["1x4"], "model/embeddings.C1.weight")) == 1  # table-wise on 1x4: its owner only
    assert len(_writers(paths["2x4"], "model/top_mlp.0.weight")) == 1  # a replicated tensor is written once


def test_to_flat_loads_strictly_into_the_original_model(hops, tmp_path):
    paths, _ = hops
    out = tmp_path / "flat.pt"
    code = main(["checkpoint", paths["2x4"], "--to-flat", str(out)], stdout=io.StringIO())
    assert code == 0
    state = torch.load(out)
    model, _ = load_model_spec(DLRM)
    assert list(state) == list(model.state_dict())
    model.load_state_dict(state, strict=True)
    _, saved = read_checkpoint(paths["2x4"])
    assert all(torch.equal(v, saved["model/" + k]) for k, v in state.items())
    text = io.StringIO()
    assert main(["checkpoint", paths["2x4"]], stdout=text) == 0
    assert "2x4" in text.getvalue() and "Adam" in text.getvalue()


def test_a_checkpoint_of_another_tower_module_is_refused(hops):
    paths, _ = hops
    with pytest.raises(CollectiveError, match="does not fit this model.*dmt.tower0_tm"):
        _hop("1x1", paths["1x1"], paths["1x1"] + "-linear", tm="linear")


def test_incomplete_checkpoint_is_named(tmp_path):
    from dmt_compile.training.checkpoint_files import write_manifest

    os.makedirs(tmp_path / "ck.partial-0123abcd")
    write_manifest(str(tmp_path / "ck.partial-0123abcd"), complete=False)
    with pytest.raises(CheckpointError, match="ck does not exist .an interrupted save left .*ck.partial-0123abcd"):
        flat_state_from_checkpoint(str(tmp_path / "ck"))
