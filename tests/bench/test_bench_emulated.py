"""Emulated multi-host benchmark: unit checks, and a short smoke run (2x2, low throttle) needing root."""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess

import pytest

from benchmarks.emulated import netns
from benchmarks.emulated.analysis import _union_length, analytic_min_cross
from benchmarks.emulated.nic import duplex_profile, timeline
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


def test_interleaved_schedule():
    runs = (("flat", None, "fp32"), ("sptt", None, "fp32"), ("sptt_tm", 4.0, "bf16"))
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


def test_refuses_without_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NetnsUnavailable, match="root"):
        netns.check_netns_permitted()
    out = io.StringIO()
    args = _parser().parse_args(["bench", "--emulate", "2x2"])
    assert args.func(args, out) == 2
    assert out.getvalue() == ""  # stdout is the report; the error goes to stderr
    assert "needs root" in capsys.readouterr().err


def test_smoke_2x2_runs_tears_down_and_counts_consistently():
    why = _netns_skip_reason()
    if why:
        pytest.skip(why)
    out = io.StringIO()
    args = _parser().parse_args([
        "bench", "--emulate", "2x2", "--inter-bw", "2gbit", "--batch-per-rank", "64", "--steps", "3",
        "--warmup", "1", "--compression", "4", "--strategies", "flat,sptt,sptt_tm", "--wire-dtype", "fp32,bf16",
        "--format", "json", "--timeout", "400", "--force"])
    assert args.func(args, out) == 0
    report = json.loads(out.getvalue())
    assert report["teardown"]["clean"]
    assert netns.list_leftovers() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "dmtb" not in links
    rows = {r["run"]: r for r in report["results"]}
    assert set(rows) == {"flat", "sptt", "sptt_tm@4", "flat+bf16", "sptt+bf16", "sptt_tm@4+bf16"}
    for r in rows.values():  # the fields scripts may rely on
        for key in ("strategy", "wire_dtype", "compression_requested", "compression_effective", "feed",
                    "step_time_s", "speedup_vs_flat", "speedup_vs_best_baseline", "bound", "efficiency",
                    "measured_exchange_share", "step_samples_s", "descriptor", "non_wire_s", "wire_s"):
            assert key in r, key
        assert len(r["step_samples_s"]) == 3 and r["step_time_s"]["ci95"][0] <= r["step_time_s"]["median"]
        assert 0 < r["cpu_busy"] and r["cores"] >= 1 and r["cpu_bound_s"] > 0
        assert r["nic"]["profile"] is not None and r["nic"]["median_step_timeline_10ms"]
        assert r["bytes_consistent"] is True  # bytes on the wire == the runtime's own counters, per rank
        assert r["non_wire_s"] > 0 and r["bound"] > 0
    for key in ("load_before", "load_after", "launches", "results", "flat_measured_exchange_share"):
        assert key in report
    assert report["launches"] == 2 and report["loaded_box"] in (True, False)
    assert rows["flat"]["speedup_vs_flat"]["median"] == pytest.approx(1.0)
    assert rows["sptt_tm@4"]["compression_effective"] == pytest.approx(4.0)  # linear TM meets c=4
    assert rows["sptt"]["feed"] == ["identity"] and rows["sptt_tm@4"]["descriptor"]["dense_parameters"] > 0
    assert report["best_baseline"] == "flat"  # without --quality only lossless baselines qualify
    # identity SPTT moves the same embedding bytes across hosts as flat; c=4 about a quarter; bf16 half
    flat_x = rows["flat"]["cross_host_bytes_per_rank"]
    assert rows["sptt"]["cross_host_bytes_per_rank"] == pytest.approx(flat_x, rel=0.05)
    assert rows["sptt_tm@4"]["cross_host_bytes_per_rank"] < 0.35 * flat_x
    assert rows["flat+bf16"]["cross_host_bytes_per_rank"] < 0.6 * flat_x
    assert rows["sptt"]["cross_host_messages_per_rank"] < rows["flat"]["cross_host_messages_per_rank"]


def test_teardown_on_failure():
    why = _netns_skip_reason()
    if why:
        pytest.skip(why)
    with pytest.raises(RuntimeError, match="boom"):
        with netns.Emulation(2, netns.LinkSpec(1e9)):
            assert len(netns.list_leftovers()) == 3
            raise RuntimeError("boom")
    assert netns.list_leftovers() == []
