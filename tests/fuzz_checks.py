"""What "trains" means for the model fuzzer and the held-out capture measure: first-order descent."""
from __future__ import annotations

import torch
from torch import nn

from dmt_compile.tools.verify import first_tensor


def assert_first_order_descent(model, args, kwargs) -> None:
    """`model` trains: every Tower Module and every table gets a finite, non-zero gradient, and a small
    enough step against the gradient lowers the loss (Armijo's condition, backtracking from a step that
    would cut the loss by 10 % to one that would cut it by 1e-5: first-order descent).

    A fixed optimizer and learning rate would test the model's conditioning, not the rewrite: the flat
    cross-network models fail "5 Adam steps at lr 0.01 lower the loss" just as their rewrites do.
    """
    model.train()
    target = torch.rand(first_tensor(model(*args, **kwargs)).shape, generator=torch.Generator().manual_seed(7))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    loss = ((first_tensor(model(*args, **kwargs)) - target) ** 2).mean()
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    by_name = {n: g for (n, _), g in zip(named, grads)}
    assert all(g is None or torch.isfinite(g).all() for g in grads), "non-finite gradient"
    tables = {f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, (nn.Embedding, nn.EmbeddingBag))}
    towers = {n.split(".tower")[1].split("_tm")[0] for n in by_name if "_tm." in n}
    for n in tables & {n for n, g in by_name.items() if g is not None}:  # None: a module the graph no longer reads
        assert by_name[n].abs().sum() > 0, f"table {n} gets a zero gradient"
    for t in towers:
        assert any(g is not None and g.abs().sum() > 0 for n, g in by_name.items() if f"tower{t}_tm." in n), \
            f"Tower Module of tower {t} gets no gradient"
    assert towers, "no Tower Module parameters"
    squared = float(sum((g * g).sum() for g in grads if g is not None))
    assert squared > 0, "zero gradient"
    with torch.no_grad():
        for k in range(1, 6):
            eta = 10.0 ** -k * float(loss) / squared  # a step that would lower the loss by 10^-k of it
            for (_, p), g in zip(named, grads):
                if g is not None:
                    p.sub_(eta * g)
            lower = float(((first_tensor(model(*args, **kwargs)) - target) ** 2).mean())
            for (_, p), g in zip(named, grads):
                if g is not None:
                    p.add_(eta * g)
            if lower <= float(loss) - 0.1 * eta * squared:
                return
    raise AssertionError(f"no step against the gradient lowers the loss {float(loss):.6g}")
