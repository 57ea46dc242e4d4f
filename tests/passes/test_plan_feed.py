"""plan-feed alone: identity, direct, hierarchical feed and decoders decided before any graph change."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from harness import FourFields, TwoTables, compact, ids, prepare, run_alone

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.feed import FeedPlan
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers


class TinyDLRM(nn.Module):
    """dense -> [B, D] (no final ReLU, so every dense column varies), F embeddings, pairwise dots through
    a triu buffer (one [2, M] buffer or two [M] buffers), top Linear over cat(dense, dots)."""

    def __init__(self, fields: int = 4, dim: int = 4, split_buffers: bool = False, offset: int = 1,
                 pairs=torch.triu_indices):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(20 + i, dim) for i in range(fields))
        self.bottom = nn.Linear(3, dim)
        n = fields + 1
        triu = pairs(n, n, offset)
        self.split = split_buffers
        if split_buffers:
            self.register_buffer("rows", triu[0].clone(), persistent=False)
            self.register_buffer("cols", triu[1].clone())
        else:
            self.register_buffer("triu", triu, persistent=False)
        self.top = nn.Linear(dim + triu.shape[1], 1)

    def forward(self, dense, x):
        d = self.bottom(dense)
        z = torch.stack([d] + [t(x[:, i]) for i, t in enumerate(self.tables)], dim=1)
        zz = torch.bmm(z, z.transpose(1, 2))
        flat = zz[:, self.rows, self.cols] if self.split else zz[:, self.triu[0], self.triu[1]]
        return self.top(torch.cat([d, flat], dim=1))


class TinyDCN(nn.Module):
    """cat(dense, embeddings) -> full-rank cross layers x0 * W x + x (or a low-rank U V) -> LayerNorm -> Linear."""

    def __init__(self, fields: int = 4, dim: int = 4, dense: int = 3, low_rank: bool = False):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(20 + i, dim) for i in range(fields))
        w = dense + fields * dim
        self.cross = nn.ModuleList(nn.Sequential(nn.Linear(w, 2, bias=False), nn.Linear(2, w)) if low_rank
                                   else nn.Linear(w, w) for _ in range(2))
        self.norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, 1)

    def forward(self, dense, x):
        x0 = torch.cat([dense] + [t(x[:, i]) for i, t in enumerate(self.tables)], dim=1)
        h = x0
        for layer in self.cross:
            h = x0 * layer(h) + h
        return self.head(self.norm(h))


class RawWeight(nn.Module):
    """stack -> flatten -> matmul with a raw Parameter: nothing hierarchical feed can rebuild."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(12, 4)
        self.w = nn.Parameter(torch.randn(8, 1))

    def forward(self, x):
        return torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1).flatten(1) @ self.w


class PackedGRU(nn.Module):
    """Embedding sequences packed for a GRU: the node that fails with fewer embeddings takes a PackedSequence,
    a named tuple whose constructor checks its fields (describing the failure must not rebuild it)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(12, 4)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        seq = torch.cat([self.a(x[:, :3]), self.b(x[:, 3:])], dim=-1)
        lengths = torch.tensor([3, 2, 1, 3, 2, 1])
        _, h = self.gru(pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False))
        return self.head(h[-1])


class SharedTop(nn.Module):
    """One Linear applied to the flattened embeddings and to a dense input of the same width."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(4))
        self.top = nn.Linear(16, 1)

    def forward(self, dense, x):
        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], dim=1).flatten(1)
        return self.top(e) + self.top(dense.repeat(1, 6)[:, :16])


class StrayBuffer(TinyDLRM):
    """The pair-index buffers also index a matrix whose size does not change with the embeddings."""

    def __init__(self):
        super().__init__(split_buffers=True)
        self.register_buffer("fixed", torch.ones(1, 5, 5))

    def forward(self, dense, x):
        fixed = self.fixed * dense[:, :1, None]  # [B, 5, 5]: its size does not depend on the embeddings
        return super().forward(dense, x) + fixed[:, self.rows, self.cols].sum(1, keepdim=True)


class OddPairs(TinyDLRM):
    """Pair indices that are not a triangle (a hand-picked subset): cannot be recomputed for a new n."""

    def __init__(self):
        super().__init__()
        self.triu = torch.tensor([[0, 0, 1], [1, 2, 3]])
        self.top = nn.Linear(4 + 3, 1)


def dense_ids(batch: int = 8, fields: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, generator=g), torch.randint(0, 20, (batch, fields), generator=g)


def _planned(model, inputs, **plan):
    gm, ctx = prepare(model, inputs)
    for p in (Detect(), PlanTowers(**plan)):
        gm, _, _ = run_alone(p, gm, ctx)
    return gm, ctx


def _feed(model, inputs, feed_pass, **plan):
    gm, ctx = _planned(model, inputs, **plan)
    before = compact(gm)
    gm, added, removed = run_alone(feed_pass, gm, ctx)
    assert not added and not removed and compact(gm) == before  # an analysis: the graph is untouched
    return ctx.get(FeedPlan), ctx.get(TowerPlan)


def test_identity_towers_carry_their_lookups():
    feed, _ = _feed(FourFields(), (ids(fields=4),), PlanFeed())
    assert feed.identity and [t.feed for t in feed.towers] == ["identity", "identity"] and not feed.rebuilt


def test_polymorphic_interaction_gets_direct_feed():
    feed, plan = _feed(FourFields(), (ids(fields=4),), PlanFeed("linear", 2.0))
    assert [(t.feed, t.pieces, t.piece_shape, t.core_width) for t in feed.towers] == [("direct", 1, (4,), 4)] * 2
    assert [d.width_out for d in plan.details] == [4, 4] and plan.tower_module == "linear"
    assert all(u.site == "stack" for t in feed.towers for u in t.uses) and not feed.rebuilt


def test_linear_tower_module_gets_hierarchical_feed_only_when_asked():
    """auto: a linear TM computes no in-tower interaction, so it keeps decoders (and says why)."""
    feed, plan = _feed(TwoTables(), (ids(),), PlanFeed("linear", 2.0), num_towers=1)
    assert [t.feed for t in feed.towers] == ["decoder"] and not feed.rebuilt
    assert "not chosen by feed='auto' for the linear Tower Module" in feed.notes[0]
    feed, plan = _feed(TwoTables(), (ids(),), PlanFeed("linear", 2.0, "hierarchical"), num_towers=1)
    assert [t.feed for t in feed.towers] == ["hierarchical"] and [r.target for r in feed.rebuilt] == ["top"]


def test_fixed_width_layer_after_the_interaction_is_rebuilt():
    feed, plan = _feed(TwoTables(), (ids(),), PlanFeed("dot", 2.0), num_towers=1)
    assert [(t.feed, t.pieces, t.piece_shape) for t in feed.towers] == [("hierarchical", 1, (4,))]
    (top,) = feed.rebuilt
    assert (top.target, top.kind, top.old_shape, top.new_shape, top.init) == ("top", "linear", (1, 8), (1, 4), "copy")
    assert top.in_runs == () and top.out_runs == ()  # every input column came from the embeddings
    assert plan.rebuilt == feed.rebuilt and plan.details[0].feed == "hierarchical"
    assert "rebuilt for the compressed width: top (linear 1x8 -> 1x4; input width 8 -> 4)" in str(plan)
    assert plan.to_dict()["rebuilt"][0]["new_shape"] == (1, 4)


@pytest.mark.parametrize("split, offset", [(False, 1), (True, 1), (True, 0), (False, -1)])
def test_dlrm_pair_indices_and_top_mlp_are_rebuilt(split, offset):
    # offset -1: tril below the diagonal, the same pairs seen from below
    model = TinyDLRM(split_buffers=split, offset=offset, pairs=torch.tril_indices if offset < 0 else torch.triu_indices)
    feed, plan = _feed(model, dense_ids(), PlanFeed("dot", 4.0), num_towers=2)
    # 4 fields in 2 towers of 2: c=4 is larger than a tower; each compresses to one embedding and says so
    assert [(t.feed, t.pieces) for t in feed.towers] == [("hierarchical", 1)] * 2
    assert [n.split(":")[0] for n in feed.notes if "not 4" in n] == ["tower 0 compresses by 2, not 4",
                                                                      "tower 1 compresses by 2, not 4"]
    feed, plan = _feed(model, dense_ids(), PlanFeed("dot", 4.0), num_towers=1)
    kind = "tril_indices" if offset < 0 else "triu_indices"
    new_pairs = {1: 1, 0: 3, -1: 1}[offset]  # 2 vectors (dense + one compressed) instead of 5
    old_pairs = {1: 10, 0: 15, -1: 10}[offset]
    buffers = [r for r in feed.rebuilt if r.kind == kind]
    assert [(r.vectors, r.offset) for r in buffers] == [((5, 2), offset)] * len(buffers)
    # buffers used as indices keep their names; rows of one buffer become tensor constants of the graph
    assert [(r.row, r.new_shape, r.old_shape) for r in buffers] == [(0, (new_pairs,), (old_pairs,)),
                                                                    (1, (new_pairs,), (old_pairs,))]
    targets = [r.target for r in buffers]
    assert targets == ["rows", "cols"] if split else all(t.startswith("_tensor_constant") for t in targets)
    top = next(r for r in feed.rebuilt if r.kind == "linear")
    assert (top.target, top.old_shape, top.new_shape) == ("top", (1, 4 + old_pairs), (1, 4 + new_pairs))
    # the dense vector's 4 columns still exist (and d.d when the diagonal is kept); the other dots are new
    assert top.in_runs == (((0, 0, 5),) if offset == 0 else ((0, 0, 4),))
    assert feed.rebuilt[-1] is top  # in graph order


def test_dcn_cross_layers_are_rebuilt_in_both_dims():
    feed, _ = _feed(TinyDCN(), dense_ids(), PlanFeed("dot", 4.0), num_towers=1)
    assert [t.piece_shape for t in feed.towers] == [(4,)]  # 16 elements -> 4
    layers = {r.target: r for r in feed.rebuilt}
    assert list(layers) == ["cross.0", "cross.1", "norm", "head"]
    for name in ("cross.0", "cross.1"):
        r = layers[name]
        assert (r.old_shape, r.new_shape) == ((19, 19), (7, 7)) and "element-wise" in r.why
        assert r.in_runs == r.out_runs == ((0, 0, 3),)  # the 3 dense columns / rows still exist
    assert (layers["norm"].kind, layers["norm"].new_shape, layers["norm"].in_runs) == ("layer_norm", (7,), ((0, 0, 3),))
    assert layers["head"].new_shape == (1, 7) and layers["head"].in_runs == ()  # LayerNorm mixed every column


def test_low_rank_cross_rebuilds_the_input_of_u_and_the_output_of_v():
    feed, _ = _feed(TinyDCN(low_rank=True), dense_ids(), PlanFeed("dot", 4.0), num_towers=1)
    layers = {r.target: r for r in feed.rebuilt}
    assert (layers["cross.0.0"].old_shape, layers["cross.0.0"].new_shape) == ((2, 19), (2, 7))
    assert (layers["cross.0.1"].old_shape, layers["cross.0.1"].new_shape) == ((19, 2), (7, 2))
    assert layers["cross.0.1"].out_runs == ((0, 0, 3),) and layers["cross.0.1"].in_runs == ()
    assert "kept the trained values of all 2 input columns and 3 of 7 output rows" in layers["cross.0.1"].describe()


class WideBN(nn.Module):
    """cat(dense, embeddings) -> BatchNorm1d -> Linear: the batch norm's features follow the width."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(20, 4) for _ in range(4))
        self.bn = nn.BatchNorm1d(3 + 16)
        self.bn.running_mean.uniform_()
        self.head = nn.Linear(19, 1)

    def forward(self, dense, x):
        return self.head(self.bn(torch.cat([dense] + [t(x[:, i]) for i, t in enumerate(self.tables)], dim=1)))


def test_batch_norm_is_rebuilt_with_the_statistics_that_still_exist():
    feed, _ = _feed(WideBN(), dense_ids(), PlanFeed("dot", 4.0), num_towers=1)
    layers = {r.target: r for r in feed.rebuilt}
    assert (layers["bn"].kind, layers["bn"].old_shape, layers["bn"].new_shape) == ("batch_norm", (19,), (7,))
    assert layers["bn"].in_runs == ((0, 0, 3),) and layers["head"].in_runs == ((0, 0, 3),)


def test_rebuild_init_default_copies_nothing():
    feed, plan = _feed(TinyDCN(), dense_ids(), PlanFeed("dot", 4.0, rebuild_init="default"), num_towers=1)
    assert {r.init for r in feed.rebuilt} == {"default"} and all(not r.in_runs and not r.out_runs for r in feed.rebuilt)
    assert "PyTorch default init" in str(plan)


RAW_TORCH = ("shapes cannot be multiplied", "size of tensor", "is invalid for input of size", "Sizes of tensors",
             "Expected", "expected", "must match", "mat1", "While executing")


@pytest.mark.parametrize("model, inputs, why", [
    (RawWeight(), (ids(),), "the model's matmul (matmul) receives"),
    (SharedTop(), (torch.randn(6, 3), ids(fields=4)), "top is applied"),
    (StrayBuffer(), dense_ids(), "the buffer rows is also used by"),
    (OddPairs(), dense_ids(), "which is not triu/tril_indices(5, 5, k)"),
    (PackedGRU(), (ids(fields=6),), "the model's gru (GRU gru) receives 12x4 and"),
])
def test_what_cannot_be_rebuilt_falls_back_to_decoders_and_says_why(model, inputs, why):
    feed, plan = _feed(model, inputs, PlanFeed("dot", 2.0), num_towers=1)
    assert [t.feed for t in feed.towers] == ["decoder"] and not feed.rebuilt and not plan.rebuilt
    assert "cannot feed the interaction directly" in feed.notes[0] and why in feed.notes[0], feed.notes[0]
    assert not any(raw in feed.notes[0] for raw in RAW_TORCH), feed.notes[0]  # plain words, never torch's text


def test_forced_direct_feed_that_needs_rebuilt_layers_is_a_typed_error_naming_hierarchical():
    gm, ctx = _planned(TwoTables(), (ids(),), num_towers=1)
    with pytest.raises(TowerModuleError, match="direct feed of compressed towers is not possible") as info:
        run_alone(PlanFeed("linear", 2.0, "direct"), gm, ctx)
    assert "fewer embeddings" in info.value.problem and 'feed="hierarchical"' in info.value.fix


def test_forced_hierarchical_feed_that_cannot_work_is_a_typed_error():
    gm, ctx = _planned(RawWeight(), (ids(),), num_towers=1)
    with pytest.raises(TowerModuleError, match="hierarchical feed of compressed towers is not possible") as info:
        run_alone(PlanFeed("linear", 2.0, "hierarchical"), gm, ctx)
    assert "matmul" in info.value.problem and 'feed="decoder"' in info.value.fix


def test_forced_decoder_keeps_the_model_as_it_is():
    feed, _ = _feed(TwoTables(), (ids(),), PlanFeed("linear", 2.0, "decoder"), num_towers=1)
    assert [(t.feed, t.in_widths, t.core_width, t.shapes) for t in feed.towers] == [("decoder", (4, 4), 4, ((4,), (4,)))]
    assert not feed.rebuilt and not feed.notes


def test_the_trial_leaves_the_global_rng_alone():
    gm, ctx = _planned(TinyDCN(), dense_ids(), num_towers=1)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    run_alone(PlanFeed("dot", 4.0), gm, ctx)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("option, value", [("feed", "sideways"), ("rebuild_init", "zeros")])
def test_unknown_options_are_refused_before_running(option, value):
    gm, ctx = _planned(FourFields(), (ids(fields=4),))
    with pytest.raises(TowerModuleError, match=f"unknown {option}") as info:
        run_alone(PlanFeed("linear", 2.0, **{option: value}), gm, ctx)
    assert "choose one of" in info.value.fix


def test_a_repair_that_raises_is_a_pass_error_not_a_decoder_fallback(monkeypatch):
    """Only the model's own nodes run in the trial's guarded region: a bug in a repair propagates."""
    from dmt_compile.errors import PassError
    from dmt_compile.passes import feed_trial

    def broken(trial, n, args, kwargs):
        raise AttributeError("a bug in a repair")

    monkeypatch.setattr(feed_trial, "REPAIRS", [feed_trial.REPAIRS[0]._replace(repair=broken), *feed_trial.REPAIRS[1:]])
    gm, ctx = _planned(TwoTables(), (ids(),), num_towers=1)
    with pytest.raises(PassError, match="plan-feed") as info:
        run_alone(PlanFeed("dot", 2.0), gm, ctx)
    assert isinstance(info.value.__cause__, AttributeError) and "a bug in a repair" in str(info.value.__cause__)


def test_a_model_node_that_fails_in_the_trial_is_chained_and_logged(caplog):
    """The model's own exception is the cause of "not possible" and shows at DEBUG."""
    with caplog.at_level("DEBUG", logger="dmt_compile.passes.feed_trial"):
        feed, _ = _feed(RawWeight(), (ids(),), PlanFeed("dot", 2.0), num_towers=1)
    assert [t.feed for t in feed.towers] == ["decoder"]
    failed = [r for r in caplog.records if "fails on the stand-in embeddings" in r.getMessage()]
    assert failed and failed[0].exc_info and isinstance(failed[0].exc_info[1], RuntimeError)
