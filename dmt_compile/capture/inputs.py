"""Flattening of a model's call arguments into named leaves, and back.

A model may take tensors, dicts of tensors, lists, tuples, torchrec KeyedJaggedTensors and plain
Python constants. Capture turns every tensor-like leaf into one named graph placeholder
(`sparse['f0']` becomes `sparse_f0`); constants are baked into the graph and checked at call time.

An object of any other class that holds tensors in its attributes (a batch dataclass, PyTorch Frame's
`TensorFrame`: `tf.feat_dict[stype.categorical]`) is a container too: its attributes are flattened
like a dict's entries (`tf.feat_dict[...]` becomes `tf_feat_dict_...`) and the traced call gets a new
object of the same class, made without its `__init__`, whose attributes hold the graph's inputs. An
object without tensors stays a constant, as before.
"""
from __future__ import annotations

import enum
import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch

from dmt_compile.errors import InputError

__all__ = ["InputSpec", "Leaf", "flatten_call", "is_tensor_leaf"]


def is_tensor_leaf(value: Any) -> bool:
    """Tensors and torchrec jagged containers are graph inputs; everything else is a constant."""
    if isinstance(value, torch.Tensor):
        return True
    return type(value).__name__ in {"KeyedJaggedTensor", "JaggedTensor", "KeyedTensor"}


@dataclass(frozen=True)
class Leaf:
    """One leaf of the inputs: where it sits, its placeholder name, and a display name."""

    path: tuple[Any, ...]  # (arg_name, key_or_index, ...)
    name: str  # valid Python identifier, unique
    display: str  # e.g. "sparse['f0']"
    feature: str  # short name used for features, e.g. "f0" or "X"


class _Attr(str):
    """A path step that is an object's attribute (shown as `.name`), not a dict key."""


@dataclass(frozen=True)
class _ObjectSpec:
    """An object holding tensors: its class and the structure of its attributes (`vars(obj)`)."""

    cls: type
    attrs: dict

    def rebuild(self, values: dict) -> Any:
        obj = self.cls.__new__(self.cls)
        obj.__dict__.update(values)
        return obj


@dataclass(frozen=True)
class _BatchInt:
    """An int input that is the batch size: the leading dimension of tensor leaf number `ref`."""

    ref: int
    value: int  # in the example call


def _key(key: Any) -> str:
    return f"{type(key).__name__}.{key.name}" if isinstance(key, enum.Enum) else repr(key)


def _display(path: tuple[Any, ...]) -> str:
    out = str(path[0])
    for key in path[1:]:
        out += f".{key}" if isinstance(key, _Attr) else f"[{_key(key)}]"
    return out


def _holds_tensors(value: Any, depth: int = 0) -> bool:
    if is_tensor_leaf(value):
        return True
    if depth > 4:
        return False
    if isinstance(value, dict):
        return any(_holds_tensors(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensors(v, depth + 1) for v in value)
    return _is_tensor_object(value, depth)


def _is_tensor_object(value: Any, depth: int = 0) -> bool:
    """An instance of a plain class (not a module, container or builtin) with tensors among its attributes."""
    if isinstance(value, (torch.nn.Module, dict, list, tuple, str, bytes, type, enum.Enum)) or callable(value):
        return False
    attrs = getattr(value, "__dict__", None)
    return isinstance(attrs, dict) and any(_holds_tensors(v, depth + 1) for v in attrs.values())


def _ident(path: tuple[Any, ...]) -> str:
    raw = "_".join(p.name if isinstance(p, enum.Enum) else str(p) for p in path)
    name = re.sub(r"\W", "_", raw).strip("_") or "input"
    if name[0].isdigit():
        name = "in_" + name
    return name


@dataclass(frozen=True)
class InputSpec:
    """The structure of the example inputs: containers, constants and named tensor leaves."""

    arg_names: tuple[str, ...]
    structure: Any  # nested dict/list/tuple with `Leaf` at tensor positions and constants elsewhere
    leaves: tuple[Leaf, ...]

    def flatten(self, args: tuple, kwargs: dict) -> list[Any]:
        """Flatten a call's arguments in leaf order, checking they match the example structure."""
        bound = _bind(self.arg_names, args, kwargs)
        out: list[Any] = []
        batch_ints: list[tuple[str, _BatchInt, Any]] = []
        for name, spec in zip(self.arg_names, self.structure):
            _collect(spec, bound.get(name, _MISSING), (name,), out, batch_ints)
        for where, spec, value in batch_ints:
            batch = out[spec.ref].shape[0] if out[spec.ref].dim() else None
            if value != batch:
                raise InputError(
                    f"input {where} was the batch size when the model was transformed ({spec.value}, the leading "
                    f"dimension of {self.leaves[spec.ref].display}), got {value!r} with a batch of {batch}",
                    "pass the batch size of this call's tensors (or transform with an example batch whose size "
                    "differs from every int input that is not the batch size)",
                )
        return out

    def unflatten(self, flat: list[Any]) -> dict[str, Any]:
        """Rebuild {arg_name: value} from leaves (proxies during tracing)."""
        flat = list(flat)
        it = iter(flat)
        return {name: _rebuild(spec, it, flat) for name, spec in zip(self.arg_names, self.structure)}

    def with_constant_batch_ints(self) -> "InputSpec":
        """This spec with the batch-size ints as constants again (a graph that holds the example's value)."""
        return InputSpec(self.arg_names, _constant_ints(self.structure), self.leaves)


_MISSING = object()


def _bind(arg_names: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    if len(args) > len(arg_names):
        raise InputError(
            f"model called with {len(args)} positional inputs, but it was transformed with {len(arg_names)}",
            "call the transformed model with the same inputs as example_inputs",
        )
    bound = dict(zip(arg_names, args))
    for key, value in kwargs.items():
        if key not in arg_names or key in bound:
            raise InputError(
                f"unexpected or duplicate keyword input {key!r}",
                f"the transformed model takes {', '.join(arg_names)}",
            )
        bound[key] = value
    return bound


def _collect(spec: Any, value: Any, path: tuple, out: list, batch_ints: list) -> None:
    where = _display(path)
    if isinstance(spec, _BatchInt):
        if value is not _MISSING:
            batch_ints.append((where, spec, value))
    elif isinstance(spec, Leaf):
        if value is _MISSING or not is_tensor_leaf(value):
            raise InputError(
                f"input {where} must be a tensor like in example_inputs, got {type(value).__name__}",
                "pass inputs with the same structure as example_inputs",
            )
        out.append(value)
    elif isinstance(spec, _ObjectSpec):
        if type(value) is not spec.cls:
            raise InputError(
                f"input {where} must be a {spec.cls.__name__} like in example_inputs, got {type(value).__name__}",
                "pass inputs with the same structure as example_inputs",
            )
        for key, sub in spec.attrs.items():
            _collect(sub, getattr(value, key, _MISSING), path + (_Attr(key),), out, batch_ints)
    elif isinstance(spec, dict):
        if not isinstance(value, dict) or list(value.keys()) != list(spec.keys()):
            got = list(value.keys()) if isinstance(value, dict) else type(value).__name__
            raise InputError(
                f"input {where} must be a dict with keys {list(spec.keys())} (in that order), got {got}",
                "pass inputs with the same structure as example_inputs (or transform again)",
            )
        for key, sub in spec.items():
            _collect(sub, value[key], path + (key,), out, batch_ints)
    elif isinstance(spec, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(spec):
            got = f"got {len(value)} items" if isinstance(value, (list, tuple)) else f"got {type(value).__name__}"
            per_sample = isinstance(value, (list, tuple)) and len(value) > 1 and all(
                isinstance(v, torch.Tensor) for v in value)
            raise InputError(
                f"input {where} must be a sequence of length {len(spec)}, {got}"
                + (" (a list of one tensor per sample? the graph holds one input per item of the example)"
                   if per_sample else ""),
                "pad per-sample tensors to one [B, L] tensor in the data pipeline (nn.utils.rnn.pad_sequence) "
                "and transform with that" if per_sample else "pass inputs with the same structure as example_inputs",
            )
        for i, sub in enumerate(spec):
            _collect(sub, value[i], path + (i,), out, batch_ints)
    else:
        same = value is spec or (not isinstance(value, torch.Tensor) and value == spec)
        if value is not _MISSING and not same:
            raise InputError(
                f"input {where} was the constant {spec!r} when the model was transformed, got {value!r}",
                "constants are baked into the graph; transform again with this value",
            )


def _rebuild(spec: Any, it, flat: list) -> Any:
    if isinstance(spec, Leaf):
        return next(it)
    if isinstance(spec, _BatchInt):
        return flat[spec.ref].size(0)
    if isinstance(spec, _ObjectSpec):
        return spec.rebuild({k: _rebuild(v, it, flat) for k, v in spec.attrs.items()})
    if isinstance(spec, dict):
        return {k: _rebuild(v, it, flat) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_rebuild(v, it, flat) for v in spec]
    if isinstance(spec, tuple):
        return tuple(_rebuild(v, it, flat) for v in spec)
    return spec


def _map_constants(structure: Any, fn) -> Any:
    """`structure` with every constant (not a leaf, not a container) replaced by `fn(constant)`."""
    if isinstance(structure, Leaf):
        return structure
    if isinstance(structure, _ObjectSpec):
        return _ObjectSpec(structure.cls, {k: _map_constants(v, fn) for k, v in structure.attrs.items()})
    if isinstance(structure, dict):
        return {k: _map_constants(v, fn) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        items = [_map_constants(v, fn) for v in structure]
        return items if isinstance(structure, list) else tuple(items)
    return fn(structure)


def _constant_ints(structure: Any) -> Any:
    return _map_constants(structure, lambda c: c.value if isinstance(c, _BatchInt) else c)


def _batch_ints(structure: Any, leaves: list[Leaf], flat: list[Any]) -> Any:
    """Int constants equal to the example's batch become `_BatchInt`s (see the module docstring)."""
    sizes = [v.shape[0] for v in flat if isinstance(v, torch.Tensor) and v.dim() >= 1]
    if not sizes:
        return structure
    batch = max(dict.fromkeys(sizes), key=sizes.count)  # the most common leading dimension, first on ties
    if batch < 2:
        return structure
    ref = next(i for i, v in enumerate(flat) if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == batch)
    return _map_constants(structure, lambda c: _BatchInt(ref, c) if type(c) is int and c == batch else c)


def flatten_call(fn: Any, args: tuple, kwargs: dict | None = None) -> tuple[InputSpec, list[Any]]:
    """Describe the example call `fn(*args, **kwargs)` and return its tensor leaves."""
    kwargs = dict(kwargs or {})
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    names = [p.name for p in params]
    if len(args) > len(names):  # forward(*args): synthesise names
        names = [f"arg{i}" for i in range(len(args))]
    used = names[: len(args)] + [n for n in names[len(args):] if n in kwargs]
    bound = _bind(tuple(used), args, kwargs)
    leaves: list[Leaf] = []
    taken: set[str] = set()

    def describe(value: Any, path: tuple) -> Any:
        if is_tensor_leaf(value):
            name = base = _ident(path)
            i = 1
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            taken.add(name)
            if len(path) == 1:
                feature = str(path[0])
            elif isinstance(path[-1], int):  # list/tuple element: lS_i[3]
                feature = f"{path[-2] if len(path) > 2 else path[0]}[{path[-1]}]"
            elif isinstance(path[-1], enum.Enum):  # dict key: the key itself (an enum member by its name)
                feature = path[-1].name
            else:
                feature = str(path[-1])
            leaf = Leaf(path, name, _display(path), feature)
            leaves.append(leaf)
            return leaf
        if isinstance(value, dict):
            return {k: describe(v, path + (k,)) for k, v in value.items()}
        if _is_tensor_object(value):
            return _ObjectSpec(type(value), {k: describe(v, path + (_Attr(k),)) for k, v in vars(value).items()})
        if isinstance(value, (list, tuple)):
            items = [describe(v, path + (i,)) for i, v in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        return value

    structure = tuple(describe(bound[n], (n,)) for n in used)
    flat = InputSpec(tuple(used), structure, tuple(leaves)).flatten(args, kwargs)
    spec = InputSpec(tuple(used), _batch_ints(structure, leaves, flat), tuple(leaves))
    return spec, spec.flatten(args, kwargs)
