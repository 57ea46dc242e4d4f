"""Python builtins asked about a traced value in model code, answered from the value it carries.

The specialising tracer carries each traced value's example value (`tracer.py`). Two builtin
questions still got the wrong kind of answer:

* `len(x)` of a traced tensor: Python's `len()` must return an `int`, so it was answered from the
  example value and guarded, and the graph then ran only at the example batch size (`batch_size =
  len(q)` before `q.reshape(batch_size, n, h, d)` in multi-head attention, `cls.expand(len(x), 1, -1)`
  for a CLS token: rtdl's FT-Transformer, Gorishniy et al. 2021). `traced_len` puts a `len` in front
  of the builtin that, called from model code on a traced tensor whose length is not static, returns
  `x.size(0)` as a traced value: arithmetic and torch calls on it stay in the graph, and Python
  decisions on it (`range(len(x))`, `if len(x) > 1:`) still reach the tracer's `int` / `bool`
  specialisation, guarded as before. An object whose own `__len__` answers with such a traced length
  (PyTorch Frame's `len(tf)`, the rows of its first tensor) gets that answer too, where the builtin
  would refuse a non-`int`;
* `torch.is_tensor(x)` / `isinstance(x, torch.Tensor)` of a traced tensor: a proxy is no tensor, so
  model code that accepts "a tensor or a tuple of tensors" took the tuple branch and unpacked the
  proxy along dim 0 (`discrete, continuous = inp`). `tensor_type_checks` answers both from the
  carried value (the type of a value is static: no guard).

* `torch.finfo(x.dtype)` / `torch.iinfo(...)` of a traced tensor's dtype: the dtype is a traced
  attribute, which torch's C++ constructor refuses (`torch.finfo() requires a floating point input
  type`: Hugging Face's attention masks, `masked_fill(mask, torch.finfo(emb.dtype).min)`).
  `dtype_infos` answers them from the carried dtype: a static fact, as guards.py counts it;
* `torch.jit.is_tracing()` asked by model code: False, so checks that libraries skip for tracers
  (`if not torch.jit.is_tracing(): ...` around a comparison of shapes put in a `set`, which hashes each
  traced shape as a distinct object and so finds them all different) ran and raised on traced values.
  `tracing_checks` answers True to model code while capture traces, as torch's tracer would: that
  branch is written to be recorded into a graph (Hugging Face treats an fx proxy, jit tracing and
  dynamo alike there), and capture checks the graph against the eager output as for any branch.

Calls from torch and dmt_compile themselves, and on values that are not traced, get the builtins'
own answers. Each patch is a context manager that restores what it replaced.

`training_reads` answers no question differently: it notes where model code reads a module's
`self.training` (`file:line`), since the graph then holds only the branch of the mode it was traced
in (pytorch-tabnet's `TabNetPretraining` obfuscates its inputs at random in training only), so capture
can name that when a graph traced in training mode does not reproduce the eval-mode output.
"""
from __future__ import annotations

import builtins
import contextlib
import sys
from typing import Any, Iterator

import torch
from torch.fx.proxy import Proxy

from dmt_compile.capture.code_origin import is_torch_or_own_file

__all__ = ["traced_len", "tensor_type_checks", "training_reads", "tracing_checks", "dtype_infos"]

def _from_model_code(depth: int = 2) -> bool:
    return not is_torch_or_own_file(sys._getframe(depth).f_code.co_filename)


def _carried(tracer: Any, obj: Any) -> Any:
    """The example value `obj` carries, or None when it is no proxy of `tracer` or is being evaluated."""
    if isinstance(obj, Proxy) and obj.tracer is tracer and not tracer._evaluating:
        return tracer.value_of(obj)
    return None


@contextlib.contextmanager
def traced_len(tracer: Any) -> Iterator[None]:
    """`builtins.len` answers a traced tensor's length with `x.size(0)` (restored afterwards)."""
    from dmt_compile.capture.tracer import _len_dependence

    builtin = builtins.len

    def length(obj: Any) -> Any:
        value = _carried(tracer, obj) if isinstance(obj, Proxy) else None
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and _from_model_code() \
                and _len_dependence(obj.node) != "static":
            return tracer.create_proxy("call_method", "size", (obj, 0), {})
        method = getattr(type(obj), "__len__", None)
        if value is None and method is not None and type(obj).__module__ != "builtins" and _from_model_code():
            n = method(obj)  # a model-defined container's length, maybe traced (the builtin refuses a proxy)
            if isinstance(n, Proxy) or (type(n) is int and n >= 0):
                return n
        return builtin(obj)

    builtins.len = length
    try:
        yield
    finally:
        builtins.len = builtin


@contextlib.contextmanager
def tensor_type_checks(tracer: Any) -> Iterator[None]:
    """`torch.is_tensor(proxy)` and `isinstance(proxy, torch.Tensor)` are True for a traced tensor."""
    original_is_tensor, original_isinstance = torch.is_tensor, builtins.isinstance

    def is_tensor(obj: Any) -> bool:
        if original_isinstance(obj, Proxy) and _from_model_code():
            return original_isinstance(_carried(tracer, obj), torch.Tensor)
        return original_is_tensor(obj)

    def isinstance_(obj: Any, classinfo: Any) -> bool:
        if original_isinstance(obj, Proxy) and _from_model_code():
            value = _carried(tracer, obj)
            if value is not None and original_isinstance(value, torch.Tensor):
                return original_isinstance(value, classinfo) or original_isinstance(obj, classinfo)
        return original_isinstance(obj, classinfo)

    # `from torch import is_tensor` bound the function in model modules' globals: rebind those too
    bound = [vars(m) for name, m in list(sys.modules.items()) if m is not None
             and not name.startswith(("torch", "dmt_compile")) and vars(m).get("is_tensor") is original_is_tensor]
    torch.is_tensor = is_tensor
    builtins.isinstance = isinstance_
    for namespace in bound:
        namespace["is_tensor"] = is_tensor
    try:
        yield
    finally:
        torch.is_tensor = original_is_tensor
        builtins.isinstance = original_isinstance
        for namespace in bound:
            namespace["is_tensor"] = original_is_tensor


@contextlib.contextmanager
def training_reads(model: torch.nn.Module, where: list[str]) -> Iterator[None]:
    """Model code's reads of `module.training` for the model's own (non-torch) module classes are appended to
    `where` as `file:line`; the flag's value is unchanged (a property over the instance's own entry)."""
    def get(self: Any) -> bool:
        if _from_model_code():
            frame = sys._getframe(1)
            where.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
        return self.__dict__["training"]

    def set_(self: Any, value: bool) -> None:
        self.__dict__["training"] = value

    classes = [c for c in dict.fromkeys(type(m) for m in model.modules())
               if not c.__module__.startswith("torch.") and "training" not in vars(c)]
    for cls in classes:
        cls.training = property(get, set_)
    try:
        yield
    finally:
        for cls in classes:
            delattr(cls, "training")


@contextlib.contextmanager
def tracing_checks() -> Iterator[None]:
    """`torch.jit.is_tracing()` is True when model code asks while capture traces (restored afterwards)."""
    original = torch.jit.is_tracing

    def is_tracing() -> bool:
        return True if _from_model_code() else original()

    torch.jit.is_tracing = is_tracing
    try:
        yield
    finally:
        torch.jit.is_tracing = original


@contextlib.contextmanager
def dtype_infos(tracer: Any) -> Iterator[None]:
    """`torch.finfo(proxy)` / `torch.iinfo(proxy)` of a traced dtype use the carried dtype (restored afterwards)."""
    saved = {"finfo": torch.finfo, "iinfo": torch.iinfo}

    def answered(info: Any) -> Any:
        def call(*args: Any) -> Any:
            if args and isinstance(args[0], Proxy):
                value = _carried(tracer, args[0])
                if isinstance(value, torch.dtype):
                    return info(value, *args[1:])
            return info(*args)
        return call

    for name, info in saved.items():
        setattr(torch, name, answered(info))
    try:
        yield
    finally:
        for name, info in saved.items():
            setattr(torch, name, info)
