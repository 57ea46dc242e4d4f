"""Bad input to transform, the CLI and the cost model: a typed error that names the problem, never a raw traceback."""
from __future__ import annotations

import io
import math
import os

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile import errors
from dmt_compile.lowering.lower import RankLayout, lower_for_rank
from dmt_compile.tools.cli import main
from dmt_compile.tools.verify import VerifyOptions
from dmt_compile.topo.cost_model import MAX_COST_HOSTS, predict_flat, predict_sptt, split_features
from helpers import load_model, max_diff

HERE = os.path.dirname(os.path.abspath(__file__))
SPARSE = os.path.join(HERE, "rel_models.py") + ":sparse_grads"
BROKEN = os.path.join(HERE, "rel_models.py") + ":broken_factory"


def _dlrm():
    return load_model("example:dlrm")


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv, stdout=io.StringIO())
    return code, capsys.readouterr().err


def _fix(exc: errors.DmtError) -> None:
    assert exc.problem and exc.fix and "fix:" in str(exc)


# ----------------------------------------------------------------------------- transform


def test_already_transformed_dmt_model():
    model, inputs = _dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    with pytest.raises(errors.InputError, match="already transformed: it is a DmtModel") as info:
        dmt_compile.transform(dmt, "2x2", inputs)
    _fix(info.value)


def test_already_transformed_graph_module():
    """A DmtModel's graph with tower boundaries was silently transformed a second time before."""
    model, inputs = _dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    flat = tuple(dmt.input_spec.flatten(inputs, {}))
    with pytest.raises(errors.InputError, match="graph with DMT tower boundaries"):
        dmt_compile.transform(dmt.graph_module, "2x2", flat)


def test_wrapped_transformed_model_and_lowered_program():
    model, inputs = _dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = dmt

        def forward(self, *a):
            return self.inner(*a)

    with pytest.raises(errors.InputError, match="its submodule 'inner' is a DmtModel"):
        dmt_compile.transform(Wrapper(), "2x2", inputs)
    rank_gm = lower_for_rank(dmt, RankLayout(2, 2, 0, 0, None, None, "intra", 0, 2)).gm
    with pytest.raises(errors.InputError, match="already lowered for one rank"):
        dmt_compile.transform(rank_gm, "2x2", tuple(dmt.input_spec.flatten(inputs, {})))


def test_model_on_meta_device():
    model, inputs = _dlrm()
    with pytest.raises(errors.InputError, match=r"meta device \(\d+ parameters/buffers .*embeddings\.C1\.weight") as i:
        dmt_compile.transform(model.to("meta"), "2x2", inputs)
    assert "to_empty" in i.value.fix


def test_inputs_on_meta_device():
    model, (dense, sparse) = _dlrm()
    with pytest.raises(errors.InputError, match=r"example_inputs\[0\]"):
        dmt_compile.transform(model, "2x2", (dense.to("meta"), sparse))


def test_not_a_module():
    with pytest.raises(errors.InputError, match="must be a torch.nn.Module, got type"):
        dmt_compile.transform(nn.Linear, "2x2", (torch.ones(1),))


@pytest.mark.parametrize("value", [300, -1, 2**40])
def test_example_ids_out_of_range_name_the_feature(value):
    model, (dense, sparse) = _dlrm()
    bad = {k: v.clone() for k, v in sparse.items()}
    bad["C5"][4] = value
    with pytest.raises(errors.InputError) as info:
        dmt_compile.transform(model, "2x2", (dense, bad))
    text = str(info.value)
    assert text.startswith("example inputs: feature 'C5' (sparse_features['C5'])"), text
    assert f"has id {value} at sample 4" in text and "embeddings.C5.weight has 300 rows" in text


def test_calibration_ids_out_of_range_name_the_batch():
    model, inputs = _dlrm()
    dense, sparse = inputs
    bad = {k: v.clone() for k, v in sparse.items()}
    bad["C17"][0] = 64
    with pytest.raises(errors.InputError, match=r"^calibration batch 2: feature 'C17' .* has id 64 at sample 0, "
                                                r"but table embeddings\.C17\.weight has 64 rows"):
        dmt_compile.transform(model, "2x2", inputs, partitioner="learned",
                              calibration_batches=[inputs, inputs, (dense, bad)])


class ColumnIds(nn.Module):
    """Ids arrive as one integer matrix; each table reads one column."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, 4) for n in (10, 20, 30))

    def forward(self, ids):
        return torch.stack([t(ids[:, i]) for i, t in enumerate(self.tables)], 1).sum((1, 2)).unsqueeze(1)


def test_matrix_column_ids_name_the_column():
    ids = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 1, 2]])
    bad = ids.clone()
    bad[1, 2] = 30
    model = ColumnIds()
    dmt_compile.transform(model, "1x2", (ids,))  # in range: fine
    with pytest.raises(errors.InputError, match=r"example inputs: feature 'ids\[:,2\]' \(ids\[:, 2\]\) has id 30 "
                                                r"at sample 1, but table tables\.2\.weight has 30 rows"):
        dmt_compile.transform(model, "1x2", (bad,))
    with pytest.raises(errors.InputError, match=r"^calibration batch 0: feature 'ids\[:,2\]'"):
        dmt_compile.transform(model, "1x2", (ids,), partitioner="learned", calibration_batches=[(bad,)])


def test_computed_ids_are_checked_by_running_the_model():
    """m08 adds per-feature offsets to the ids inside the model: the check names the table."""
    model, inputs = load_model("zoo:xdeepfm_offsets_buffer")
    x = [v.clone() if isinstance(v, torch.Tensor) else v for v in inputs]
    ids_at = next(i for i, v in enumerate(x) if isinstance(v, torch.Tensor) and not v.is_floating_point())
    x[ids_at][0, -1] = 10**6
    with pytest.raises(errors.InputError, match=r"example inputs: feature '\(computed ids\)' .* has id \d+ at sample 0"):
        dmt_compile.transform(model, "2x2", tuple(x))


def test_check_leaves_the_model_untouched():
    """The id check's run must not move BatchNorm statistics, max_norm weights, RNG or training flags."""
    from dmt_compile.capture.preconditions import check_model_and_inputs

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = nn.Embedding(50, 4, max_norm=0.1)
            self.bn = nn.BatchNorm1d(4)
            self.drop = nn.Dropout(0.5)

        def forward(self, ids):
            return self.drop(self.bn(self.e(ids))).sum(1, keepdim=True)

    m = M()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ids = torch.randint(0, 50, (8,))
    state = torch.get_rng_state()
    check_model_and_inputs(m, (ids,))
    assert m.training and m.bn.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(errors.InputError, match="has id 50"):
        check_model_and_inputs(m, (torch.tensor([1, 50]),))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()) and m.training


def test_more_tower_lists_than_num_towers():
    model, inputs = _dlrm()
    with pytest.raises(errors.PlanError, match="towers lists 3 towers but num_towers is 2") as info:
        dmt_compile.transform(model, "2x2", inputs, num_towers=2,
                              towers=[[f"C{i}" for i in range(1, 9)], [f"C{i}" for i in range(9, 18)],
                                      [f"C{i}" for i in range(18, 27)]])
    assert not isinstance(info.value, errors.PassError) or "IndexError" not in str(info.value)


def test_empty_calibration_with_learned_partitioner():
    model, inputs = _dlrm()
    with pytest.raises(errors.InputError, match="calibration_batches is empty"):
        dmt_compile.transform(model, "2x2", inputs, partitioner="learned", calibration_batches=[])


def _empty(x):
    if isinstance(x, torch.Tensor):
        return x[:0]
    if isinstance(x, dict):
        return {k: _empty(v) for k, v in x.items()}
    return type(x)(_empty(v) for v in x)


@pytest.mark.parametrize("tm", ["linear", "dot", "cross", "wukong"])
@pytest.mark.parametrize("case", ["dlrm-decoder", "fm-direct"])
def test_batch_of_zero_with_a_compressing_tower_module(tm, case):
    """The original model runs an empty batch; so must the transformed one (it raised 'cannot reshape')."""
    from polymorphic_models import fm_factory

    model, inputs = _dlrm() if case.startswith("dlrm") else fm_factory()
    feed = case.split("-")[1]
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module=tm, compression=2, feed=feed)
    assert all(d.feed == feed for d in dmt.plan.details if d.feed != "identity"), dmt.plan
    out, ref = dmt(*_empty(inputs)), model(*_empty(inputs))
    assert out.shape == ref.shape and out.shape[0] == 0
    assert max_diff(dmt(*inputs), dmt.graph_module(*dmt.input_spec.flatten(inputs, {}))) == 0


# ----------------------------------------------------------------------------- CLI


def test_dump_dir_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, err = _cli(["dump", "examples/dlrm.py:factory", "--topology", "2x2", "--dump-dir", str(blocker / "d")],
                     capsys)
    assert code == 2 and "OutputError: --dump-dir" in err and "cannot be written" in err and "Traceback" not in err


def test_plan_graph_not_writable(tmp_path, capsys):
    code, err = _cli(["plan", "examples/dlrm.py:factory", "--topology", "2x2", "--graph",
                      str(tmp_path / "missing" / "g.dot")], capsys)
    assert code == 2 and "OutputError: --graph" in err and "does not exist" in err
    code, err = _cli(["plan", "examples/dlrm.py:factory", "--topology", "2x2", "--graph", str(tmp_path)], capsys)
    assert code == 2 and "it is a folder" in err


@pytest.mark.parametrize("argv, words", [
    (["plan", "examples/dlrm.py:factory", "--calibration", "-3"], "--calibration must be 0 or a positive"),
    (["dump", "examples/dlrm.py:factory", "--num-towers", "0"], "num_towers (--num-towers) must be >= 1"),
    (["verify", "examples/dlrm.py:factory", "--batch-per-rank", "0"], "--batch-per-rank) must be a positive"),
    (["verify", "examples/dlrm.py:factory", "--batch-per-rank", "-2"], "got -2"),
    (["verify", "examples/dlrm.py:factory", "--timeout", "0"], "--timeout must be a positive"),
    (["verify", "examples/dlrm.py:factory", "--timeout", "-5"], "got -5"),
    (["verify", "examples/dlrm.py:factory", "--timeout", "nan"], "got nan"),
    (["verify", "examples/dlrm.py:factory", "--lr", "0"], "lr (--lr) must be a positive"),
    (["verify", "examples/dlrm.py:factory", "--compression", "4"], "identity tower module cannot compress"),
])
def test_cli_values_refused_before_any_work(argv, words, capsys):
    code, err = _cli(argv, capsys)
    assert code == 2 and words in err, err
    assert "Traceback" not in err


def test_verify_factory_failing_everywhere_is_reported_once(capsys):
    code, err = _cli(["verify", BROKEN, "--topology", "1x2"], capsys)
    assert code == 2 and err.count("ModelSpecError") == 1 and "criteo_day_0.tsv" in err
    assert "launch_local" not in err  # refused in the parent, no rank started


def test_verify_options_refuse_bad_values():
    with pytest.raises(errors.InputError, match="strategy must be one of"):
        VerifyOptions("x:y", "2x2", strategy="ring")
    with pytest.raises(errors.InputError, match="per_rank_batch"):
        VerifyOptions("x:y", "2x2", per_rank_batch=0)


@pytest.mark.distributed
def test_verify_sparse_embeddings(capsys):
    """nn.Embedding(sparse=True): verify compared sparse gradients with a dense-only op (NotImplementedError)."""
    out = io.StringIO()
    code = main(["verify", SPARSE, "--topology", "1x2", "--timeout", "300"], stdout=out)
    assert code == 0, out.getvalue() + capsys.readouterr().err
    assert "OK: largest difference" in out.getvalue()


# ----------------------------------------------------------------------------- cost model


def test_absurd_topology_is_refused_fast(capsys):
    code, err = _cli(["cost", "--topology", "h100:8000000"], capsys)
    assert code == 2 and "prices up to 65,536 hosts; got num_hosts=1000000" in err
    code, err = _cli(["cost", "--topology", "h100:800000000"], capsys)  # past any Topology: refused by the spec
    assert code == 2 and "TopologyError: topology 100000000x8 has 800,000,000 ranks; at most 16,777,216" in err


@pytest.mark.parametrize("hosts", [0, MAX_COST_HOSTS + 1, 2.5])
def test_split_features_refuses_bad_host_counts(hosts):
    with pytest.raises(errors.CostModelError, match="num_hosts"):
        split_features([16.0] * 4, [1.0] * 4, hosts)


def test_cost_model_at_the_largest_size_is_linear_in_towers():
    widths = [128.0] * 26
    loads = split_features(widths, [1.0] * 26, MAX_COST_HOSTS, "table")
    assert len(loads) == MAX_COST_HOSTS and sum(x[0] for x in loads) == sum(widths)
    assert sorted(x[0] for x in loads if x[0])[:1] == [128.0]  # whole tables, one per host
    r = predict_sptt(f"h100:{8 * MAX_COST_HOSTS}", batch_per_rank=64, tower_in_widths=[128.0, 128.0],
                     ids_per_sample=[1.0, 1.0], tower_hosts=[0, MAX_COST_HOSTS - 1])
    assert math.isfinite(r["total"]) and r["total"] > 0
    flat = predict_flat("h100:64", batch_per_rank=64, feature_widths=widths)
    assert math.isfinite(flat["total"])
