"""Calls that become one graph node each while capture traces: helpers for `CaptureTracer`.

* `traced_factories(tracer)` — `torch.zeros(x.size(0), 1)` and friends with a traced size among
  the arguments record a node (the batch size stays symbolic); so do numpy's array factories
  (`np.arange(seq.size(1))`, `NUMPY_FACTORIES`), which would otherwise convert the traced size as an
  array ("invalid __array_struct__"), and `torch.from_numpy` of such an array;
* `opaque_torch_calls(tracer)` — torch functions that reject proxies (`OPAQUE_TORCH_FUNCTIONS`:
  packed variable-length sequences) called through their module record one node each (the
  `from ... import` spelling is fx's autowrap, `CaptureTracer` passes the same tuple);
* `constant_indexed_by_proxy(tracer)` — a tensor that is no traced value (a buffer, a parameter)
  indexed by a traced one (`self.lookup[ids]`, ids remapped through a table) records one
  `__getitem__` node directly; torch's own indexing first asks the index for its length (it looks
  for tensor-likes inside a sequence index), which the specialising tracer would answer with a
  guard on the batch size that the node never needed;
* `scripted_functions_inline()` — a `torch.jit.script`-compiled free function called on traced values
  runs its Python source instead (TorchScript type-checks its arguments in C++ and rejects proxies:
  `Expected a value of type 'Dict[str, Tensor]'`), so its operations are traced like the model's own;
* `traced_distributions(tracer)` — a `torch.distributions` object built from traced values
  (`Normal(mus, sigmas)`) records one node constructing it: its argument checks read tensor values
  (`constraint.check(v).all()`) and its methods reject proxies, so neither is traced; they run on real
  values when the graph runs, and its methods (`.log_prob(t)`, `.cdf(t)`) are method calls on that node;
* `has_proxy(values)` — whether a traced value is among (nested) arguments, read without rebuilding them;
* `proxy_search_reads_only()` — fx's autowrap searches its arguments the same way.

Each patch is a context manager that restores what it replaced.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable

import numpy as np
import torch
import torch.fx as fx
from torch.fx.proxy import Proxy

__all__ = ["FACTORIES", "NUMPY_FACTORIES", "numpy_factory", "dtype_name", "OPAQUE_TORCH_FUNCTIONS", "has_proxy",
           "proxy_search_reads_only", "traced_factories", "opaque_torch_calls", "constant_indexed_by_proxy",
           "scripted_functions_inline", "traced_distributions"]

# tensor factories whose size arguments may be traced values (`torch.zeros(x.size(0), 1)`)
FACTORIES = ("zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange", "eye", "tensor", "from_numpy")
# numpy array factories whose size arguments may be traced values (`np.arange(seq.size(1))`)
NUMPY_FACTORIES = ("arange", "zeros", "ones", "empty", "full", "eye", "array", "asarray")

# torch functions that reject fx proxies (they convert their tensor arguments in Python: `torch.as_tensor`,
# `.cpu()` of the lengths, a sort) and whose result is a value the rest of the model hands on whole:
# packed variable-length sequences (`pack_padded_sequence(emb, mask.sum(1).cpu())` fed to an `nn.GRU`, which
# fx keeps as a leaf). Each call on a traced value becomes one node calling the function.
OPAQUE_TORCH_FUNCTIONS = (torch.nn.utils.rnn.pack_padded_sequence, torch.nn.utils.rnn.pad_packed_sequence,
                          torch.nn.utils.rnn.pack_sequence, torch.nn.utils.rnn.pad_sequence)


def _first_proxy(values: Any) -> Proxy | None:
    """The first traced value among nested tuples, lists, dicts and slices. It reads the values only: fx's
    map_aggregate rebuilds every named tuple it walks, and one whose constructor checks its fields (a
    concrete `PackedSequence` handed to `pad_packed_sequence`) cannot be rebuilt from the mapped values."""
    if isinstance(values, Proxy):
        return values
    if isinstance(values, dict):
        values = tuple(values.values())
    elif isinstance(values, slice):
        values = (values.start, values.stop, values.step)
    elif not isinstance(values, (tuple, list)):
        return None
    return next((p for p in map(_first_proxy, values) if p is not None), None)


def has_proxy(values: Any) -> bool:
    return _first_proxy(values) is not None


@contextlib.contextmanager
def proxy_search_reads_only():
    """fx's own autowrap (`from torch.nn.utils.rnn import pad_packed_sequence` in the model's module, `math.*`)
    looks for a traced argument with map_aggregate too: it searches with `_first_proxy` instead."""
    module = sys.modules["torch.fx._symbolic_trace"]
    saved = module.__dict__["_find_proxy"]
    module._find_proxy = lambda *objects: _first_proxy(objects)
    try:
        yield
    finally:
        module._find_proxy = saved


def _node_when_traced(tracer: fx.Tracer, fn: Callable) -> Callable:
    """`fn`, recording one `call_function` node instead whenever a traced value is among its arguments."""
    def call(*args: Any, **kwargs: Any) -> Any:
        if has_proxy((args, kwargs)):
            return tracer.create_proxy("call_function", fn, args, kwargs)
        return fn(*args, **kwargs)

    call.__name__ = fn.__name__
    return call


@contextlib.contextmanager
def _recording_calls(tracer: fx.Tracer, owner: Any, saved: dict[str, Callable]):
    """`owner.<name>` records a node on traced arguments for each saved function; restored afterwards."""
    for name, fn in saved.items():
        setattr(owner, name, _node_when_traced(tracer, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(owner, name, fn)


def numpy_factory(name: str, *args: Any, **kwargs: Any) -> Any:
    """`np.<name>(*args, **kwargs)` (by name, so a graph holding it pickles; dtypes come as their names)."""
    return getattr(np, name)(*args, **kwargs)


def dtype_name(value: Any) -> Any:
    """A numpy dtype or a Python scalar type (`dtype=np.int`, `dtype=float`) as its numpy name: fx cannot hold
    a type as a node argument."""
    if isinstance(value, np.dtype) or isinstance(value, type) and (issubclass(value, np.generic)
                                                                  or value in (int, float, bool, complex)):
        return np.dtype(value).name
    return value


@contextlib.contextmanager
def _recording_numpy(tracer: fx.Tracer):
    saved = {name: getattr(np, name) for name in NUMPY_FACTORIES}

    def recording(name: str, fn: Callable) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            if has_proxy((args, kwargs)):
                args = tuple(dtype_name(a) for a in args)
                kwargs = {k: dtype_name(v) for k, v in kwargs.items()}
                return tracer.create_proxy("call_function", numpy_factory, (name, *args), kwargs)
            return fn(*args, **kwargs)
        return call

    for name, fn in saved.items():
        setattr(np, name, recording(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(np, name, fn)


@contextlib.contextmanager
def traced_factories(tracer: fx.Tracer):
    """`torch.zeros(x.size(0), 1)`, `np.arange(seq.size(1))` and friends: with a traced size among the arguments,
    record a node."""
    with _recording_calls(tracer, torch, {name: getattr(torch, name) for name in FACTORIES}), \
            _recording_numpy(tracer):
        yield


def opaque_torch_calls(tracer: fx.Tracer):
    """`nn.utils.rnn.pack_padded_sequence(...)` called through its module (the `from ... import` spelling is
    fx's autowrap): with a traced value among the arguments, record one node calling the function."""
    module = torch.nn.utils.rnn
    saved = {fn.__name__: fn for fn in OPAQUE_TORCH_FUNCTIONS if getattr(module, fn.__name__, None) is fn}
    return _recording_calls(tracer, module, saved)


@contextlib.contextmanager
def constant_indexed_by_proxy(tracer: fx.Tracer):
    """`buffer[traced_index]`: one `__getitem__` node, without torch's length queries on the index."""
    tensor = torch.Tensor
    saved = tensor.__dict__.get("__getitem__")
    original = tensor.__getitem__

    def getitem(self: torch.Tensor, index: Any) -> Any:
        if has_proxy(index) and not getattr(tracer, "_evaluating", 0):
            return tracer.create_proxy("call_method", "__getitem__", (self, index), {})
        return original(self, index)

    tensor.__getitem__ = getitem
    try:
        yield
    finally:
        if saved is None:
            del tensor.__getitem__
        else:
            tensor.__getitem__ = saved


@contextlib.contextmanager
def scripted_functions_inline():
    """A scripted free function (`@torch.jit.script def pad(inputs: Dict[str, Tensor])`) called with a traced
    value among its arguments runs the Python function it was compiled from (`torch.jit.script` keeps it
    as `_torchdynamo_inline`), so fx traces its body; without traced arguments it runs compiled, as before."""
    cls = torch.jit.ScriptFunction
    saved = cls.__dict__["__call__"]

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        python = getattr(self, "_torchdynamo_inline", None)
        if python is not None and has_proxy((args, kwargs)):
            return python(*args, **kwargs)
        return saved(self, *args, **kwargs)

    cls.__call__ = call
    try:
        yield
    finally:
        cls.__call__ = saved


_DISTRIBUTION_TRACERS: list[fx.Tracer] = []  # the tracers now recording distributions, innermost last


def _distribution_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    tracer = _DISTRIBUTION_TRACERS[-1] if _DISTRIBUTION_TRACERS else None
    if tracer is not None and not getattr(tracer, "_evaluating", 0) and has_proxy((args, kwargs)):
        return tracer.create_proxy("call_function", cls, args, kwargs)
    return object.__new__(cls)


@contextlib.contextmanager
def traced_distributions(tracer: fx.Tracer):
    """`torch.distributions.<D>(traced, ...)`: one `call_function` node of the class (Distribution's `__new__`
    returns the proxy, so `__init__` and its value checks do not run while tracing). The `__new__` stays
    installed, passing through outside tracing: once a class has defined `__new__`, removing it leaves
    `object.__new__` refusing the constructor's arguments."""
    base = torch.distributions.Distribution
    if base.__dict__.get("__new__") is not _distribution_new:
        base.__new__ = _distribution_new
    _DISTRIBUTION_TRACERS.append(tracer)
    try:
        yield
    finally:
        _DISTRIBUTION_TRACERS.pop()
