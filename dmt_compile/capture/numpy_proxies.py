"""numpy ufuncs on traced values: `np.ceil(x.shape[0] / 128)` becomes a node instead of a failure.

numpy asks an unknown operand for `__array_ufunc__` on its type before converting it; a Proxy has
none, so numpy tries `__array_struct__`, which fx answers with another Proxy ("invalid
__array_struct__"). While tracing, `Proxy.__array_ufunc__` records a `numpy_ufunc` node instead. Under
value carrying the node's value is computed from the example, and an `int()` of it is specialised
and guarded like any other (ghost batch norm's `x.chunk(int(np.ceil(x.shape[0] / vbs)))`).

Likewise numpy's other functions (`np.tril(np.ones((1, L, L)))`, a causal mask of a traced length) ask
their array arguments for `__array_function__`: `Proxy.__array_function__` records a `numpy_factory`
node calling the function by name (numpy's creation functions, which do not dispatch, are
`call_nodes.NUMPY_FACTORIES`).
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from torch.fx.proxy import Proxy

from dmt_compile.capture.call_nodes import dtype_name, numpy_factory
from dmt_compile.capture.tracer import proxy_method

__all__ = ["numpy_ufunc", "numpy_ufunc_proxies"]


def numpy_ufunc(name: str, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """`np.<name>.<method>(*inputs)` (by name, so a graph holding it pickles)."""
    return getattr(getattr(np, name), method)(*inputs, **kwargs)


def _array_ufunc(self: Proxy, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    if getattr(np, ufunc.__name__, None) is not ufunc:
        return NotImplemented  # a ufunc numpy does not expose by name: numpy raises its own TypeError
    return self.tracer.create_proxy("call_function", numpy_ufunc, (ufunc.__name__, method, *inputs), kwargs)


def _array_function(self: Proxy, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
    if getattr(np, func.__name__, None) is not func:
        return NotImplemented  # a function numpy does not expose by name (np.linalg.*): numpy's own TypeError
    args = tuple(dtype_name(a) for a in args)
    kwargs = {k: dtype_name(v) for k, v in kwargs.items()}
    return self.tracer.create_proxy("call_function", numpy_factory, (func.__name__, *args), kwargs)


@contextlib.contextmanager
def numpy_ufunc_proxies():
    """Let numpy ufuncs and functions applied to traced values be recorded (restored afterwards)."""
    with proxy_method("__array_ufunc__", _array_ufunc), proxy_method("__array_function__", _array_function):
        yield
