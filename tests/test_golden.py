"""Golden graphs of whole models after the pipeline (tests/golden/<case>.txt; --update-golden rewrites).

Graph only, in the compact printer's format (<= 120 columns); plans, capture reports and costs
have their own tests, and each pass has before/expected tests in tests/passes/.
"""
from __future__ import annotations

import os

import pytest
import torch

import dmt_compile
from conftest import HERE
from dmt_compile.printing import format_compact
from helpers import check_golden, load_model
from polymorphic_models import fm_factory

CASES = {  # case -> (model, topology, transform options)
    "dlrm_identity_2x4": ("example:dlrm", "2x4", {}),
    "deepfm_linear_decoder_2x4": ("example:deepfm", "2x4", {"tower_module": "linear", "compression": 4}),
    "fm_linear_direct_2x4": (fm_factory, "2x4", {"tower_module": "linear", "compression": 2}),
    "fm_linear_decoder_4x2": (fm_factory, "4x2", {"tower_module": "linear", "compression": 2}),
    "fibinet_shared_specialize_4x2": ("zoo:shared_fibinet", "4x2", {}),
    "torchrec_dlrm_identity_2x4": ("zoo:torchrec_dlrm", "2x4", {}),
    # hierarchical feed: compressed tower outputs feed the dot interaction, pair indices and top MLP rebuilt
    "dlrm_dot_hierarchical_2x4": ("example:dlrm", "2x4", {"tower_module": "dot", "compression": 4}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_graph(case, update_golden):
    source, topology, options = CASES[case]
    model, inputs = source() if callable(source) else load_model(source)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, topology, inputs, **options)
    text = format_compact(dmt.graph_module) + "\n"
    assert max(len(line) for line in text.splitlines()) <= 120
    check_golden(case, text, update_golden)


def test_no_stale_goldens():
    files = {f[:-4] for f in os.listdir(os.path.join(HERE, "golden")) if f.endswith(".txt")}
    assert files <= set(CASES), f"golden files without a case: {sorted(files - set(CASES))}; delete them"


def test_dump_is_deterministic_across_runs():
    texts = set()
    for _ in range(2):
        model, inputs = load_model("example:dlrm")
        dmt = dmt_compile.transform(model, "2x4", inputs)
        texts.add(dmt.dump("table") + dmt.dump("json") + dmt.dump("dot") + dmt.dump("code"))
    assert len(texts) == 1
    assert "0x" not in texts.pop()  # no memory addresses
