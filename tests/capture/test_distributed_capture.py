"""`verify` on 2x2 gloo processes for what capture now handles: torch.export graphs, split offset tables,
column picks along a transposed matrix, parameter tables read at ids, the probed constructs (an id
matrix flattened before its lookup, ids through constant maps, a scripted head, a dataclass output), and
inputs whose batch is dim 1 (a field-major id matrix, a time-major sequence: each rank gets its samples'
columns).

Outputs, every gradient and every updated parameter of the distributed run must match one process
(identity: the original model; linear c=4: the single-process transformed model) within 1e-5.
"""
from __future__ import annotations

import os

import pytest

import real_zoo
from conftest import ROOT
from dmt_compile.runtime.launch import launch_local
from dmt_compile.tools.verify import VerifyOptions
from dmt_compile.topo import Topology
from verify_workers import run_verify_cases

pytestmark = pytest.mark.distributed

EXPORT_ONLY = "zoo.m18_export_only_type_check:factory"
SPLIT_TABLE = "zoo.m08_xdeepfm_offsets_buffer:factory"  # one offset table + a dim-1 table, split per field
COLUMNS = "column_spellings:factory"  # x.T / narrow / chunk column picks, parameter tables read at ids
PROBED = "probed_constructs:factory"  # flattened id matrix, remap / bucketize, scripted head, dataclass out
FIELD_MAJOR = "field_major:factory"  # a field-major [F, B] id matrix, a time-major [L, B] sequence
CASES = [
    VerifyOptions(FIELD_MAJOR, "2x2"),
    VerifyOptions(FIELD_MAJOR, "2x2", "linear", 4),
    VerifyOptions(PROBED, "2x2"),
    VerifyOptions(PROBED, "2x2", "linear", 4),
    VerifyOptions(COLUMNS, "2x2"),
    VerifyOptions(COLUMNS, "2x2", "linear", 4),
    VerifyOptions(EXPORT_ONLY, "2x2"),
    VerifyOptions(EXPORT_ONLY, "2x2", "linear", 4),
    VerifyOptions(SPLIT_TABLE, "2x2"),
    VerifyOptions(SPLIT_TABLE, "2x2", "linear", 4, optimizer="adagrad"),
]


def _run(cases):
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "capture"), os.path.join(ROOT, "tests"), ROOT])}
    per_rank = launch_local(run_verify_cases, Topology(2, 2), args=(cases,), timeout_s=400, env=env)
    return [[per_rank[r][i] for r in range(4)] for i in range(len(cases))]


def _assert_exact(results):
    for r in results:
        assert r["grad_mismatch"] == []
        assert max(r["output"], r["grad"], r["param"]) <= 1e-5, r
        assert r["params_checked"] > 0


@pytest.fixture(scope="module")
def results():
    return _run(CASES)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.spec.split(':')[0]}-{c.tower_module}" for c in CASES])
def test_verify_exact_on_2x2(results, index):
    _assert_exact(results[index])


# one model per real library: torchfm (numpy offsets, one table per model part), deepctr-torch (one
# input matrix sliced per feature), torch-rechub (dict inputs, DCN cross layers), torchctr (wide & deep)
REAL = {
    "torchfm": "real_zoo.zoo_torchfm:make_torchfm_dfm",
    "deepctr": "real_zoo.zoo_deepctr:make_deepctr_deepfm",
    "rechub": "real_zoo.zoo_rechub:make_rechub_dcn",
    "torchctr": "real_zoo.zoo_torchctr:make_torchctr_wideanddeepmodel",
}


@pytest.mark.parametrize("lib", sorted(REAL))
def test_verify_exact_on_a_real_library_model(lib):
    if not real_zoo.installed(lib):
        pytest.skip(f"{real_zoo.LIBRARIES[lib][0]} is not installed (.ci/run installs the real-package zoos)")
    for case in _run([VerifyOptions(REAL[lib], "2x2"), VerifyOptions(REAL[lib], "2x2", "linear", 4)]):
        _assert_exact(case)
