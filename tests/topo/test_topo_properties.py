"""Hypothesis: more bandwidth never costs more time; compression never costs more cross-host bytes."""
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dmt_compile.topo import Topology
from dmt_compile.topo.cost_exprs import STRATEGIES
from dmt_compile.topo.cost_model import Workload, evaluate, predict_sptt
from dmt_compile.topo.cost_symbols import CostParams

pos = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)
bw = st.floats(min_value=1e8, max_value=1e12)
lat = st.floats(min_value=0.0, max_value=1e-4)


@st.composite
def topologies(draw):
    return Topology(draw(st.integers(1, 64)), draw(st.integers(1, 16)), intra_bw=draw(bw), inter_bw=draw(bw),
                    intra_latency=draw(lat), inter_latency=draw(lat), hbm_bw=draw(bw), flop_rate=1e14)


@st.composite
def workloads(draw):
    d_t = draw(pos)
    return Workload(draw(st.integers(1, 8192)), draw(pos), draw(pos), draw(pos), d_t, draw(pos), draw(pos),
                    draw(st.floats(0, 1)) * d_t, draw(pos), draw(pos))


params = st.builds(CostParams, eta_intra=st.floats(0.1, 1), eta_inter=st.floats(0.1, 1),
                   n_half_intra=st.floats(0, 1e6), n_half_inter=st.floats(0, 1e6),
                   gap_intra=st.floats(0, 1e-5), gap_inter=st.floats(0, 1e-5), congestion=st.floats(0, 1))
factor = st.floats(min_value=1.0, max_value=100.0)


@settings(max_examples=60, deadline=None)
@given(topologies(), workloads(), params, factor, factor, factor, st.sampled_from(STRATEGIES))
def test_more_bandwidth_never_costs_more_time(topo, work, prm, fi, fe, fm, strategy):
    slow = evaluate(topo, strategy, work, prm).summary()
    fast_topo = replace(topo, intra_bw=topo.intra_bw * fi, inter_bw=topo.inter_bw * fe, hbm_bw=topo.hbm_bw * fm)
    fast = evaluate(fast_topo, strategy, work, prm).summary()
    for key, value in slow.items():
        assert fast[key] <= value * (1 + 1e-9) + 1e-15, key


@settings(max_examples=60, deadline=None)
@given(topologies(), workloads(), params, st.floats(0, 1e-4))
def test_less_latency_never_costs_more_time(topo, work, prm, extra):
    for strategy in STRATEGIES:
        base = evaluate(topo, strategy, work, prm).summary()["total"]
        slower = replace(topo, inter_latency=topo.inter_latency + extra, intra_latency=topo.intra_latency + extra)
        assert evaluate(slower, strategy, work, prm).summary()["total"] >= base * (1 - 1e-9)


@settings(max_examples=60, deadline=None)
@given(topologies(), st.integers(1, 4096), st.lists(st.floats(1, 1024), min_size=1, max_size=8),
       st.floats(1, 64), st.floats(1, 4))
def test_compression_never_costs_more_cross_host_bytes(topo, batch, widths, c1, grow):
    widths = widths[: topo.num_hosts]
    c2 = c1 * grow
    ids = [1.0] * len(widths)
    w_id = Workload(batch, sum(widths), len(widths), sum(widths), max(widths), 1, max(widths), max(widths))
    w1 = replace(w_id, o_t=max(widths) / c1)
    w2 = replace(w_id, o_t=max(widths) / c2)
    b_id = evaluate(topo, "sptt", w_id).bytes["cross_host"]
    b1 = evaluate(topo, "sptt_tm", w1).bytes["cross_host"]
    b2 = evaluate(topo, "sptt_tm", w2).bytes["cross_host"]
    assert b2 <= b1 * (1 + 1e-12) <= b_id * (1 + 1e-12) + 1e-9
    t1 = predict_sptt(topo, batch_per_rank=batch, tower_in_widths=widths, ids_per_sample=ids,
                      tower_out_widths=[x / c1 for x in widths])
    t2 = predict_sptt(topo, batch_per_rank=batch, tower_in_widths=widths, ids_per_sample=ids,
                      tower_out_widths=[x / c2 for x in widths])
    assert t2["emb_dist"] <= t1["emb_dist"] * (1 + 1e-9) + 1e-15
