"""The fx tracer used by capture: embedding modules as leaves, optional value carrying.

With `carry_values=True` every proxy carries the concrete value computed on the example
inputs, so Python control flow that fx cannot trace (`bool`, `len`, `iter`, `int` on a proxy)
is answered from the value and recorded as a specialisation. Shapes are not specialised: a
`x.size(0)` stays a node, so the graph still runs at other batch sizes.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.fx as fx
from torch.fx.proxy import Proxy

from dmt_compile.capture.inputs import InputSpec
from dmt_compile.ir.meta import INPUT_PATH

__all__ = ["CaptureTracer", "Specialization", "is_embedding_module", "EMBEDDING_MODULE_NAMES"]

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

    def __str__(self) -> str:
        return f"{self.kind}({self.node}) = {self.value}  [{self.where}]"


def _user_frame() -> str:
    """file:line of the first frame outside torch and dmt_compile (for reports)."""
    for frame in inspect.stack()[2:]:
        f = frame.filename
        if "/torch/" in f or "/dmt_compile/" in f:
            continue
        return f"{f.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


class CaptureTracer(fx.Tracer):
    """fx tracer with embedding leaves, named flat placeholders and optional value carrying."""

    def __init__(self, spec: InputSpec, flat_inputs: list[Any], *, carry_values: bool, extra_leaves=()):
        super().__init__()
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

    # -- value carrying ----------------------------------------------------------------------
    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
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

    def _record(self, kind: str, proxy: Proxy, value: Any) -> None:
        self.specializations.append(Specialization(kind, proxy.node.name, repr(value), _user_frame()))

    def to_bool(self, obj: Proxy) -> bool:
        if not self.carry_values:
            return super().to_bool(obj)
        value = bool(self.value_of(obj))
        self._record("bool", obj, value)
        return value

    def iter(self, obj: Proxy) -> Iterator:
        if not self.carry_values:
            return super().iter(obj)
        value = self.value_of(obj)
        node = obj.node
        if node.op == "call_method" and node.target in ("items", "values", "keys"):
            base = self.proxy(node.args[0])
            keys = list(self.values[node.args[0]].keys())
            self._record("iter", obj, keys)
            if node.target == "keys":
                return iter(keys)
            if node.target == "values":
                return iter([base[k] for k in keys])
            return iter([(k, base[k]) for k in keys])
        if isinstance(value, dict):
            self._record("iter", obj, list(value.keys()))
            return iter(list(value.keys()))
        n = len(value)
        self._record("len", obj, n)
        return iter([obj[i] for i in range(n)])

    def keys(self, obj: Proxy) -> Any:
        if not self.carry_values:
            return super().keys(obj)
        value = self.value_of(obj).keys()
        self._record("keys", obj, list(value))
        return value


def _proxy_len(self: Proxy) -> int:
    tracer = self.tracer
    if not isinstance(tracer, CaptureTracer) or not tracer.carry_values:
        raise RuntimeError("'len' is not supported in symbolic tracing by default")
    value = len(tracer.value_of(self))
    tracer._record("len", self, value)
    return value


def _proxy_index(self: Proxy) -> int:
    tracer = self.tracer
    if not isinstance(tracer, CaptureTracer) or not tracer.carry_values:
        raise TypeError("a traced value cannot be used as a Python int")
    value = int(tracer.value_of(self))
    tracer._record("int", self, value)
    return value


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
