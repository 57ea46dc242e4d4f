"""A `torch.distributions` object built from traced values (`Normal(mus, sigmas).log_prob(delta_t)`, a time
decay whose parameters are per-item embeddings).

Before: the distribution's constructor validates its arguments (`constraint.check(value).all()`, a `bool`
of a traced tensor: "symbolically traced variables cannot be used as inputs to control flow"), and with
values carried `log_prob` rejected the traced argument ("The value argument to log_prob must be a
Tensor"): capture failed on every path. Expected: building the distribution is one graph node (its
checks run on real values when the graph runs), its methods are method calls on that node, and the
rewrite is exact at another batch size.
"""
from __future__ import annotations

import torch
from torch import nn

import dmt_compile


class DecayModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.user, self.item = nn.Embedding(10, 4), nn.Embedding(20, 4)
        self.mus, self.sigmas = nn.Embedding(20, 1), nn.Embedding(20, 1)

    def forward(self, user_id, item_id, delta_t):
        mus = self.mus(item_id).squeeze(-1) + 1
        sigmas = (self.sigmas(item_id).squeeze(-1) + 1).clamp(min=1e-3, max=10)
        decay = torch.distributions.normal.Normal(mus, sigmas).log_prob(delta_t).exp()
        exp_decay = torch.distributions.Exponential(sigmas).log_prob(delta_t.abs()).exp()
        return (self.user(user_id) * self.item(item_id)).sum(-1) + decay + exp_decay


def _inputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 10, (batch,), generator=g), torch.randint(0, 20, (batch,), generator=g),
            torch.rand(batch, generator=g) * 3)


def _eval(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(*inputs)


def test_distribution_of_traced_values_is_one_node():
    torch.manual_seed(0)
    model = DecayModel()
    dmt = dmt_compile.transform(model, "2x2", _inputs(8))
    assert dmt.plan.num_towers >= 2
    for batch, seed in ((8, 0), (5, 1)):
        assert torch.equal(_eval(dmt, _inputs(batch, seed)), _eval(model, _inputs(batch, seed)))
