"""An int among the inputs that is the batch size (a batch dict's `feed_dict["batch_size"]`, read by
`prediction.view(feed_dict["batch_size"], -1)`).

Before: every non-tensor input was a constant of the input spec, so the graph held the example's batch
size (8) and a call at batch 5 was refused with "input feed_dict['batch_size'] was the constant 8".
Expected: an int input equal to the example's batch (the leading dimension of the tensor inputs, > 1) is
that batch size: the graph reads it off a tensor input (`size(0)`), the rewrite is exact at other batch
sizes, and a call whose int differs from its tensors' batch is a typed `InputError`.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import InputError


class FeedDictModel(nn.Module):
    """User and item tables, a candidate list per row and the batch size as an int in the feed dict."""

    def __init__(self):
        super().__init__()
        self.user, self.item, self.cat = nn.Embedding(10, 4), nn.Embedding(20, 4), nn.Embedding(6, 4)
        self.mlp = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, feed_dict):
        u = self.user(feed_dict["user_id"]).unsqueeze(1).expand(-1, feed_dict["item_id"].shape[1], -1)
        x = torch.cat([u, self.item(feed_dict["item_id"]), self.cat(feed_dict["i_cat"])], -1)
        prediction = self.mlp(x.reshape(-1, 12))
        return {"prediction": prediction.view(feed_dict["batch_size"], -1)}


def _feed(batch: int, seed: int = 0, phase: str = "train") -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"user_id": torch.randint(0, 10, (batch,), generator=g),
            "item_id": torch.randint(0, 20, (batch, 2), generator=g),
            "i_cat": torch.randint(0, 6, (batch, 2), generator=g), "batch_size": batch, "phase": phase}


def _eval(model, feed):
    model.eval()
    with torch.no_grad():
        return model(feed)["prediction"]


def test_batch_size_int_follows_the_batch():
    torch.manual_seed(0)
    model = FeedDictModel()
    dmt = dmt_compile.transform(model, "2x2", (_feed(8),))
    assert dmt.plan.num_towers >= 2
    for batch, seed in ((8, 0), (5, 1), (13, 2)):
        assert torch.equal(_eval(dmt, _feed(batch, seed)), _eval(model, _feed(batch, seed)))


def test_batch_size_int_must_match_the_tensors():
    torch.manual_seed(0)
    dmt = dmt_compile.transform(FeedDictModel(), "2x2", (_feed(8),))
    feed = _feed(5)
    feed["batch_size"] = 8
    with pytest.raises(InputError, match="batch_size"):
        _eval(dmt, feed)
    with pytest.raises(InputError, match="was the constant 'train'"):  # other constants stay constants
        _eval(dmt, _feed(8, phase="dev"))
