"""Shipped quality evidence: each entry is a row of docs/QUALITY.md's feed table, the covering rule
(same Tower Module and feed, least compression at or above the candidate's), and the verdict."""
from __future__ import annotations

import os
import re

import pytest

from conftest import ROOT
from dmt_compile.strategy import Candidate
from dmt_compile.strategy.quality_evidence import EVIDENCE, Evidence, evidence_for, shipped_verdict

DATA = {"planted": "planted(g=4x4, seed=0)", "adult": "adult"}


def _doc_rows() -> dict[tuple[str, str, str], tuple[float, float]]:
    """(data, tower module, feed) -> (ΔAUC, spread) from QUALITY.md's table of feeds."""
    text = open(os.path.join(ROOT, "docs", "QUALITY.md"), encoding="utf-8").read()
    rows = {}
    for m in re.finditer(r"^\| ([^|]+) \| dmt/learned/(\w+)(/decoder)? \| (\w+) \| 3 \|.*?\| ([+-]\d\.\d+) ± (\d\.\d+) \|",
                         text, re.M):
        data, tm, feed = m.group(1).strip(), m.group(2), m.group(4)
        rows[(data, tm, feed)] = (float(m.group(5)), float(m.group(6)))
    return rows


def test_every_shipped_measurement_is_a_row_of_the_quality_doc():
    rows = _doc_rows()
    for e in EVIDENCE:
        assert rows[(DATA[e.data], e.tower_module, e.feed)] == (e.delta_auc, e.spread), e


def _cand(tm: str, c: float, feed: str, wire: str = "fp32") -> Candidate:
    return Candidate("sptt", tm, c, feed, wire)


def test_the_closest_measurement_at_or_above_the_compression_covers_a_candidate():
    ev = (Evidence("dot", "hierarchical", 4.0, "planted", 0.01, 0.001), Evidence("dot", "hierarchical", 8.0, "planted", -0.01, 0.001),
          Evidence("dot", "hierarchical", 8.0, "adult", 0.0, 0.001))
    assert evidence_for(_cand("dot", 2, "hierarchical"), ev)["planted"].compression == 4.0
    assert evidence_for(_cand("dot", 6, "hierarchical"), ev)["planted"].compression == 8.0
    assert evidence_for(_cand("dot", 12, "hierarchical"), ev) == {}
    assert evidence_for(_cand("dot", 4, "decoder"), ev) == {}


@pytest.mark.parametrize("cand,admitted,words", [
    (_cand("dot", 4, "hierarchical"), True, ""),
    (_cand("dot", 2, "decoder"), True, ""),
    (_cand("dot", 16, "decoder"), False, "no shipped measurement of dot with decoder feed at c ≥ 16"),
    (_cand("linear", 4, "decoder"), False, "ΔAUC -0.0118 ± 0.0085 on planted, past the budget -0.002"),
    (_cand("wukong", 4, "decoder"), False, "ΔAUC -0.0025 ± 0.0031 on planted"),
    (_cand("dot", 4, "hierarchical", "bf16"), False, "bf16 wire rounds"),
])
def test_shipped_verdict(cand, admitted, words):
    why = shipped_verdict(cand, 0.002)
    assert (why == "") == admitted and words in why
    assert shipped_verdict(_cand("wukong", 4, "decoder"), 0.006) == ""  # a looser budget admits it (lower bound -0.0056)
