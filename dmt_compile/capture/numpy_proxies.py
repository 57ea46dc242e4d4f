"""numpy ufuncs on traced values: `np.ceil(x.shape[0] / 128)` becomes a node instead of a failure.

numpy asks an unknown operand for `__array_ufunc__` on its type before converting it; a Proxy has
none, so numpy tries `__array_struct__`, which fx answers with another Proxy ("invalid
__array_struct__"). While tracing, `Proxy.__array_ufunc__` records a `numpy_ufunc` node instead. Under
value carrying the node's value is computed from the example, and an `int()` of it is specialised
and guarded like any other (ghost batch norm's `x.chunk(int(np.ceil(x.shape[0] / vbs)))`).
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from torch.fx.proxy import Proxy

from dmt_compile.capture.tracer import proxy_method

__all__ = ["numpy_ufunc", "numpy_ufunc_proxies"]


def numpy_ufunc(name: str, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """`np.<name>.<method>(*inputs)` (by name, so a graph holding it pickles)."""
    return getattr(getattr(np, name), method)(*inputs, **kwargs)


def _array_ufunc(self: Proxy, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    if getattr(np, ufunc.__name__, None) is not ufunc:
        return NotImplemented  # a ufunc numpy does not expose by name: numpy raises its own TypeError
    return self.tracer.create_proxy("call_function", numpy_ufunc, (ufunc.__name__, method, *inputs), kwargs)


def numpy_ufunc_proxies() -> contextlib.AbstractContextManager:
    """Let numpy ufuncs applied to traced values be recorded (restored afterwards)."""
    return proxy_method("__array_ufunc__", _array_ufunc)
