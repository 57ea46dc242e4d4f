"""The symbolic cost model: units, formulas, anchor checks, crossover, planner API, errors."""
import math

import pytest
import sympy as sp

from dmt_compile.errors import CostModelError, DmtError
from dmt_compile.topo import Topology, as_topology
from dmt_compile.topo.cost_exprs import (PHASES, STRATEGIES, TERMS, byte_exprs, flat_a2a, formula,
                                         intra_a2a, rail_a2a, strategy_exprs)
from dmt_compile.topo.cost_model import (RESULT_KEYS, Workload, bind, evaluate, predict_flat,
                                         predict_sptt, split_features)
from dmt_compile.topo.cost_symbols import SYMBOLS, CostParams, S, symbol_table, unit_of

MiB = 2**20


def test_every_symbol_has_a_unit():
    for strategy in STRATEGIES:
        exprs = list(strategy_exprs(strategy).values()) + list(byte_exprs(strategy).values())
        for sym in set().union(*(e.free_symbols for e in exprs)):
            assert unit_of(sym)
    assert len(symbol_table()) == len(SYMBOLS)
    assert set(strategy_exprs("sptt")) == {(t, p) for t in TERMS for p in PHASES}


def test_formula_prints_substitutes_and_lambdifies():
    f = formula("sptt_tm", "emb_dist", "fwd")
    assert "o_t" in str(f) and "B_e" in str(f)
    w = Workload(1024, 3328, 26, 3328, 416, 3.25, 416, 104)
    values = bind("h100:64", w)
    direct = float(f.subs(values))
    fast = evaluate("h100:64", "sptt_tm", w).seconds["emb_dist", "fwd"]
    assert direct == pytest.approx(fast, rel=1e-9)
    fn = sp.lambdify(S.N, formula("flat").subs({k: v for k, v in values.items() if k != S.N}), "math")
    assert fn(8.0) == pytest.approx(evaluate("h100:64", "flat", w).summary()["total"], rel=1e-9)


def _anchor28():
    # illustrative assumptions: DGX H100, α_i=3 µs, α_e=6 µs, HBM copy 2000 GB/s
    return CostParams(intra_latency=3e-6, inter_latency=6e-6, hbm_bw=2000e9)


@pytest.mark.parametrize("gpus,size,flat_us,twod_us", [
    (64, 4 * MiB, 197, 125), (256, 4 * MiB, 582, 181), (1024, 4 * MiB, 2086, 371),
    (64, 64 * MiB, 1421, 1627), (4096, 64 * MiB, 9492, 2797),
])
def test_reproduces_collectives_anchor_2_8(gpus, size, flat_us, twod_us):
    topo = as_topology(f"h100:{gpus}")
    w = Workload(1, 1, 1, 1, 1, 1, 1, 1)
    v = bind(topo, w, _anchor28())
    flat = float(flat_a2a(sp.Float(size)).subs(v))
    twod = float((intra_a2a(sp.Float(size)) + rail_a2a(sp.Float(size)) + 4 * size / S.B_m).subs(v))
    assert flat * 1e6 == pytest.approx(flat_us, rel=0.01)
    assert twod * 1e6 == pytest.approx(twod_us, rel=0.01)


@pytest.mark.parametrize("hosts,local", [(2, 8), (4, 8), (16, 8), (64, 8), (512, 8), (8, 16)])
def test_flat_busbw_tends_to_n_over_n_minus_1_nic(hosts, local):
    topo = Topology(hosts, local, intra_bw=450e9, inter_bw=50e9, intra_latency=0.0, inter_latency=0.0,
                    hbm_bw=3e12)
    size = 1e12  # huge message: bandwidth-bound
    t = float(flat_a2a(sp.Float(size)).subs(bind(topo, Workload(1, 1, 1, 1, 1, 1, 1, 1), CostParams.ideal())))
    p = hosts * local
    busbw = size / t * (p - 1) / p
    assert busbw == pytest.approx(50e9 * hosts / (hosts - 1) * (p - 1) / p, rel=1e-9)
    assert abs(busbw / (50e9 * hosts / (hosts - 1)) - 1) <= 1 / p + 1e-12
    if hosts >= 512:
        assert busbw == pytest.approx(50e9, rel=0.01)  # -> 1x NIC as nodes grow (nccl-tests #130)


def _report(topo, c=None, batch=1024):
    n = as_topology(topo).num_hosts
    widths = [128.0] * 26
    loads = split_features(widths, [1.0] * 26, n)
    flat = predict_flat(topo, batch_per_rank=batch, feature_widths=widths)
    towers = dict(tower_in_widths=[x[0] for x in loads], ids_per_sample=[x[1] for x in loads],
                  rows_per_sample=[x[2] for x in loads])
    if c is not None:
        towers["tower_out_widths"] = [x[0] / c for x in loads]
    return flat, predict_sptt(topo, batch_per_rank=batch, **towers)


def test_two_level_loses_small_scale_large_messages_and_wins_at_scale():
    flat, sptt = _report("h100:16", batch=4096)
    assert sptt["total"] > flat["total"]  # Tutel's crossover: copies + serial phases
    flat, sptt = _report("h100:512")
    assert flat["total"] / sptt["total"] > 2
    ratios = [(lambda f, s: f["total"] / s["total"])(*_report(f"a100:{g}")) for g in (16, 64, 256, 512)]
    assert ratios == sorted(ratios)  # the advantage grows with the GPU count


def test_compression_helps_and_keys_are_stable():
    flat, sptt = _report("h100:64")
    _, tm4 = _report("h100:64", c=4)
    _, tm16 = _report("h100:64", c=16)
    assert tuple(sptt) == tuple(tm4) == tuple(flat) == RESULT_KEYS
    assert flat["total"] > sptt["total"] > tm4["total"] > tm16["total"]
    assert sptt["tm"] == 0 and tm4["tm"] > 0 and tm4["tm_sync"] > 0
    assert math.isclose(tm4["total"], tm4["fwd"] + tm4["bwd"])
    assert math.isclose(tm4["comm"] + tm4["compute"], tm4["total"])


def test_single_host_has_no_cross_host_terms():
    flat, sptt = _report("h100:8")
    assert sptt["id_dist"] == 0 and sptt["emb_dist"] == 0
    w = Workload(512, 128, 1, 128, 128, 1, 128, 128)
    assert evaluate("h100:8", "sptt", w).bytes["cross_host"] == 0


def test_split_features():
    col = split_features([128] * 26, [1.0] * 26, 64)
    assert all(x[0] == pytest.approx(52) for x in col)
    assert sum(x[0] for x in col) == pytest.approx(3328)
    tab = split_features([100, 50, 50, 30], [1, 2, 3, 4], 2, "table")
    assert sorted(x[0] for x in tab) == [100, 130]
    with pytest.raises(CostModelError):
        split_features([1], [1], 2, "diagonal")


def test_errors_are_typed_and_loud():
    with pytest.raises(CostModelError) as info:
        predict_flat("2x4", batch_per_rank=512, feature_widths=[128])
    assert "no silent defaults" in str(info.value) and "h100" in info.value.fix
    with pytest.raises(CostModelError):
        predict_sptt("torchrec:16", batch_per_rank=512, tower_in_widths=[64, 64], ids_per_sample=[1, 1],
                     tower_out_widths=[16, 16])  # torchrec-default has no flop_rate
    with pytest.raises(CostModelError):
        predict_sptt("h100:16", batch_per_rank=512, tower_in_widths=[1, 1, 1], ids_per_sample=[1, 1, 1])
    with pytest.raises(CostModelError):
        predict_sptt("h100:16", batch_per_rank=512, tower_in_widths=[1, 1], ids_per_sample=[1])
    with pytest.raises(CostModelError):
        predict_flat("h100:16", batch_per_rank=512, feature_widths=[1], strategy="sptt")
    with pytest.raises(CostModelError):
        evaluate("h100:16", "nope", Workload(1, 1, 1, 1, 1, 1, 1, 1))
    with pytest.raises(CostModelError):
        CostParams(eta_inter=1.5)
    with pytest.raises(CostModelError):
        CostParams().with_overrides(bogus=1)
    with pytest.raises(DmtError):
        Workload(-1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(CostModelError):
        formula("flat", "nope")


def test_tower_hosts_and_congestion():
    base = dict(batch_per_rank=1024, tower_in_widths=[100, 100, 100], ids_per_sample=[1, 1, 1])
    spread = predict_sptt("h100:32", tower_hosts=[0, 1, 2], **base)
    packed = predict_sptt("h100:32", tower_hosts=[0, 0, 1], **base)
    assert packed["total"] > spread["total"]
    widths = [128.0] * 26
    calm = predict_flat("h100:512", batch_per_rank=1024, feature_widths=widths)
    hot = predict_flat("h100:512", batch_per_rank=1024, feature_widths=widths,
                       params=CostParams(congestion=0.07))
    assert hot["emb_dist"] > calm["emb_dist"]
