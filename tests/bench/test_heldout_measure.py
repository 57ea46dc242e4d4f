"""The held-out capture measure classifies models as the library's behaviour warrants (benchmarks/heldout_capture.py).

* a model random in eval mode is *not runnable*, not *wrong*: no rewrite can equal a call;
* a model that writes into its own buffer on a short batch and branches on the batch size it was built
  for (torch-rechub's YoutubeSBC) is a *typed* refusal naming the batch size: the batch-7 reference
  runs on a copy, so the model transformed is the one the batch-32 reference came from;
* a packed-sequence GRU model (DIEN's interest extraction) is *exact*;
* a model whose two id inputs read one table (DaisyRec's Item2Vec) has one feature group: asked for two
  towers, dmt_compile refuses with a typed error naming the table, so it is *typed*, not *wrong*.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import fuzz_models as fm
from benchmarks.heldout_capture import _check


class _Fields(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.top = nn.Linear(8, 1)

    def embed(self, x):
        return torch.cat([self.a(x[:, 0]), self.b(x[:, 1])], 1)


class RandomInEval(_Fields):
    def forward(self, x):
        return self.top(F.dropout(self.embed(x), 0.5, training=True))


class LastBatch(_Fields):
    """Scores read through an index buffer built for one batch size; a shorter batch rewrites it in place."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.register_buffer("index", torch.arange(batch_size).flip(0))

    def forward(self, x):
        y = self.top(self.embed(x))
        if x.shape[0] != self.index.shape[0]:  # the last, shorter batch
            index = self.index[:x.shape[0]]
            index %= x.shape[0]  # in place, into the buffer: as YoutubeSBC's `index0[...] -= batch_size`
            return y[index]
        return y[self.index]


def _ids(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def _factory(cls, *args):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        return cls(*args), (_ids(batch_size, seed),)

    return make


def test_a_model_random_in_eval_mode_is_not_runnable():
    row = _check(_factory(RandomInEval))
    assert row["outcome"] == "not-runnable" and "random in eval mode" in row["error"]


def test_a_branch_on_the_built_batch_size_is_a_typed_refusal_naming_it():
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(0)
        return LastBatch(32), (_ids(batch_size, seed),)

    row = _check(make)
    assert row["outcome"] == "typed", row
    assert "SpecializationError" in row["error"] and "batch size" in row["error"]


def test_a_packed_sequence_gru_model_is_exact():
    recipe = fm.Recipe(fields=3, lookup="per_field", sequence="seq_packed_gru", bag="none", numeric="none",
                       packing="matrix", interaction="concat_mlp", construct="none", output="tensor")

    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(0)
        args, _ = fm.batch_for(recipe, batch_size, seed)
        return fm.build(recipe), args

    row = _check(make)
    assert row["outcome"] == "exact", row


class TiedInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.items = nn.Embedding(10, 4)

    def forward(self, target, context):
        return (self.items(target) * self.items(context)).sum(-1)


def test_two_features_of_one_shared_table_are_a_typed_refusal_naming_it():
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(0)
        x = _ids(batch_size, seed)
        return TiedInputs(), (x[:, 0], x[:, 1])

    row = _check(make)
    assert (row["outcome"], row["features"], row["groups"], row["towers"]) == ("typed", 2, 1, 1), row
    assert "PlanError" in row["error"] and "table items.weight is shared" in row["error"]
