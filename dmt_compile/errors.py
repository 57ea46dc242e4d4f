"""Typed errors raised by dmt_compile.

Every error names the problem and the fix. Callers catch `DmtError` for "anything
dmt_compile refused"; the subclasses say which stage refused.
"""
from __future__ import annotations

__all__ = [
    "DmtError",
    "TopologyError",
    "CaptureError",
    "DetectionError",
    "PlanError",
    "RewriteError",
    "TowerModuleError",
    "PassError",
    "InputError",
    "CostModelError",
    "RuntimeSetupError",
    "CollectiveError",
    "ModelSpecError",
    "CheckpointError",
    "CheckpointDamaged",
    "SpecializationError",
    "OutputError",
    "NonFiniteError",
    "MissingDependencyError",
    "TORCHREC_RECIPE",
    "require_torchrec",
]

# TorchRec on CPU with pip as it is: torchrec's wheel asks for the CUDA fbgemm-gpu, so install the CPU
# fbgemm build and torchrec's pure-Python dependencies first, then torchrec without dependencies
# (the versions move in lockstep with torch 2.13). .ci/run phase 2 runs exactly these two lines.
TORCHREC_RECIPE = (
    "pip install -c constraints.txt fbgemm-gpu-cpu==1.8.0 tensordict torchmetrics==1.0.3 tqdm pyre-extensions\n"
    "pip install -c constraints.txt --no-deps torchrec==1.8.0"
)


class DmtError(Exception):
    """Base class of every error dmt_compile raises on purpose."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class TopologyError(DmtError, ValueError):
    """A topology spec or Topology value is malformed or inconsistent."""


class CaptureError(DmtError):
    """The model could not be captured as a graph by any capture path."""


class DetectionError(DmtError):
    """No embedding lookups, or lookups whose ids/consumers cannot be understood."""


class PlanError(DmtError, ValueError):
    """The tower plan cannot satisfy the request (towers, pins, shared tables)."""


class RewriteError(DmtError):
    """The SPTT rewrite could not be applied to the captured graph."""


class TowerModuleError(DmtError, ValueError):
    """Unknown Tower Module name or impossible compression for a tower."""


class PassError(DmtError):
    """A pass of the pipeline failed; names the pass and the passes that ran before it."""

    def __init__(self, pass_name: str, prior: list[str], cause: BaseException):
        self.pass_name = pass_name
        self.prior = list(prior)
        self.cause = cause
        ran = ", ".join(prior) if prior else "none"
        super().__init__(
            f"pass '{pass_name}' failed (passes that ran before it: {ran}): "
            f"{type(cause).__name__}: {cause}",
            "see the chained exception; run with --dump-dir to see the graph before the pass",
        )


class InputError(DmtError, ValueError):
    """Inputs given to transform or to a transformed model do not fit."""


class SpecializationError(InputError):
    """A call took a different Python branch than the example inputs the graph was captured with."""


class CostModelError(DmtError, ValueError):
    """Bad parameters for the cost model."""


class RuntimeSetupError(DmtError):
    """The distributed runtime cannot start as asked (world size, plan mismatch, ...)."""


class CollectiveError(DmtError):
    """A collective failed or timed out (a peer died, a hang was cut short)."""


class ModelSpecError(DmtError, ValueError):
    """A MODEL_SPEC (`path.py:factory` or `pkg.mod:factory`) cannot be loaded."""


class CheckpointError(DmtError):
    """A state dict or checkpoint does not fit the model (keys, shapes, topology, rebuilt layers)."""

    def __reduce__(self):  # sent between ranks: keep problem and fix apart
        return type(self), (self.problem, self.fix)


class CheckpointDamaged(CheckpointError):
    """A checkpoint's files are missing, truncated or do not match their checksums (resume falls back)."""


class OutputError(DmtError):
    """A file or folder dmt_compile was asked to write cannot be written (checked before the work starts)."""


class NonFiniteError(DmtError, FloatingPointError):
    """A NaN or inf met the opt-in guard (`distribute(check_finite=True)`); names the rank and the step."""


class MissingDependencyError(DmtError, ImportError):
    """An optional package that this feature needs is not installed (the message says how to install it)."""


def require_torchrec(feature: str) -> None:
    """Raise `MissingDependencyError` with the two-line CPU recipe when torchrec cannot be imported."""
    try:
        import torchrec  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs torchrec, which is not installed ({type(exc).__name__}: {exc})",
            "install TorchRec on CPU with these two commands (README, 'TorchRec'):\n" + TORCHREC_RECIPE) from exc
