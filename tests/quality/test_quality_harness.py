"""The training harness, report tables, CLI subcommands and the Adult loader (skipped without the file)."""
import argparse
import io
import json

import pytest
import torch

from benchmarks.quality import (
    TrainConfig, adult_available, load_adult, make_planted, results_table, run_seed, summarize,
)
from dmt_compile.tools.cmd_train import register
from dmt_compile.partition.affinity import FeatureAffinity, feature_graph, feature_graph_dot


def test_run_seed_flat_vs_dmt_side_by_side():
    data = make_planted(1500, num_groups=2, group_size=2, cardinality=12, rank=2, clusters=4, seed=0)
    train, test = data.split(0.3, seed=0)
    cfg = TrainConfig(epochs=2, pretrain_epochs=1, batch_size=256, dim=8, topology="2x1", num_towers=2,
                      calibration=2, progress=False)
    results = run_seed(train, test, 0, cfg, [("learned", "identity"), ("random", "dot")])
    keys = [r.key for r in results]
    assert keys == ["flat", "dmt/learned/identity", "dmt/random/dot"]
    flat, ident = results[0], results[1]
    assert ident.auc == pytest.approx(flat.auc, abs=1e-6)  # identity TM = the flat model
    rows = summarize(results)
    assert rows[0]["d_auc"] == 0.0
    table = results_table(rows)
    assert "dmt/random/dot" in table and "ΔAUC" in table


def test_feeds_are_variants_and_the_feed_used_is_recorded():
    data = make_planted(1500, num_groups=2, group_size=4, cardinality=12, rank=2, clusters=4, seed=0)
    train, test = data.split(0.3, seed=0)
    cfg = TrainConfig(epochs=2, pretrain_epochs=1, batch_size=256, dim=8, topology="2x1", num_towers=2,
                      calibration=2, progress=False)
    results = run_seed(train, test, 0, cfg, [("learned", "dot"), ("learned", "dot", "decoder"),
                                             ("learned", "linear", "hierarchical")])
    assert [(r.key, r.feed) for r in results] == [
        ("flat", ""), ("dmt/learned/dot", "hierarchical"), ("dmt/learned/dot/decoder", "decoder"),
        ("dmt/learned/linear/hierarchical", "hierarchical")]
    rows = summarize(results)
    assert [r["feed"] for r in rows] == ["—", "hierarchical", "decoder", "hierarchical"]
    assert "| dmt/learned/dot/decoder | decoder |" in results_table(rows)


def test_unknown_feed_is_a_typed_error_naming_it():
    from dmt_compile.errors import TowerModuleError

    args = _parser().parse_args(["train", "--samples", "600", "--seeds", "0", "--feeds", "hierarchical,sideways",
                                 "--no-progress", "--no-baselines"])
    with pytest.raises(TowerModuleError, match="unknown feed 'sideways' in --feeds") as info:
        args.func(args, io.StringIO())
    assert "hierarchical" in info.value.fix


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    register(sub)
    return p


def test_train_subcommand_writes_tables_and_json(tmp_path):
    out = io.StringIO()
    path = tmp_path / "runs.json"
    args = _parser().parse_args(["train", "--samples", "1200", "--seeds", "0", "--tower-modules", "linear",
                                 "--partitioners", "learned", "--epochs", "2", "--pretrain-epochs", "1",
                                 "--no-progress", "--json", str(path), "--calibration", "2"])
    assert args.func(args, out) == 0
    text = out.getvalue()
    assert "Partitioners side by side" in text and "dmt/learned/linear" in text
    runs = json.loads(path.read_text())["runs"]
    assert {r["variant"] for r in runs} == {"flat", "dmt"}


def test_feature_graph_subcommand_and_dot(tmp_path):
    out = io.StringIO()
    dot_path = tmp_path / "g.dot"
    args = _parser().parse_args(["feature-graph", "examples/dlrm.py:factory", "--calibration", "2",
                                 "--out", str(dot_path)])
    assert args.func(args, out) == 0
    text = dot_path.read_text()
    assert text.startswith("graph feature_affinity {") and "cluster_tower1" in text
    assert "affinity_captured" in out.getvalue()


def test_feature_graph_dot_colours_by_tower():
    aff = FeatureAffinity(("a", "b", "c"), torch.tensor([[0, 1.0, 0.1], [1.0, 0, 0], [0.1, 0, 0]]))

    class Plan:
        towers = (("a", "b"), ("c",))

    assert aff.captured({"a": 0, "b": 0, "c": 1}) == pytest.approx(1.0 / 1.1)
    assert feature_graph(aff).number_of_edges() == 2
    dot = feature_graph_dot(Plan(), aff)
    assert '"a" -- "b"' in dot and "style=dashed" in dot


@pytest.mark.skipif(not adult_available(), reason="adult.csv.gz is not present")
def test_adult_loader():
    data = load_adult(limit=2000)
    assert len(data) == 2000 and len(data.feature_names) == 14 and data.dense.shape[1] == 6
    assert all(int(data.sparse[:, i].max()) < c for i, c in enumerate(data.cardinalities))
    assert 0.1 < float(data.labels.mean()) < 0.5
    a, b = data.split(0.2, seed=3)
    a2, _ = data.split(0.2, seed=3)
    assert len(b) == 400 and torch.equal(a.labels, a2.labels)


def test_missing_adult_file_is_a_typed_error(tmp_path):
    from dmt_compile.errors import InputError

    with pytest.raises(InputError, match="does not exist"):
        load_adult(str(tmp_path / "nope.csv.gz"))
