"""`FanInLinear`: a Linear whose weight is stored times sqrt(fan-in) and scaled back in `forward`.

The function is `nn.Linear`'s (same init distribution of the effective weight, same shapes, same
`weight`/`bias` names); only the stored parameter differs: `weight = W_eff * sqrt(n)`. This is
the "equalized learning rate" of Karras et al. (Progressive Growing of GANs, ICLR 2018, sec. 4.1).

Why Tower Modules need it. Adam, Adagrad and RMSprop move every parameter by about `lr` per step
whatever its gradient's scale. An embedding row then moves each output element by ~`lr`, but a
dense layer of fan-in `n` moves each output by up to `lr * ||x||_1` -- `n` times more. A Tower
Module is a dense layer of large fan-in (every embedding of the tower: 565 inputs for RecBole's
FFM on a 7-field stand-in) spliced between tables and an interaction that may multiply embeddings;
there one Adam step at lr 0.01 from an exact identity init raised FFM's loss 2.01 -> 2,057. With the
weight stored times sqrt(n) the effective weight moves by `lr / sqrt(n)` per step (each output by
~`lr * sqrt(n) * |x|`): 2.01 -> 9.1 at c = 1, and c = 4 falls from its first step. Plain SGD sees
the opposite scaling (the effective step is `lr / n` times its gradient): a scale-free optimizer
is what recommendation models train their dense parts with.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FanInLinear"]


class FanInLinear(nn.Linear):
    """`nn.Linear(in_features, out_features)` with the weight stored times `sqrt(in_features)`.

    The state_dict also holds `weight_fan_in`, the n whose square root its `weight` was stored
    times (an integer: `module.to(dtype)` leaves it exact): loading converts a state_dict written
    with another factor, or by a plain `nn.Linear` (no such key: factor 1, a checkpoint from before
    Tower Modules stored their weights so), instead of reading its weight as if it had been stored
    times sqrt(n) -- a silently different function.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.scale = math.sqrt(max(in_features, 1))
        self.gain = 1.0 / self.scale
        self.register_buffer("weight_fan_in", torch.tensor(max(in_features, 1), dtype=torch.int64))
        with torch.no_grad():
            self.weight.mul_(self.scale)

    @property
    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.gain

    @torch.no_grad()
    def set_effective_weight(self, value: torch.Tensor) -> None:
        self.weight.copy_(value * self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.gain, self.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key, wkey = prefix + "weight_fan_in", prefix + "weight"
        if wkey in state_dict:
            stored = math.sqrt(int(state_dict[key])) if key in state_dict else 1.0  # plain nn.Linear: as is
            if stored != self.scale:
                state_dict[wkey] = state_dict[wkey] * (self.scale / stored)
            state_dict[key] = self.weight_fan_in.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", weight stored x sqrt(in_features)"
