"""pytest plugin for .ci/run: write the node ids of tests skipped because an optional package is missing.

Loaded through PYTEST_ADDOPTS (``-p record_skips``, with .ci on PYTHONPATH) so the README's test
command runs unchanged. ``DMT_CI_SKIPS=path`` names the output file: one node id per line, then a
tab and the skip reason. Only skips whose reason says a package is missing are recorded (GPU,
root and network-namespace skips are not: no extra can fix those on CI).
"""
from __future__ import annotations

import os
import re

import pytest

# reasons of pytest.importorskip / the suite's own "not installed" skips, and the optional packages by name
MISSING = re.compile(r"not installed|could not import|no module named|needs torchrec|\[torchrec\]", re.I)

_seen: list[tuple[str, str]] = []


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = _reason(report)
        if MISSING.search(reason):
            _seen.append((report.nodeid, " ".join(reason.split())))


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("DMT_CI_SKIPS")
    if not path:
        return
    with open(path, "w") as fh:
        for nodeid, reason in dict(_seen).items():
            fh.write(f"{nodeid}\t{reason}\n")
