"""The fx tracer used by capture: embedding modules as leaves, optional value carrying.

With `carry_values=True` every proxy carries the concrete value computed on the example
inputs, so Python control flow that fx cannot trace (`bool`, `len`, `iter`, `int` on a proxy)
is answered from the value and recorded as a specialisation; an answer that can change between
calls becomes a `dmt_guard` node (see `guards.py`). Shapes are not specialised: a `x.size(0)` stays
a node, so the graph still runs at other batch sizes.

Also handled, on every path: numpy arrays and numpy scalars reached from module attributes become
graph constants; a module built and called inside `forward` (not a registered submodule) is traced
through inline; calls of helper libraries that reject proxies (`einops.rearrange`, see
`OPAQUE_HELPER_MODULES`) and of torch functions that reject proxies (packed variable-length sequences,
`OPAQUE_TORCH_FUNCTIONS`, `call_nodes.py`) become one node each; tensor factories called with traced
sizes (`torch.zeros(x.size(0), 1)`) become nodes (`call_nodes.py`); a custom `torch.autograd.Function` applied to a traced
tensor becomes one node that calls its `apply`, so its own backward (sparsemax, entmax,
straight-through estimators) stays in the graph.
"""
from __future__ import annotations

import collections
import contextlib
import inspect
import math
import operator
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.fx as fx
from torch.fx.proxy import Proxy

from dmt_compile.capture.call_nodes import OPAQUE_TORCH_FUNCTIONS, has_proxy
from dmt_compile.capture.code_origin import is_torch_or_own_file
from dmt_compile.capture.guards import dmt_guard, value_dependence
from dmt_compile.capture.inputs import InputSpec
from dmt_compile.ir.meta import GUARD, INPUT_PATH

__all__ = ["CaptureTracer", "proxy_method", "Specialization", "is_embedding_module", "EMBEDDING_MODULE_NAMES",
           "value_proxies", "autograd_function_calls", "FunctionCall"]

_SPLITTERS = {"split": 2, "chunk": None, "unbind": 1, "tensor_split": 2}

# Libraries whose functions reject fx proxies (they check `isinstance(x, torch.Tensor)`): when the model has
# imported one, each call of its public functions on a traced value becomes one node calling it (fx's
# autowrap, which also catches `from einops import rearrange` in the model's own modules).
OPAQUE_HELPER_MODULES = ("einops",)

# Class names treated as embedding lookups (torchrec classes matched by name: optional dependency).
EMBEDDING_MODULE_NAMES = frozenset({"EmbeddingBagCollection", "EmbeddingCollection"})


def is_embedding_module(module: torch.nn.Module) -> bool:
    if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        return True
    return type(module).__name__ in EMBEDDING_MODULE_NAMES


def contains_embedding(module: torch.nn.Module) -> bool:
    return any(is_embedding_module(m) for m in module.modules())


@dataclass(frozen=True)
class Specialization:
    """A Python decision fx could not trace, answered from the example value."""

    kind: str  # "bool", "len", "iter", "int", "keys"
    node: str
    value: str
    where: str
    guarded: bool = False  # the answer can change between calls: a dmt_guard node re-checks it
    dependence: str = ""  # what the answer follows: "batch" (the batch size), "data", "shape", ...
    module: str = ""  # the innermost submodule being traced when it was asked ("" for the root)

    def __str__(self) -> str:
        how = "guarded" if self.guarded else "static"
        return f"{self.kind}({self.node}) = {self.value}  [{self.where}, {how}]"


def _user_frame() -> str:
    """file:line of the first frame outside torch and dmt_compile (for reports)."""
    for frame in inspect.stack()[2:]:
        f = frame.filename
        if is_torch_or_own_file(f):
            continue
        return f"{f.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


class CaptureTracer(fx.Tracer):
    """fx tracer with embedding leaves, named flat placeholders and optional value carrying."""

    def __init__(self, spec: InputSpec, flat_inputs: list[Any], *, carry_values: bool, extra_leaves=()):
        helpers = tuple(sys.modules[name] for name in OPAQUE_HELPER_MODULES if name in sys.modules)
        super().__init__(autowrap_modules=(math, *helpers), autowrap_functions=OPAQUE_TORCH_FUNCTIONS)
        self.spec = spec
        self.flat_inputs = flat_inputs
        self.carry_values = carry_values
        self.extra_leaves = set(extra_leaves)
        self.values: dict[fx.Node, Any] = {}
        self.specializations: list[Specialization] = []
        self._placeholder_values: dict[str, Any] = {}
        self._evaluating = 0

    # -- structure -------------------------------------------------------------------------
    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        if is_embedding_module(m) or qualname in self.extra_leaves:
            return True
        if isinstance(m, torch.jit.ScriptModule):  # compiled: tracing it reads its C++ module `_c`, whose
            return True  # parameters the rewrite would then not own (nor train, nor synchronise)
        return super().is_leaf_module(m, qualname)

    def create_args_for_root(self, root_fn: Callable, is_module: bool, concrete_args=None):
        placeholders = []
        for leaf, value in zip(self.spec.leaves, self.flat_inputs):
            self._placeholder_values[leaf.name] = value
            proxy = self.create_proxy("placeholder", leaf.name, (), {})
            proxy.node.meta[INPUT_PATH] = leaf.display
            placeholders.append(proxy)
        spec = self.spec

        def flat_root(*args: Any) -> Any:
            owner, flat = (args[0], args[1:]) if is_module else (None, args)
            call_args = spec.unflatten(list(flat))
            return root_fn(owner, **call_args) if is_module else root_fn(**call_args)

        return flat_root, ([self.root] if is_module else []) + placeholders

    def call_module(self, m, forward, args, kwargs):
        if self._evaluating:
            return forward(*args, **kwargs)
        if self.submodule_paths is not None and m not in self.submodule_paths and not is_embedding_module(m):
            return forward(*args, **kwargs)  # built inside forward (e.g. nn.Softmax(dim=-1)(x)): trace through it
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:  # remember the innermost module that failed
            if not hasattr(exc, "_dmt_module_path"):
                try:
                    exc._dmt_module_path = self.path_of_module(m)
                except Exception:  # noqa: BLE001 - unregistered module: no attribution
                    exc._dmt_module_path = None
            raise

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if self._evaluating:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_arg(self, a: Any) -> Any:
        if isinstance(a, np.ndarray):  # e.g. per-field offsets kept as numpy on the module
            return super().create_arg(torch.as_tensor(a))
        if isinstance(a, np.generic):  # numpy scalars (np.int64 slice bounds, ...)
            return super().create_arg(a.item())
        if isinstance(a, dict) and type(a) is not dict and not isinstance(a, collections.defaultdict) and a \
                and all(isinstance(k, str) and k.isidentifier() for k in a):
            # a dict subclass (an OrderedDict, a `ModelOutput`-style mapping) is rebuilt as its own type,
            # `Cls(key=value, ...)`, where fx would hand back a plain dict
            return self.create_node("call_function", type(a), (), {k: self.create_arg(v) for k, v in a.items()})
        return super().create_arg(a)

    # -- value carrying ----------------------------------------------------------------------
    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        if kind == "call_method" and self.carry_values and not self._evaluating and args \
                and isinstance(args[0], Proxy) and _numpy_reduction_on_sizes(self._value(args[0].node), target):
            kind, target, args = "call_function", numpy_on_sizes, (target, *args)  # np.prod(x.shape[1:])
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if self.carry_values:
            self.values[proxy.node] = self._evaluate(proxy.node)
        return proxy

    def _evaluate(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self._placeholder_values[node.target]
        args = fx.node.map_arg(node.args, self._value)
        kwargs = fx.node.map_arg(node.kwargs, self._value)
        self._evaluating += 1
        try:
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            if node.op == "call_module":
                return self.root.get_submodule(node.target)(*args, **kwargs)
            if node.op == "get_attr":
                obj: Any = self.root
                for atom in node.target.split("."):
                    obj = getattr(obj, atom)
                return obj
            return None
        finally:
            self._evaluating -= 1

    def _value(self, node: fx.Node) -> Any:
        # tensor attributes used directly become get_attr nodes via create_node, not create_proxy
        if node not in self.values:
            self.values[node] = self._evaluate(node)
        return self.values[node]

    def value_of(self, proxy: Proxy) -> Any:
        if not self.carry_values:
            raise fx.proxy.TraceError("symbolic tracing cannot evaluate control flow on a proxy")
        return self._value(proxy.node)

    def specialize(self, kind: str, proxy: Proxy, value: Any) -> Any:
        """Record the answer `value` to `kind(proxy)`; guard it in the graph unless it is static."""
        if kind == "len":
            dependence = _len_dependence(proxy.node)
        else:
            dependence = value_dependence(proxy.node)
        guarded = kind in ("bool", "int", "len") and dependence in ("data", "batch")
        where = _user_frame()
        module = next(reversed(self.module_stack.values()))[0] if self.module_stack else ""
        self.specializations.append(Specialization(kind, proxy.node.name, repr(value), where, guarded,
                                                   dependence, module))
        if guarded:
            guard = self.create_proxy("call_function", dmt_guard, (proxy, kind, value, where, dependence), {})
            guard.node.meta[GUARD] = f"{kind}({proxy.node.name}) == {value!r}"
        return value

    def to_bool(self, obj: Proxy) -> bool:
        if not self.carry_values:
            return super().to_bool(obj)
        return self.specialize("bool", obj, bool(self.value_of(obj)))

    def iter(self, obj: Proxy) -> Iterator:
        if not self.carry_values:
            return super().iter(obj)
        value = self.value_of(obj)
        node = obj.node
        if node.op == "call_method" and node.target in ("items", "values", "keys"):
            base = self.proxy(node.args[0])
            keys = list(self.values[node.args[0]].keys())
            self.specialize("iter", obj, keys)
            if node.target == "keys":
                return iter(keys)
            if node.target == "values":
                return iter([base[k] for k in keys])
            return iter([(k, base[k]) for k in keys])
        if isinstance(value, dict):
            return iter(self.specialize("iter", obj, list(value.keys())))
        n = self.specialize("len", obj, len(value))
        return iter([obj[i] for i in range(n)])

    def keys(self, obj: Proxy) -> Any:
        if not self.carry_values:
            return super().keys(obj)
        value = self.value_of(obj).keys()
        self.specialize("keys", obj, list(value))
        return value


def _numpy_reduction_on_sizes(value: Any, method: Any) -> bool:
    return isinstance(value, tuple) and isinstance(method, str) and not hasattr(value, method) \
        and callable(getattr(np, method, None))


def numpy_on_sizes(method: str, sizes: tuple, *args: Any, **kwargs: Any) -> Any:
    """`np.<method>` of a shape (numpy calls `shape.prod(...)` on what it does not know): np.prod(x.shape[1:])."""
    return getattr(np, method)(np.asarray(sizes), *args, **kwargs)


def _proxy_setitem(self: Proxy, index: Any, value: Any) -> None:
    """`emb[:, 0] = v` on a traced tensor: an in-place `operator.setitem` node (kept: it has side effects)."""
    self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})


@contextlib.contextmanager
def proxy_method(name: str, method: Callable) -> Iterator[None]:
    """`Proxy.<name> = method` while the block runs, then whatever `Proxy` had before (or nothing)."""
    saved = Proxy.__dict__.get(name)
    setattr(Proxy, name, method)
    try:
        yield
    finally:
        if saved is None:
            delattr(Proxy, name)
        else:
            setattr(Proxy, name, saved)


def setitem_proxies() -> contextlib.AbstractContextManager:
    """Let in-place slice writes on traced tensors be recorded (restored afterwards)."""
    return proxy_method("__setitem__", _proxy_setitem)


def _len_dependence(node: fx.Node) -> str:
    """What `len()` of `node`'s value depends on: the pieces of a split by a non-batch dim are static."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if node.op in ("call_method", "call_function") and name in _SPLITTERS:
        dim = node.kwargs.get("dim", node.args[_SPLITTERS[name]] if _SPLITTERS[name] is not None
                              and len(node.args) > _SPLITTERS[name] else 0)
        return "batch" if dim == 0 and name != "chunk" else "static"
    dependence = value_dependence(node)
    if dependence == "shape":  # len(x.shape) is the rank
        return "static"
    return "batch" if dependence == "data" and node.op != "call_module" else dependence


def _proxy_len(self: Proxy) -> int:
    tracer = self.tracer
    if not isinstance(tracer, CaptureTracer) or not tracer.carry_values:
        raise RuntimeError("'len' is not supported in symbolic tracing by default")
    return tracer.specialize("len", self, len(tracer.value_of(self)))


def _proxy_index(self: Proxy) -> int:
    tracer = self.tracer
    if not isinstance(tracer, CaptureTracer) or not tracer.carry_values:
        raise TypeError("a traced value cannot be used as a Python int")
    return tracer.specialize("int", self, int(tracer.value_of(self)))


@contextlib.contextmanager
def value_proxies():
    """Let `len`, `int` and `range` see carried values while tracing (restored afterwards)."""
    saved = {k: Proxy.__dict__.get(k) for k in ("__len__", "__index__", "__int__")}
    Proxy.__len__ = _proxy_len
    Proxy.__index__ = _proxy_index
    Proxy.__int__ = _proxy_index
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                delattr(Proxy, key)
            else:
                setattr(Proxy, key, old)


class FunctionCall:
    """Calls `function.apply`: the target of the node that stands for one custom Function call.

    An object rather than a closure so that a graph holding it pickles (the Function class is
    pickled by reference); `__name__` / `__module__` are what fx's code generation reads.
    """

    def __init__(self, function: type):
        self.function = function
        self.__name__ = f"{function.__name__}_apply"
        self.__qualname__ = self.__name__
        self.__module__ = __name__  # never torch's: fx would emit `torch....<name>` for a torch Function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function.apply(*args, **kwargs)


@contextlib.contextmanager
def autograd_function_calls(tracer: fx.Tracer):
    """`MyFunction.apply(x)` on a traced tensor: one node calling it (restored afterwards).

    Without this, fx runs the Function's forward on proxies and records its ops, which differentiates
    the forward's ops instead of calling the Function's own backward: gradients silently change.
    """
    function = torch.autograd.Function
    saved = function.__dict__["apply"]
    original = saved.__func__
    callers: dict[type, FunctionCall] = {}

    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if has_proxy((args, kwargs)) and not getattr(tracer, "_evaluating", 0):
            caller = callers.setdefault(cls, FunctionCall(cls))
            return tracer.create_proxy("call_function", caller, args, kwargs)
        return original(cls, *args, **kwargs)

    function.apply = classmethod(apply)
    try:
        yield
    finally:
        function.apply = saved
