"""Top-level (picklable) rank worker for tests/capture/test_distributed_capture.py."""
from __future__ import annotations

from dmt_compile.tools.verify import VerifyOptions, verify_worker


def run_verify_cases(rank: int, cases: list[VerifyOptions]) -> list[dict]:
    return [verify_worker(rank, c) for c in cases]
