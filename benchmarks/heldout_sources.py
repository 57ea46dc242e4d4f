"""Code bases the held-out measure reads from a checkout rather than a package: the folder an environment
variable names goes on `sys.path`, after a check that it holds what the adapter imports."""
from __future__ import annotations

import os
import sys

__all__ = ["checkout_on_path"]


def checkout_on_path(env: str, marker: str, hint: str) -> str:
    """The folder `$env` names, put first on `sys.path`; `marker` (a file or folder inside it) must exist,
    else a `RuntimeError` with `hint` (what to clone, which folder to name)."""
    src = os.environ.get(env)
    if not src or not os.path.exists(os.path.join(src, marker)):
        raise RuntimeError(f"{env} must name {hint}")
    if src not in sys.path:
        sys.path.insert(0, src)
    return src
