"""Every Tower Module core: shapes and gradients (one-feature towers, odd widths), through transform, errors."""
import pytest
import torch

import dmt_compile
from dmt_compile.errors import InputError, TowerModuleError
from benchmarks.quality.model import FlatCTR
from dmt_compile.tower_modules import (
    TOWER_MODULES, EmbeddingHead, FieldSplit, clamp_note, compressed_count, compressed_width, interacts, make_core,
)

CORES = ("linear", "dot", "cross", "wukong")
WIDTHS = [[16], [1], [3], [16, 16, 16], [1, 16, 48], [1, 1], [8, 8, 8, 8, 8, 8, 8, 8], [300, 16]]


def test_registry_holds_the_family():
    assert set(TOWER_MODULES) == {"identity", "linear", "dot", "cross", "wukong"}
    assert TOWER_MODULES["identity"] is None


@pytest.mark.parametrize("name", CORES)
@pytest.mark.parametrize("widths", WIDTHS, ids=str)
def test_core_shapes_and_gradients(name, widths):
    torch.manual_seed(0)
    out = max(1, sum(widths) // 4)
    core = make_core(name, widths, out)
    x = torch.randn(5, sum(widths), requires_grad=True)
    y = core(x)
    assert y.shape == (5, out)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in core.parameters() if p.requires_grad)
    assert core(torch.randn(1, sum(widths))).shape == (1, out)  # a batch of one


@pytest.mark.parametrize("name", CORES)
@pytest.mark.parametrize("widths, k", [([16] * 4, 1), ([16] * 13, 3), ([16, 16], 1), ([1, 16, 48], 2)], ids=str)
def test_embedding_heads_shapes_gradients_and_cost(name, widths, k):
    """Fed as k embeddings of the fields' dim, every core ends in W X (+ U V dots): far cheaper than a dense head."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    core = make_core(name, widths, k * 16, embedding_dim=16)
    dense = make_core(name, widths, k * 16)
    assert isinstance(core.head, EmbeddingHead) and not hasattr(core, "proj") and hasattr(dense, "proj")
    x = torch.randn(6, sum(widths), requires_grad=True)
    y = core(x)
    assert y.shape == (6, k * 16)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in core.parameters())
    counts = []
    for m in (core, dense):
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(x.detach())
        counts.append(fc.get_total_flops())
    assert counts[0] < counts[1], counts


def test_embedding_head_is_wukongs_linear_compress_block():
    head = EmbeddingHead(n=4, d=3, k=2)
    f = torch.randn(5, 4, 3)
    expected = torch.einsum("kn,bnd->bkd", head.lcb.weight, f).flatten(1) + head.bias
    assert torch.allclose(head(f), expected, atol=1e-6)
    assert make_core("dot", [16, 16], 16, embedding_dim=8).proj is not None  # fields of 16 cannot make 8-dim embeddings


def test_interacting_tower_modules_and_whole_embedding_counts():
    assert [interacts(n) for n in ("identity", "linear", "dot", "cross", "wukong")] == [False, False, True, True, True]
    # the whole number of embeddings whose ratio is closest to c (ties: more embeddings)
    assert [compressed_count(n, 4) for n in (1, 3, 4, 5, 6, 7, 13, 16, 26)] == [1, 1, 1, 1, 2, 2, 3, 4, 7]
    assert clamp_note(4, 4, 0, "x") == ""
    assert clamp_note(3, 4, 1, "number of embeddings").startswith("tower 1 compresses by 3, not 4")


def test_field_split_cuts_multiples_and_projects_odd_widths():
    fs = FieldSplit([1, 16, 48])
    assert fs.dim == 16 and fs.num_fields == 1 + 1 + 3
    assert fs(torch.randn(2, 65)).shape == (2, 5, 16)


@pytest.mark.parametrize("name", ("identity", *CORES))
@pytest.mark.parametrize("feed", ("auto", "decoder"))
def test_transform_with_each_tower_module_trains(name, feed):
    torch.manual_seed(0)
    model = FlatCTR({f"f{i}": 10 for i in range(5)}, 3, dim=8)
    g = torch.Generator().manual_seed(1)
    inputs = (torch.randn(16, 3, generator=g), {f"f{i}": torch.randint(0, 10, (16,), generator=g) for i in range(5)})
    c = None if name == "identity" else 4
    # 5 features on 4 towers: one tower has a single feature (width 8 >= c)
    dmt = dmt_compile.transform(model, "4x1", inputs, tower_module=name, compression=c, feed=feed)
    assert min(len(t) for t in dmt.plan.towers) == 1
    out = dmt(*inputs)
    assert out.shape == (16, 1)
    out.sum().backward()
    grads = [p.grad for n, p in dmt.named_parameters() if "tower" in n and "_tm" in n]
    assert name == "identity" or (grads and all(gr is not None for gr in grads))
    # a one-feature tower cannot give up whole embeddings at c = 4: decoders for every compressing TM
    assert {d.feed for d in dmt.plan.details} == {"identity" if name == "identity" else "decoder"}


@pytest.mark.parametrize("feed", ["decoder", "auto"])
def test_a_tower_narrower_than_c_compresses_to_one_element_and_the_plan_says_so(feed):
    assert [compressed_width(w, 8) for w in (1, 4, 8, 9, 64)] == [1, 1, 1, 2, 8]
    model = FlatCTR({"a": 10, "b": 10}, 2, dim=4)  # one 4-wide feature per tower
    inputs = (torch.randn(4, 2), {"a": torch.zeros(4, dtype=torch.long), "b": torch.ones(4, dtype=torch.long)})
    dmt = dmt_compile.transform(model, "2x1", inputs, tower_module="dot", compression=8, feed=feed)
    widths = [d.width_out for d in dmt.plan.details]
    if feed == "decoder":
        assert widths == [1, 1]
    else:  # one whole 4-wide embedding per tower (direct) or one element (decoder): never wider than the input
        assert all(w <= 4 for w in widths), widths
    notes = [n for n in dmt.plan.notes if "not 8" in n]
    assert len(notes) == 2 and {n.split()[1] for n in notes} == {"0", "1"}, dmt.plan.notes
    assert "not 8" in dmt.dump("summary")
    assert dmt(*inputs).shape == model(*inputs).shape


def test_unknown_tower_module_lists_the_valid_ones():
    model = FlatCTR({"a": 10, "b": 10}, 2, dim=4)
    inputs = (torch.randn(4, 2), {"a": torch.zeros(4, dtype=torch.long), "b": torch.ones(4, dtype=torch.long)})
    with pytest.raises(TowerModuleError) as err:
        dmt_compile.transform(model, "2x1", inputs, tower_module="transformer", compression=2)
    for name in ("cross", "dot", "identity", "linear", "wukong"):
        assert name in err.value.fix
    with pytest.raises(TowerModuleError, match="wukong"):
        make_core("nope", [4], 1)


def test_calibration_batches_of_the_wrong_structure():
    model = FlatCTR({"a": 10, "b": 10}, 2, dim=4)
    inputs = (torch.randn(4, 2), {"a": torch.zeros(4, dtype=torch.long), "b": torch.ones(4, dtype=torch.long)})
    bad = [(torch.randn(4, 2), {"a": torch.zeros(4, dtype=torch.long)})]  # a feature missing
    with pytest.raises(InputError, match="calibration batch 0"):
        dmt_compile.transform(model, "2x1", inputs, partitioner="learned", calibration_batches=bad)
    with pytest.raises(InputError, match="calibration batch 0"):
        dmt_compile.transform(model, "2x1", inputs, partitioner="learned", calibration_batches=[torch.randn(4, 2)])
