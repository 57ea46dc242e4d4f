"""Emulated multi-host benchmark: unit checks, and a short smoke run (2x2, low throttle) needing root."""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess

import pytest

from dmt_compile.tools.bench import netns
from dmt_compile.tools.bench.analysis import _union_length, analytic_min_cross
from dmt_compile.tools.cmd_bench import register, parse_emulate


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmt-compile")
    register(p.add_subparsers(dest="command"))
    return p


def _netns_skip_reason() -> str | None:
    try:
        netns.check_netns_permitted()
    except netns.NetnsUnavailable as exc:
        return f"network namespaces are not permitted here: {exc}"
    return None


def test_parsers():
    assert netns.parse_rate("1gbit") == 1e9
    assert netns.parse_rate("500mbit") == 5e8
    assert netns.parse_rate("100mbps") == 8e8
    assert netns.parse_time("100us") == pytest.approx(1e-4)
    assert netns.parse_time("0") == 0.0
    assert parse_emulate("2x4") == (2, 4)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_emulate("2by4")
    with pytest.raises(netns.EmulationError):
        netns.parse_rate("fast")
    args = _parser().parse_args(["bench", "--emulate", "2x2", "--compression", "1,4,16", "--format", "json"])
    assert args.emulate == (2, 2) and args.compression == (1.0, 4.0, 16.0) and args.func.__name__ == "run_bench"


def test_analytic_minimum_and_union():
    # 2 hosts, b=10: ids 8 B + 2 x 4 B x width per sample, half of it crosses
    towers = [{"ids": 13, "width_out": 832}, {"ids": 13, "width_out": 832}]
    assert analytic_min_cross(towers, 2, 10) == 0.5 * 10 * 2 * (8 * 13 + 8 * 832)
    assert _union_length([(0, 1), (0.5, 2), (3, 4)]) == pytest.approx(3.0)


def test_refuses_without_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NetnsUnavailable, match="root"):
        netns.check_netns_permitted()
    out = io.StringIO()
    args = _parser().parse_args(["bench", "--emulate", "2x2"])
    assert args.func(args, out) == 2
    assert "needs root" in out.getvalue()


def test_smoke_2x2_runs_tears_down_and_counts_consistently():
    why = _netns_skip_reason()
    if why:
        pytest.skip(why)
    out = io.StringIO()
    args = _parser().parse_args([
        "bench", "--emulate", "2x2", "--inter-bw", "2gbit", "--batch-per-rank", "64", "--steps", "2",
        "--warmup", "1", "--compression", "4", "--strategies", "flat,sptt,sptt_tm", "--format", "json",
        "--timeout", "90"])
    assert args.func(args, out) == 0
    report = json.loads(out.getvalue())
    assert report["teardown"]["clean"]
    assert netns.list_leftovers() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "dmtb" not in links
    rows = {(r["strategy"], r["compression"]): r for r in report["results"]}
    assert set(rows) == {("flat", None), ("sptt", None), ("sptt_tm", 4.0)}
    for r in rows.values():
        for key in ("strategy", "compression", "step_time_median_s", "exchange_time_median_s",
                    "cross_host_bytes_per_rank", "speedup_vs_flat", "speedup_vs_torchrec"):
            assert key in r
        assert r["step_time_median_s"] > 0 and r["exchange_time_median_s"] > 0
        # bytes on the wire == the runtime's own counters, per rank
        assert r["bytes_consistent"] is True
        # payload >= analytic minimum; the excess is only counts/lengths metadata (< 10 %)
        assert 1.0 <= r["cross_bytes_vs_min"] < 1.10
    assert rows[("flat", None)]["speedup_vs_flat"] == pytest.approx(1.0)
    # identity SPTT moves the same embedding bytes across hosts as flat; c=4 about a quarter
    assert rows[("sptt", None)]["cross_host_bytes_per_rank"] == pytest.approx(
        rows[("flat", None)]["cross_host_bytes_per_rank"], rel=0.05)
    assert rows[("sptt_tm", 4.0)]["cross_host_bytes_per_rank"] < 0.35 * rows[("flat", None)]["cross_host_bytes_per_rank"]
    assert rows[("sptt", None)]["cross_host_messages_per_rank"] < rows[("flat", None)]["cross_host_messages_per_rank"]


def test_teardown_on_failure():
    why = _netns_skip_reason()
    if why:
        pytest.skip(why)
    with pytest.raises(RuntimeError, match="boom"):
        with netns.Emulation(2, netns.LinkSpec(1e9)):
            assert len(netns.list_leftovers()) == 3
            raise RuntimeError("boom")
    assert netns.list_leftovers() == []
