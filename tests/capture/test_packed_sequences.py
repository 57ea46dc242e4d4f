"""Packed variable-length sequences in `forward`: `pack_padded_sequence` -> `nn.GRU` -> `pad_packed_sequence`.

The packing functions reject fx proxies (they move the lengths to the CPU and sort them in Python), so
tracing used to stop in the module that holds the tables, on every path (torch.export: data-dependent
sizes). Capture records each call as one node (`OPAQUE_TORCH_FUNCTIONS`), whether the model imported
the function or calls it through `nn.utils.rnn`; `nn.GRU` on the packed value is a leaf. DIEN-style
interest extraction (FuxiCTR) is this construct.

Also: fx marks such calls `is_wrapped`, and the generated code then registered `fx.wrap` of the dotted
torch name, which broke every later trace in the process with a KeyError; the second capture below
checks that it no longer does.
"""
from __future__ import annotations

import pytest
import torch
import torch.fx._symbolic_trace as fx_trace
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import dmt_compile
from dmt_compile.capture import capture
from dmt_compile.capture.call_nodes import OPAQUE_TORCH_FUNCTIONS

from fuzz_checks import assert_first_order_descent

SEQ_LEN = 5


class PackedInterest(nn.Module):
    """Three categorical fields and a behaviour sequence whose GRU runs on the packed, unpadded steps."""

    def __init__(self, through_module: bool):
        super().__init__()
        self.through_module = through_module
        self.fields = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))
        self.items = nn.Embedding(20, 4, padding_idx=0)
        self.gru = nn.GRU(4, 4, batch_first=True)
        self.top = nn.Linear(4 * 5, 1)

    def forward(self, x, seq):
        pack, pad = ((nn.utils.rnn.pack_padded_sequence, nn.utils.rnn.pad_packed_sequence) if self.through_module
                     else (pack_padded_sequence, pad_packed_sequence))
        e = [t(x[:, i]) for i, t in enumerate(self.fields)]
        mask = seq > 0
        packed = pack(self.items(seq), mask.sum(dim=1).cpu(), batch_first=True, enforce_sorted=False)
        steps, h = self.gru(packed)
        padded, _ = pad(steps, batch_first=True, total_length=seq.size(1))
        return self.top(torch.cat(e + [padded.sum(1), h[-1]], dim=1))


def _inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (batch, 3), generator=g)
    seq = torch.randint(1, 20, (batch, SEQ_LEN), generator=g)
    lengths = torch.randint(1, SEQ_LEN + 1, (batch, 1), generator=g)
    return x, seq * (torch.arange(SEQ_LEN) < lengths)


@pytest.mark.parametrize("through_module", [False, True], ids=["imported", "nn.utils.rnn"])
def test_each_packing_call_is_one_node_and_the_graph_is_exact(through_module):
    torch.manual_seed(0)
    model, inputs = PackedInterest(through_module).eval(), _inputs(8)
    captured = capture(model, inputs)
    targets = [n.target for n in captured.gm.graph.nodes if n.op == "call_function"]
    assert targets.count(pack_padded_sequence) == 1 and targets.count(pad_packed_sequence) == 1
    assert all(n.meta.get("is_wrapped") is None for n in captured.gm.graph.nodes if n.target in OPAQUE_TORCH_FUNCTIONS)
    with torch.no_grad():
        assert torch.equal(captured.gm(*captured.flat_inputs), model(*inputs))
    # the module attribute is restored after tracing
    assert nn.utils.rnn.pack_padded_sequence is pack_padded_sequence


def test_a_second_capture_in_the_same_process_still_traces():
    torch.manual_seed(0)
    model, inputs = PackedInterest(False).eval(), _inputs(8)
    first = capture(model, inputs)
    first.gm.recompile()  # the generated code no longer registers fx.wrap of a dotted torch name
    assert not [name for _, name in fx_trace._wrapped_fns_to_patch if name.startswith("torch.")]
    assert capture(model, inputs).report.path == first.report.path


def test_identity_towers_exact_at_two_batches_and_linear_towers_descend():
    torch.manual_seed(0)
    model, inputs = PackedInterest(False), _inputs(8)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    assert dmt.plan.num_towers >= 2
    for batch, seed in ((8, 0), (5, 1)):
        batch_inputs = _inputs(batch, seed)
        model.eval(), dmt.eval()
        with torch.no_grad():
            assert torch.equal(dmt(*batch_inputs), model(*batch_inputs))
    linear = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    assert_first_order_descent(linear, inputs, {})


class ConstantPacked(nn.Module):
    """A PackedSequence built from a buffer (no traced value) handed to `pad_packed_sequence`: the search
    for a traced argument (ours and fx's autowrap) must read it, not rebuild it (its constructor checks
    its fields, so fx's map_aggregate failed with a SystemError on every fx path)."""

    def __init__(self, through_module: bool):
        super().__init__()
        self.through_module = through_module
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(12, 4)
        self.register_buffer("history", torch.randn(3, 4, 8))
        self.top = nn.Linear(8, 1)

    def forward(self, x):
        packed = nn.utils.rnn.pack_padded_sequence(self.history, torch.tensor([4, 2, 1]), batch_first=True)
        pad = nn.utils.rnn.pad_packed_sequence if self.through_module else pad_packed_sequence
        seq, _ = pad(packed, batch_first=True)
        return self.top(torch.cat([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)) + seq.sum()


@pytest.mark.parametrize("through_module", [False, True], ids=["imported", "nn.utils.rnn"])
def test_a_packed_sequence_of_constants_is_read_not_rebuilt(through_module):
    torch.manual_seed(0)
    model, x = ConstantPacked(through_module).eval(), torch.arange(12).reshape(6, 2) % 10
    dmt = dmt_compile.transform(model, "2x2", (x,))
    assert dmt.capture_report.path == "symbolic" and dmt.plan.num_towers == 2
    with torch.no_grad():
        assert torch.equal(dmt(x), model(x))
