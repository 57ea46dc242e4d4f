"""The opt-in non-finite guard of `distribute(check_finite=True)`: NaN/inf named by rank and step.

Without it one NaN in one rank's dense input (or an overflowing loss) reaches every replica through
the gradient all-reduce, silently. With it, each rank checks what it is about to share, *before* it
is shared, so the first error names the rank it came from:

* **inputs** (forward, before the id exchange): every floating-point leaf of the local batch;
* **outputs** (end of forward): every floating-point output tensor;
* **loss gradient** (start of backward): the gradient arriving at each output, i.e. a NaN/inf loss;
* **parameter gradients** (backward, before the gradient hooks of the reducer put them in a bucket):
  each parameter's fresh gradient of this backward.

Cost: one ``isfinite(...).all()`` and one host read per checked tensor (inputs, outputs, one per
parameter in backward): no copies; ``benchmarks``-style timing in docs/RELIABILITY.md. Off by default.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from dmt_compile.errors import NonFiniteError

__all__ = ["FiniteGuard"]


def _first_bad(x: torch.Tensor) -> tuple[int, float] | None:
    """(count, first bad value) of the non-finite entries of `x`, or None when all are finite."""
    if bool(torch.isfinite(x).all()):
        return None
    flat = x.detach().reshape(-1)
    bad = (~torch.isfinite(flat)).nonzero()
    return int(bad.shape[0]), float(flat[int(bad[0, 0])])


class FiniteGuard:
    """Checks inputs, outputs, the loss gradient and parameter gradients of one rank (module docstring)."""

    def __init__(self, rank: int, named_params: Sequence[tuple[str, torch.nn.Parameter]]):
        self.rank = rank
        self.step = 0  # forwards run so far; a backward belongs to the last one
        self._handles = [p.register_hook(self._grad_hook(name)) for name, p in named_params if p.requires_grad]

    def _raise(self, what: str, found: tuple[int, float], fix: str) -> None:
        count, value = found
        raise NonFiniteError(
            f"rank {self.rank}, step {self.step}: {what} holds {count} non-finite value"
            f"{'s' if count != 1 else ''} (first: {value}); stopped before it reached the other ranks "
            "(distribute(check_finite=True))", fix)

    def check_inputs(self, names: Sequence[str], leaves: Sequence[Any]) -> None:
        """Start of a forward: count the step and check every floating-point input leaf."""
        self.step += 1
        for name, x in zip(names, leaves):
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                found = _first_bad(x.detach())
                if found:
                    self._raise(f"input {name}", found, f"clean the data rank {self.rank} reads (NaN/inf in "
                                f"{name}), e.g. torch.nan_to_num or drop the bad rows")

    def check_outputs(self, out: Any) -> Any:
        """End of a forward: check the outputs; hook each so a NaN/inf loss is named at backward."""
        for i, x in enumerate(_tensors(out)):
            if not x.is_floating_point():
                continue
            found = _first_bad(x.detach())
            if found:
                self._raise(f"output {i} of the model", found, "lower the learning rate or check the "
                            "inputs and the model (the inputs were finite)")
            if x.requires_grad:
                x.register_hook(self._loss_hook(i))
        return out

    def _loss_hook(self, index: int):
        def hook(grad: torch.Tensor) -> None:
            found = _first_bad(grad)
            if found:
                self._raise(f"the gradient of the loss at output {index}", found,
                            "the loss is NaN/inf on this rank: check the labels and the loss (log(0), division "
                            "by zero), or lower the learning rate")
        return hook

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> None:
            found = _first_bad(grad)
            if found:
                self._raise(f"the gradient of {name}", found, "lower the learning rate or clip gradients; "
                            "the inputs, outputs and loss of this rank were finite")
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []
