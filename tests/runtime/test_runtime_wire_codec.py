"""Wire codecs of the embedding exchanges: round trips within the format's rounding, bytes on the wire,
and distributed training steps against the exact single-process reference (forward and gradients).

Stated tolerances (``WIRE_TOLERANCE``, largest |difference| of outputs, gradients and parameters after
one SGD step of the DLRM example on 2x2): fp16 5e-3, bf16 5e-2, fp8 e4m3 1.5e-1. Without a wire dtype
the exchanges carry the fields' own dtype: a float64 model stays exact (<= 1e-12).
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from dmt_compile.errors import InputError
from dmt_compile.runtime.launch import launch_local
from dmt_compile.runtime.wire_codec import (FP8_HEADER_BYTES, WIRE_DTYPES, WIRE_TOLERANCE, WireCodec,
                                            check_wire_dtype, codec_for, fp8_supported)
from dmt_compile.tools.verify import VerifyOptions, verify_worker
from dmt_compile.topo import Topology

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
DLRM64 = "runtime.wire_models:dlrm_float64"
REL = {"fp32": 2 ** -24, "fp16": 2 ** -11, "bf16": 2 ** -8, "fp8_e4m3": 2 ** -4}  # one cast, relative to amax
CODECS = [w for w in WIRE_DTYPES if w != "fp8_e4m3" or fp8_supported()]


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=5), name=st.sampled_from(CODECS),
       scale=st.sampled_from([1e-6, 1e-2, 1.0, 50.0]), seed=st.integers(0, 1000))
def test_codec_round_trip_within_rounding(counts, name, scale, seed):
    flat = torch.randn(sum(counts), generator=torch.Generator().manual_seed(seed)) * scale
    codec = WireCodec(name)
    wire = codec.encode(flat, counts)
    assert wire.numel() == sum(codec.wire_counts(counts))
    back = codec.decode(wire, counts, torch.float32)
    assert back.shape == flat.shape
    for a, b in zip(torch.split(flat, counts), torch.split(back, counts)):
        if a.numel():  # per block: relative to its largest magnitude (fp16's subnormals: absolute floor)
            floor = 6e-8 if name == "fp16" else 0.0
            assert float((a - b).abs().max()) <= REL[name] * float(a.abs().max()) + floor


@pytest.mark.parametrize("name,per_element", [("fp32", 4), ("fp16", 2), ("bf16", 2), ("fp8_e4m3", 1)])
def test_wire_bytes_per_element(name, per_element):
    if name == "fp8_e4m3" and not fp8_supported():
        pytest.skip("this torch has no float8 casts on CPU")
    codec, counts = WireCodec(name), [5, 0, 7]
    wire = codec.encode(torch.randn(12, dtype=torch.float64), counts)
    header = 2 * FP8_HEADER_BYTES if name == "fp8_e4m3" else 0  # one scale per non-empty block
    assert wire.numel() * wire.element_size() == 12 * per_element + header


def test_codec_choice_and_errors():
    assert codec_for(None, torch.float32) is None and codec_for("fp32", torch.float32) is None
    assert codec_for("fp32", torch.float64) == WireCodec("fp32")  # a float64 model on an fp32 wire
    assert codec_for("bf16", torch.float32) == WireCodec("bf16")
    with pytest.raises(InputError, match="unknown wire_dtype 'int8'"):
        check_wire_dtype("int8")


def test_transform_refuses_unknown_wire_dtype():
    import dmt_compile
    from helpers import load_model

    model, inputs = load_model("example:dlrm")
    with pytest.raises(InputError, match="wire_dtype"):
        dmt_compile.transform(model, "2x2", inputs, wire_dtype="float7")


CASES = [VerifyOptions(DLRM, "2x2", "linear", 4)] + \
    [VerifyOptions(DLRM, "2x2", "linear", 4, wire_dtype=w) for w in CODECS if w != "fp32"] + \
    [VerifyOptions(DLRM, "2x2", strategy="flat"), VerifyOptions(DLRM, "2x2", strategy="flat", wire_dtype="bf16"),
     VerifyOptions(DLRM64, "2x2"), VerifyOptions(DLRM64, "2x2", strategy="flat"),
     VerifyOptions(DLRM64, "2x2", wire_dtype="fp32")]


def _run(rank, cases):
    return [verify_worker(rank, c) for c in cases]


@pytest.fixture(scope="module")
def results():
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    per_rank = launch_local(_run, Topology(2, 2), args=(CASES,), timeout_s=500, env=env)
    return {(c.spec, c.strategy, c.tower_module, c.wire_dtype): [per_rank[r][i] for r in range(4)]
            for i, c in enumerate(CASES)}


def _worst(rows):
    return max(max(r["output"], r["grad"], r["param"]) for r in rows)


def _op_bytes(rows, key):
    return sum(r["stats_by_op"].get(key, {}).get("bytes_sent", 0) for r in rows)


@pytest.mark.distributed
def test_coded_steps_match_reference_within_tolerance(results):
    for w in CODECS:
        if w == "fp32":
            continue
        rows = results[(DLRM, "sptt", "linear", w)]
        worst = _worst(rows)
        assert 0 < worst <= WIRE_TOLERANCE[w], (w, worst)  # > 0: the codec really rounded
    flat = results[(DLRM, "flat", "identity", "bf16")]
    assert 0 < _worst(flat) <= WIRE_TOLERANCE["bf16"]


@pytest.mark.distributed
def test_default_wire_is_exact_even_for_float64(results):
    assert _worst(results[(DLRM, "sptt", "linear", None)]) <= 1e-5
    assert _worst(results[(DLRM64, "sptt", "identity", None)]) <= 1e-12
    assert _worst(results[(DLRM64, "flat", "identity", None)]) <= 1e-12
    lossy = _worst(results[(DLRM64, "sptt", "identity", "fp32")])  # float64 model forced onto an fp32 wire
    assert 1e-12 < lossy <= WIRE_TOLERANCE["fp32"]


@pytest.mark.distributed
def test_counted_bytes_halve_for_16_bit_wires(results):
    exact, ref = results[(DLRM, "sptt", "linear", None)], results[(DLRM, "flat", "identity", None)]
    for w in ("fp16", "bf16"):
        rows = results[(DLRM, "sptt", "linear", w)] if w in CODECS else None
        for op in ("cross/outputs", "cross/outputs.bwd"):
            assert 2 * _op_bytes(rows, op) == _op_bytes(exact, op) > 0, (w, op)
        assert 2 * sum(_op_bytes(rows, f"intra/tower{t}.emb") for t in range(2)) == \
            sum(_op_bytes(exact, f"intra/tower{t}.emb") for t in range(2)) > 0
        assert _op_bytes(rows, "cross/ids") == _op_bytes(exact, "cross/ids")  # ids are never coded
    flat = results[(DLRM, "flat", "identity", "bf16")]
    emb = [k for k in ref[0]["stats_by_op"] if k.endswith(".emb") or k.endswith(".emb.bwd")]
    assert emb and all(2 * _op_bytes(flat, k) == _op_bytes(ref, k) > 0 for k in emb)


@pytest.mark.distributed
def test_fp8_wire_moves_a_quarter_plus_block_scales(results):
    if "fp8_e4m3" not in CODECS:
        pytest.skip("this torch has no float8 casts on CPU")
    exact, rows = results[(DLRM, "sptt", "linear", None)], results[(DLRM, "sptt", "linear", "fp8_e4m3")]
    got, full = _op_bytes(rows, "cross/outputs"), _op_bytes(exact, "cross/outputs")
    assert full / 4 < got <= full / 4 + 4 * FP8_HEADER_BYTES  # 4 ranks, one peer block each
