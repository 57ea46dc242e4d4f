"""Compute terms of the cost model (dense part, decoders, Tower Modules, lookups, optimizer, dense
all-reduce, CPU share) and the calibration helpers that measure them."""
import pytest
import torch
from torch import nn

from dmt_compile.errors import CostModelError
from dmt_compile.topo import Topology
from dmt_compile.topo.calibrate import OpProfile, profile, roofline_seconds, time_parts
from dmt_compile.topo.cost_exprs import intra_a2a, rail_a2a
from dmt_compile.topo.cost_model import COMPUTE_TERMS, Workload, bind, evaluate, predict_flat, predict_sptt
from dmt_compile.topo.cost_symbols import CostParams

TOPO = Topology(2, 2, intra_bw=1e8, inter_bw=1e7, intra_latency=1e-4, inter_latency=2e-4, hbm_bw=1e10,
                flop_rate=1e10)
WIDTHS = [64.0] * 8


def _sptt(compute=None, params=None, c=None):
    out = [128.0, 128.0] if c is None else [128.0 / c] * 2
    return predict_sptt(TOPO, batch_per_rank=100, tower_in_widths=[256.0, 256.0], ids_per_sample=[4, 4],
                        tower_out_widths=None if c is None else out, tm_flops_per_sample=None if c is None else [0, 0],
                        params=params, compute=compute)


def test_compute_terms_default_to_zero_and_scale_with_ranks_per_device():
    base = _sptt()
    assert all(base[t] == 0 for t in ("dense", "decoder", "optimizer", "dense_sync"))
    compute = {"t_d": 1e-4, "t_o": 2e-3, "M_d": 1000}
    one = _sptt(compute)
    two = _sptt(compute, CostParams(ranks_per_device=2))
    assert one["dense"] == pytest.approx(100 * 1e-4)  # b * t_d, fwd + bwd
    assert one["optimizer"] == pytest.approx(2e-3)
    assert two["dense"] == pytest.approx(2 * one["dense"]) and two["optimizer"] == pytest.approx(4e-3)
    assert two["emb_dist"] == one["emb_dist"] and two["dense_sync"] == one["dense_sync"]  # the wire is not shared
    assert one["total"] == pytest.approx(base["total"] + one["dense"] + one["optimizer"] + one["dense_sync"])
    assert one["compute"] == pytest.approx(sum(one[t] for t in COMPUTE_TERMS))
    # measured fwd + bwd is split 1 : beta between the phases
    w = Workload(100, 512, 8, 512, 256, 4, 256, 128, t_d=1e-4)
    sec = evaluate(TOPO, "sptt", w).seconds
    assert sec["dense", "bwd"] == pytest.approx(2 * sec["dense", "fwd"])


def test_decoder_and_tower_module_time_only_for_sptt_tm():
    compute = {"t_x": 2e-5, "t_t": 3e-5, "t_d": 1e-5}
    tm = _sptt(compute, c=4)
    plain = _sptt(compute)
    flat = predict_flat(TOPO, batch_per_rank=100, feature_widths=WIDTHS, compute={"t_d": 1e-5})
    assert tm["decoder"] == pytest.approx(100 * 2e-5) and plain["decoder"] == 0 and flat["decoder"] == 0
    assert tm["tm"] == pytest.approx(2 * 100 * 3e-5)  # N * b samples per rank, no FLOP term (phi = 0)
    assert flat["dense"] == pytest.approx(tm["dense"])


def test_dense_sync_is_the_hierarchical_all_reduce():
    w = Workload(100, 512, 8, 512, 256, 4, 256, 128, M_d=4096)
    v = bind(TOPO, w, CostParams())
    expected = 2 * intra_a2a(4096 * 4.0) + 2 * rail_a2a(4096 * 4.0 / 2)
    assert evaluate(TOPO, "flat", w).seconds["dense_sync", "bwd"] == pytest.approx(float(expected.subs(v)))


def test_id_exchanges_pay_one_start_up_per_collective():
    one = _sptt()
    three = _sptt(params=CostParams(id_collectives=3))
    assert three["id_dist"] - one["id_dist"] == pytest.approx(2 * 2e-4)
    assert three["id_intra"] - one["id_intra"] == pytest.approx(2 * 1e-4)


def test_unknown_compute_field_is_refused():
    with pytest.raises(CostModelError, match="unknown compute field.*t_dense"):
        _sptt({"t_dense": 1.0})
    with pytest.raises(CostModelError, match="ranks_per_device"):
        CostParams(ranks_per_device=0)


def test_profile_counts_flops_bytes_and_operators():
    lin = nn.Linear(32, 16)
    x = torch.randn(10, 32)
    with profile() as c:
        lin(x).view(-1).sum()
    p = c.parts["all"]
    assert p.flops == 2 * 10 * 32 * 16  # addmm
    assert p.ops >= 3 and p.bytes > (10 * 32 + 32 * 16 + 10 * 16) * 4
    assert roofline_seconds(OpProfile(2e9, 1e9, 10), 1e9, 1e9, 1e-3) == pytest.approx(3.01)
    assert (OpProfile(1, 2, 3) + OpProfile(1, 1, 1)).scaled(2) == OpProfile(4, 6, 8)


def test_time_parts_splits_the_step_by_part():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 16)
            self.big = nn.Linear(16, 512)
            self.head = nn.Linear(512, 1)

        def forward(self, ids):
            return self.head(torch.relu(self.big(self.emb(ids)))).sum()

    m, ids = M(), torch.randint(0, 100, (256,))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)

    def part_of(parents):
        return "lookup" if any(p.endswith(".emb") for p in parents) else "dense"

    t = time_parts(lambda: m(ids), lambda: (opt.step(), opt.zero_grad()), part_of, reps=3)
    assert set(t.seconds) == {"lookup", "dense", "optimizer"}
    assert t.seconds["dense"] + t.seconds["lookup"] == pytest.approx(t.forward_backward_s)
    assert sum(t.forward_share.values()) == pytest.approx(1.0)
    assert t.seconds["optimizer"] > 0 and t.forward_share["dense"] > 0
