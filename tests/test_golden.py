"""Golden dumps of the rewritten graph and plan (tests/golden/<case>.txt; --update-golden rewrites)."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from helpers import check_golden, load_model
from polymorphic_models import fm_factory

CASES = {
    "dlrm_identity": ("example:dlrm", {}),
    "deepfm_linear_decoder": ("example:deepfm", {"tower_module": "linear", "compression": 4}),
    "fm_linear_direct": (fm_factory, {"tower_module": "linear", "compression": 2}),
    "fibinet_shared_specialize": ("zoo:shared_fibinet", {}),
    "torchrec_dlrm_identity": ("zoo:torchrec_dlrm", {}),
}
TOPOLOGIES = ("2x4", "4x2")


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_dump(case, topology, update_golden):
    source, options = CASES[case]
    model, inputs = source() if callable(source) else load_model(source)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, topology, inputs, **options)
    check_golden(f"{case}_{topology}", dmt.dump("table"), update_golden)


def test_dump_is_deterministic_across_runs():
    texts = set()
    for _ in range(2):
        model, inputs = load_model("example:dlrm")
        dmt = dmt_compile.transform(model, "2x4", inputs)
        texts.add(dmt.dump("table") + dmt.dump("json") + dmt.dump("dot") + dmt.dump("code"))
    assert len(texts) == 1
    assert "0x" not in texts.pop()  # no memory addresses
