"""Running model code quietly without changing it: the one place for eval mode, no grad and restored state.

* `evaluation(module)` — eval mode and no grad inside the block; every submodule's training flag
  comes back afterwards (graph runs: shapes, calibration, the feed trial).
* `preserved(module)` — no grad and torch's own warnings silenced; training flags, buffers (e.g.
  BatchNorm statistics), the CPU random state and attributes that tracing set to traced values come
  back afterwards, whatever the block did (first contact with a user's model: the eager reference,
  tracing, the id check).
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

import torch

from dmt_compile.ir.torch_notices import consume_fx_tracing_notice

__all__ = ["evaluation", "preserved", "quiet_torch", "no_traced_attributes"]


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Torch's own warnings and log lines while tracing (fx, export, dynamo) are not the user's concern."""
    consume_fx_tracing_notice()
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def evaluation(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no grad inside the block (BatchNorm statistics and dropout untouched), modes restored."""
    was_training = {name: m.training for name, m in module.named_modules()}
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for name, m in module.named_modules():
            m.training = was_training.get(name, m.training)


@contextlib.contextmanager
def preserved(model: torch.nn.Module) -> Iterator[None]:
    """Run model code without changing it: buffers, RNG state and training flags are restored."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    modes = {name: m.training for name, m in model.named_modules()}
    rng = torch.get_rng_state()
    try:
        with torch.no_grad(), quiet_torch(), no_traced_attributes(model):
            yield
    finally:
        torch.set_rng_state(rng)
        for name, m in model.named_modules():
            m.training = modes.get(name, m.training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers and b.shape == buffers[name].shape:
                    b.copy_(buffers[name])



@contextlib.contextmanager
def no_traced_attributes(model: torch.nn.Module) -> Iterator[None]:
    """Attributes that model code sets to a traced value while it is traced get their earlier value back.

    `self.matrix = self.matrix.to(x.device)` in `forward` (pytorch_tabular's TabNet) leaves an fx proxy
    on the module once traced, and the graph's `get_attr` of it (fx finds tensor attributes by their
    path) and every later eager call then read the proxy."""
    from torch.fx.proxy import Proxy

    before = {m: dict(vars(m)) for m in model.modules()}
    try:
        yield
    finally:
        for module, old in before.items():
            for key, value in list(vars(module).items()):
                if isinstance(value, Proxy):
                    if key in old and not isinstance(old[key], Proxy):
                        object.__setattr__(module, key, old[key])
                    else:
                        delattr(module, key)
