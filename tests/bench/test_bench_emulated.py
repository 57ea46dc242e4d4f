"""Emulated multi-host benchmark: unit checks, and a short smoke run (2x2, low throttle) needing root."""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess

import pytest

from benchmarks.emulated import netns
from benchmarks.emulated.analysis import _union_length, add_bounds, analytic_min_cross
from benchmarks.emulated.nic import duplex_profile, timeline
from benchmarks.emulated.runner import rate_for_wire_share
from benchmarks.emulated.worker import schedule
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
    if netns.bench_running():
        return "another emulated benchmark runs on this machine now (it holds the namespaces' lock)"
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


def test_wire_share_rate_and_amdahl_bounds():
    # flat: 100 ms step at 10 Gbit/s with 12.5 MB per NIC direction -> wire 10.5 ms, the rest 89.5 ms
    rate = rate_for_wire_share(0.100, 12.5e6, 10e9, 0.84)
    wire = 12.5e6 / (rate / 8 * 1448 / 1514)
    compute = 0.100 - 12.5e6 / (10e9 / 8 * 1448 / 1514)
    assert wire / (wire + compute) == pytest.approx(0.84)
    with pytest.raises(netns.EmulationError, match="all wire"):
        rate_for_wire_share(0.001, 12.5e6, 10e9, 0.5)
    rows = [{"strategy": "flat", "step_time_median_s": 1.0, "nic_limit_s": 0.84, "nic_bytes_busiest_direction": 2.7e6,
             "speedup_vs_flat": 1.0},
            {"strategy": "sptt_tm", "step_time_median_s": 0.5, "nic_limit_s": 0.3, "nic_bytes_busiest_direction": 1e6,
             "speedup_vs_flat": 2.0}]
    assert add_bounds(rows) == pytest.approx(0.84)
    assert rows[1]["amdahl_bound"] == pytest.approx(1 / (0.16 + 0.84 / 2.7))  # the 2.1x
    assert rows[1]["efficiency"] == pytest.approx(2.0 / rows[1]["amdahl_bound"])
    assert rows[0]["amdahl_bound"] == pytest.approx(1.0)


def test_interleaved_schedule():
    runs = (("flat", None), ("sptt", None), ("sptt_tm", 4.0))
    order = schedule(runs, 3, True)
    assert [r for k, r in order if k == 0] == list(runs)
    assert [r for k, r in order if k == 1] == [runs[1], runs[2], runs[0]]  # rotated per round
    assert sorted(order) == sorted((k, r) for k in range(3) for r in runs)
    assert schedule(runs, 2, False) == [(0, runs[0]), (1, runs[0]), (0, runs[1]), (1, runs[1]), (0, runs[2]),
                                        (1, runs[2])]


def test_nic_duplex_profile():
    rate = 1e6  # bytes/s: 10 kB per 10 ms bin at 100 %
    half, full = [], []
    tx = rx = 0
    for i in range(101):  # 1 s: half duplex = tx for 0.5 s, then rx for 0.5 s
        half.append((i * 0.01, tx, rx))
        tx, rx = (tx + 10_000, rx) if i < 50 else (tx, rx + 10_000)
    tx = rx = 0
    for i in range(101):
        full.append((i * 0.01, tx, rx))
        tx, rx = tx + 5_000, rx + 5_000
    h = duplex_profile(half, [(0.0, 1.0)], rate)
    f = duplex_profile(full, [(0.0, 0.5), (0.4, 1.0)], rate)  # overlapping windows are merged
    assert h["one_way"] > 0.95 and h["both_ways"] == 0 and h["tx_util"] == pytest.approx(0.5, abs=0.02)
    assert f["both_ways"] > 0.95 and f["one_way"] == 0 and f["rx_util"] == pytest.approx(0.5, abs=0.02)
    assert timeline(full, 0.0, 0.1, rate, dt=0.05) == [(50, 50), (50, 50)]
    assert duplex_profile(full, [], rate) is None


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
        "--timeout", "240"])
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
                    "cross_host_bytes_per_rank", "speedup_vs_flat", "speedup_vs_torchrec", "feed", "wire_share",
                    "amdahl_bound", "efficiency", "cpu_busy", "cpu_bound_s", "box_bound", "nic"):
            assert key in r
        assert 0 < r["cpu_busy"] and r["cores"] >= 1 and r["cpu_bound_s"] > 0
        assert r["nic"]["profile"] is not None and r["nic"]["median_step_timeline_10ms"]
        # the cost model's step: compute calibrated before the run, network probed; every term >= 0
        assert r["predicted_step_s"] > 0 and r["step_prediction_error"] is not None
        assert r["predicted_terms"]["dense"] > 0 and all(v >= 0 for v in r["predicted_terms"].values())
        assert r["step_time_median_s"] > 0 and r["exchange_time_median_s"] > 0
        # bytes on the wire == the runtime's own counters, per rank
        assert r["bytes_consistent"] is True
        # payload >= analytic minimum; the excess is only counts/lengths metadata (< 10 %)
        assert 1.0 <= r["cross_bytes_vs_min"] < 1.10
    assert rows[("flat", None)]["speedup_vs_flat"] == pytest.approx(1.0)
    assert rows[("sptt_tm", 4.0)]["feed"] and rows[("sptt", None)]["feed"] == ["identity"]
    assert rows[("sptt_tm", 4.0)]["predicted_terms"]["tm"] > 0 and "tm" not in rows[("sptt", None)]["predicted_terms"]
    assert set(report["compute_calibration"]) >= {"flat", "sptt", "sptt_tm@4"}
    assert report["machine"]["loadavg_before"] and report["config"]["pinned_cores"]
    assert 0 < report["wire_share"] < 1 and rows[("flat", None)]["amdahl_bound"] == pytest.approx(1.0)
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
