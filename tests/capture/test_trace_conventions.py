"""What model code written for torch's tracers expects of a tracer, met while capture traces with fx.

* a `@torch.jit.script` helper called on traced values (`pad(inputs)` over a dict of tensors):
  TorchScript type-checks its arguments in C++ and refused the proxies (`Expected a value of type
  'Dict[str, Tensor]'`); it now runs its Python source, traced like the model's own code;
* `if not torch.jit.is_tracing():` around a check that puts shapes in a `set` (a traced shape hashes
  as a distinct object, so the check found equal shapes different and raised): model code now hears
  True while capture traces -- also when the model library's files lie in a `torch/` subpackage
  (`site-packages/<library>/torch/...`), which capture used to take for torch's own code;
* `torch.finfo(emb.dtype).min` (attention masks): torch refused the traced dtype; it is answered
  from the carried dtype.

Before: each failed on the fx paths and capture fell back to torch.export, with static shapes where
the dynamic export also failed (a guard then refused every other batch size). Expected: an fx path
(`symbolic` or `specialize`), exact at another batch size, with no batch guard.
"""
from __future__ import annotations

import importlib.util
import sys
import textwrap
from typing import Dict, Optional

import torch
from torch import nn

from dmt_compile.capture.capture import capture


@torch.jit.script
def keep_first(inputs: Dict[str, torch.Tensor], limit: Optional[int] = None) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for key, value in inputs.items():
        if limit is not None and value.dim() == 2:
            value = value[:, :limit]
        out[key] = value
    return out


class ScriptedHelper(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, inputs: Dict[str, torch.Tensor]):
        inputs = keep_first(inputs, 3)
        return (self.a(inputs["a"]).sum(1) * self.b(inputs["b"]).sum(1)).sum(1, keepdim=True)


class FinfoMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, x):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        scores = e.sum(-1).masked_fill(x == 0, torch.finfo(e.dtype).min)
        return (scores.softmax(-1).unsqueeze(-1) * e).sum(1)


# a model library's module kept in a `torch/` subpackage, as `<library>/torch/tabular/base.py`
_LIBRARY_SOURCE = '''
import torch
from torch import nn


class ConcatChecked(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, inputs):
        parts = {"a": self.a(inputs["a"]), "b": self.b(inputs["b"])}
        if not torch.jit.is_tracing():
            if len(set(v.shape[:-1] for v in parts.values())) > 1:
                raise ValueError("all features but the last dimension must match")
        return torch.cat(list(parts.values()), dim=-1).sum(-1, keepdim=True)
'''


def _ids(batch, seed=0):
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def _dict_inputs(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randint(0, 10, (batch, 5), generator=g), "b": torch.randint(0, 10, (batch, 5), generator=g)}


def _library_model(tmp_path):
    folder = tmp_path / "somelib" / "torch"
    folder.mkdir(parents=True)
    (folder / "blocks.py").write_text(textwrap.dedent(_LIBRARY_SOURCE))
    spec = importlib.util.spec_from_file_location("somelib_torch_blocks", folder / "blocks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ConcatChecked()


def _assert_specialized_and_exact(model, example, other):
    model.eval()
    captured = capture(model, (example,))
    assert captured.report.path in ("symbolic", "specialize"), captured.report
    assert not [g for g in captured.report.guards if g.dependence == "batch"], captured.report
    with torch.no_grad():
        assert torch.equal(captured.gm(*captured.spec.flatten((other,), {})), model(other))


def test_scripted_helper_on_traced_inputs_runs_its_python_source():
    _assert_specialized_and_exact(ScriptedHelper(), _dict_inputs(8), _dict_inputs(3, seed=1))


def test_finfo_of_a_traced_dtype_is_answered_from_the_carried_dtype():
    x = _ids(8)
    x[0, 0] = 0
    _assert_specialized_and_exact(FinfoMask(), x, _ids(3, seed=1))


def test_is_tracing_is_true_for_model_code_in_a_libraries_torch_subpackage(tmp_path):
    model = _library_model(tmp_path)
    try:
        _assert_specialized_and_exact(model, {"a": _ids(8), "b": _ids(8, 1)}, {"a": _ids(3, 2), "b": _ids(3, 3)})
        assert torch.jit.is_tracing() is False  # restored after capture
    finally:
        sys.modules.pop("somelib_torch_blocks", None)


def test_is_tracing_is_true_on_the_export_path_too(tmp_path):
    # before: the check ran under torch.export and hashed a shape holding the symbolic batch size
    # ("unhashable type: non-nested SymInt"), so the dynamic export failed
    model = _library_model(tmp_path).eval()
    try:
        x, other = {"a": _ids(8), "b": _ids(8, 1)}, {"a": _ids(3, 2), "b": _ids(3, 3)}
        captured = capture(model, (x,), paths=("export",))
        with torch.no_grad():
            assert torch.equal(captured.gm(*captured.spec.flatten((other,), {})), model(other))
    finally:
        sys.modules.pop("somelib_torch_blocks", None)


def test_torch_and_own_files_are_told_from_model_code_by_package_folder():
    """Reports name the model's own line: a library's `torch/` subpackage is model code, torch's files are not."""
    import os

    import dmt_compile
    from dmt_compile.capture.code_origin import is_torch_or_own_file

    assert is_torch_or_own_file(torch.nn.functional.__file__)
    assert is_torch_or_own_file(dmt_compile.__file__)
    assert not is_torch_or_own_file(os.path.join("/opt/site-packages/somelib/torch/model.py"))
    assert not is_torch_or_own_file(__file__)
