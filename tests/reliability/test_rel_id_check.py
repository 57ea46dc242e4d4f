"""Ids out of range are caught where they enter the runtime, naming the feature, the rank and the value."""
from __future__ import annotations

import os

import pytest
import torch

import dmt_compile
from dmt_compile.errors import CollectiveError, InputError
from dmt_compile.lowering.lower import RankLayout, lower_for_rank
from dmt_compile.runtime import id_check
from dmt_compile.runtime.id_check import IdBound, IdRangeCheck
from dmt_compile.runtime.launch import launch_local
from dmt_compile.runtime.wire import IdField
from helpers import load_model
from rel_workers import bad_ids_on_rank


def _lowered(dmt, num_hosts: int, local: int, host: int = 0):
    """One rank's program built offline (no process group: the check runs before the first collective)."""
    layout = RankLayout(num_hosts, local, host, 0, None, None, "intra", 0, local)
    return lower_for_rank(dmt, layout).gm


def _bad_dlrm(value: int = 300, feature: str = "C5", sample: int = 3):
    model, (dense, sparse) = load_model("example:dlrm")
    bad = {k: v.clone() for k, v in sparse.items()}
    bad[feature][sample] = value
    return model, (dense, sparse), (dense, bad)


@pytest.mark.parametrize("value", [300, 10**9, -1])
def test_lowered_program_names_feature_sample_and_value(value):
    model, inputs, bad = _bad_dlrm(value)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    gm = _lowered(dmt, 2, 2)
    with pytest.raises(InputError) as info:
        gm(*dmt.input_spec.flatten(bad, {}))
    text = str(info.value)
    assert "feature 'C5'" in text and f"has id {value} at sample 3" in text, text
    assert "embeddings.C5.weight has 300 rows" in text and "[0, 300)" in text, text
    assert "this process" in text and "DMT_CHECK_IDS=0" in text


def test_flat_baseline_checks_too():
    model, inputs, bad = _bad_dlrm(value=550, feature="C2", sample=0)
    dmt = dmt_compile.transform(model, "1x4", inputs, num_towers=1)
    gm = _lowered(dmt, 1, 4)
    with pytest.raises(InputError, match=r"feature 'C2' has id 550 at sample 0.*550 rows"):
        gm(*dmt.input_spec.flatten(bad, {}))


@pytest.mark.parametrize("how", ["env", "flag"])
def test_check_can_be_switched_off(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("DMT_CHECK_IDS", "0")
    else:
        monkeypatch.setattr(id_check, "ENABLED", False)
    model, inputs, bad = _bad_dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    gm = _lowered(dmt, 2, 2)
    assert not gm.get_submodule("dist.ids").id_check.enabled
    with pytest.raises(Exception) as info:  # no check: the ids reach the exchange, which needs a process group
        gm(*dmt.input_spec.flatten(bad, {}))
    assert not isinstance(info.value, InputError)


def test_valid_ids_pass_and_every_lookup_is_covered():
    model, inputs, _ = _bad_dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    check = _lowered(dmt, 2, 2).get_submodule("dist.ids").id_check
    assert check.enabled and check.num_fields == 26  # one field per DLRM feature
    check_fields = {b.features for bs in check.bounds.values() for b in bs}
    assert check_fields == {(f"C{i}",) for i in range(1, 27)}


def _field(kind: str, **kw) -> IdField:
    return IdField(kind, **kw)


def test_jagged_bag_ids_name_the_sample():
    bag = IdBound(_field("jagged", positions=(0, 1, None)), rows=10, features=("tags",), table="bag.weight")
    check = IdRangeCheck({0: [bag]}, enabled=True)
    values, offsets = torch.tensor([1, 2, 3, 9, 4, 12, 0]), torch.tensor([0, 3, 5])  # bags [1,2,3] [9,4] [12,0]
    check([(values[:5], offsets[:2])])  # the first two bags are fine
    with pytest.raises(InputError, match=r"feature 'tags' has id 12 at sample 2 .*bag.weight has 10 rows"):
        check([(values, offsets)])


def test_matrix_ids_name_the_column_feature_and_shared_fields_take_the_smaller_table():
    field = _field("rows", positions=(0,), trailing=(3,))
    a = IdBound(field, rows=100, features=("f0", "f1", "f2"), table="big.weight")
    b = IdBound(field, rows=50, features=("f0", "f1", "f2"), table="small.weight")
    check = IdRangeCheck({0: [a, b]}, enabled=True)
    ids = torch.tensor([[1, 2, 3], [4, 60, 5]])
    with pytest.raises(InputError, match=r"feature 'f1' has id 60 at sample 1 .*small.weight has 50 rows"):
        check([(ids,)])


def test_kjt_ids_name_the_key():
    torchrec = pytest.importorskip("torchrec", reason="torchrec is not installed (README, TorchRec recipe)")
    kjt = torchrec.KeyedJaggedTensor.from_lengths_sync(
        keys=["a", "b"], values=torch.tensor([1, 2, 3, 7, 4]), lengths=torch.tensor([1, 2, 1, 1]))
    bound = IdBound(_field("kjt", positions=(0,), keys=("a", "b")), rows=5, features=("a", "b"), table="ebc.t")
    with pytest.raises(InputError, match=r"feature 'b' has id 7 at sample 0 "):
        IdRangeCheck({0: [bound]}, enabled=True)([(kjt,)])


@pytest.mark.distributed
def test_bad_ids_on_one_rank_blame_that_rank():
    """Rank 1 feeds an id past C5's table; the error names rank 1 and C5, not the table's owner."""
    with pytest.raises(CollectiveError) as info:
        launch_local(bad_ids_on_rank, "2x2", args=(1, "sptt"), timeout_s=300)
    err = info.value
    first = str(err).splitlines()[0]
    assert err.culprits[0] == 1, first
    assert first.startswith("launch_local(2x2) failed: rank 1 failed first: rank 1 raised InputError: rank 1: "
                            "feature 'C5' has id 300 at sample 1"), first
    assert err.failures[1].exc_type == "InputError"
    assert all(err.failures[r].exc_type != "InputError" for r in (0, 2, 3))
