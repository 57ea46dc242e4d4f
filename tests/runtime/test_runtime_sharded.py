"""Sharded execution on gloo: exactness vs one process, bytes and messages per group, faults, bad input."""
from __future__ import annotations

import os
import time

import pytest
import torch

from conftest import ROOT
from dmt_compile.errors import CollectiveError
from dmt_compile.runtime.launch import launch_local
from dmt_compile.tools.verify import VerifyOptions
from dmt_compile.topo import Topology
from sharded_workers import die_mid_step, different_plan, run_cases, table_memory, wrong_topology

pytestmark = pytest.mark.distributed

EX = os.path.join(ROOT, "examples")
ZOO = os.path.join(ROOT, "tests", "zoo")
DLRM = f"{EX}/dlrm.py:factory"
TOL = 1e-5


def _spec(path: str) -> str:
    return path


def _zoo(name: str) -> str:
    return f"zoo.{name}:factory"


CASES_2X2 = [
    VerifyOptions(DLRM, "2x2"),                                        # dot interaction
    VerifyOptions(f"{EX}/dcn_v2.py:factory", "2x2"),                   # DCN-v2, ids from one matrix
    VerifyOptions(f"{EX}/deepfm.py:factory", "2x2", optimizer="adagrad"),  # wide + deep, Adagrad tables
    VerifyOptions(f"{EX}/attention.py:factory", "2x2", "linear", 2),   # attention, compressing TM
    VerifyOptions(_zoo("m04_embbag_jagged_widedeep"), "2x2"),          # EmbeddingBag, jagged ids
    VerifyOptions(_zoo("m05_weighted_bag_youtube"), "2x2"),            # shared table + weighted bag
    VerifyOptions(_zoo("m06_shared_fibinet"), "2x2", "linear", 2),     # shared tables, decoder TM
    VerifyOptions(_zoo("m04_embbag_jagged_widedeep"), "2x2", row_wise="always"),  # row-wise sum/mean bags
    VerifyOptions(_zoo("m05_weighted_bag_youtube"), "2x2", optimizer="adagrad", row_wise="always"),
    VerifyOptions(_zoo("m07_big_table_offsets_input"), "2x2"),         # one offset table: auto row-wise
    VerifyOptions(_zoo("m08_xdeepfm_offsets_buffer"), "2x2", "linear", 2),  # BatchNorm: compared in eval
    VerifyOptions(DLRM, "2x2", "linear", 4),                           # compression c = 4
    VerifyOptions(DLRM, "2x2", strategy="flat"),                       # flat baseline
]


@pytest.fixture(scope="module")
def results_2x2():
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    per_rank = launch_local(run_cases, Topology(2, 2), args=(CASES_2X2,), timeout_s=400, env=env)
    return [[per_rank[r][i] for r in range(4)] for i in range(len(CASES_2X2))]


@pytest.mark.parametrize("index", range(len(CASES_2X2)), ids=[
    f"{os.path.basename(c.spec)}-{c.tower_module}-{c.strategy}-{c.optimizer}-{c.row_wise}" for c in CASES_2X2])
def test_exact_on_2x2(results_2x2, index):
    for r in results_2x2[index]:
        assert r["grad_mismatch"] == []
        assert r["params_checked"] > 0
        assert r["output"] <= TOL and r["grad"] <= TOL and r["param"] <= TOL, r


def test_cross_host_activation_bytes_are_analytic(results_2x2):
    """SPTT forward outputs: b·s·Σ_{towers elsewhere} o_t received, (N-1)·b·s·Σ_{my towers} o_t sent."""
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec

    model, inputs = load_model_spec(DLRM, batch_size=16)
    plan = dmt_compile.transform(model, "2x2", inputs).plan
    b, s, n_hosts = 4, 4, 2
    for r in results_2x2[0]:
        host = r["rank"] // 2
        stats = r["stats"]
        mine = sum(d.width_out for d in plan.details if d.host == host)
        other = sum(d.width_out for d in plan.details if d.host != host)
        cross = stats["cross"]
        # ids: counts + lengths + values; outputs forward + backward
        assert cross["messages_sent"] == 5 * (n_hosts - 1)  # counts, lengths, values, outputs, outputs.bwd
        fwd_sent = (n_hosts - 1) * b * s * mine
        fwd_recv = b * s * other
        ids = 16 + 2 * 8 * b * 13  # counts [2 ints], lengths and values of 13 features x b samples
        assert cross["bytes_sent"] == ids + fwd_sent + fwd_recv  # backward sends what forward received
        assert cross["bytes_recv"] == ids + fwd_recv + fwd_sent
        # balanced towers: b * sum(o) * s * (N-1)/N per direction, as in dmt-paper.md §6
        assert fwd_sent == b * sum(d.width_out for d in plan.details) * s * (n_hosts - 1) // n_hosts


def test_flat_baseline_sends_to_every_rank_sptt_to_one_peer(results_2x2):
    """Per exchange, flat talks to (N-1)·L remote ranks, SPTT to N-1 (id counts, lengths, values,
    embeddings forward and backward: five exchanges each)."""
    sptt, flat = results_2x2[0], results_2x2[-1]
    n_hosts, local = 2, 2
    for r in flat:
        cross = r["stats"]["world:cross-host"]
        assert cross["messages_sent"] == 5 * (n_hosts - 1) * local
    for r in sptt:
        assert r["stats"]["cross"]["messages_sent"] == 5 * (n_hosts - 1)
    # the host-split counters see every world exchange, forward and backward: cross + intra == world
    for r in flat:
        ops = r["stats_by_op"]
        checked = 0
        for key, counters in ops.items():
            label, op = key.split("/", 1)
            if label != "world" or not op.startswith("tower0."):
                continue
            cross = ops.get(f"world:cross-host/{op}", {}).get("bytes_sent", 0)
            intra = ops.get(f"world:intra-host/{op}", {}).get("bytes_sent", 0)
            assert cross + intra == counters["bytes_sent"], (op, cross, intra, counters)
            checked += 1
        assert checked >= 4  # ids counts/lengths/values, embeddings, embeddings backward


def test_row_wise_tables_are_split_by_rows(results_2x2):
    for index in (7, 8):  # row_wise="always": every rank of a host with a tower holds row shards
        for r in results_2x2[index]:
            assert r["row_shards"] >= 1
    # the single offset table: one tower (host 0), auto-sharded by rows over that host's two ranks
    shards = [r["row_shards"] for r in results_2x2[9]]
    assert shards == [1, 1, 0, 0]


def test_batch_coupled_layers_are_compared_in_eval_mode(results_2x2):
    assert all(r["eval_mode_for"] == ["BatchNorm1d"] for r in results_2x2[10])
    assert all(r["eval_mode_for"] == [] for r in results_2x2[0])


def test_compressing_tower_module_cuts_cross_host_bytes(results_2x2):
    ids = 16 + 2 * 8 * 4 * 13  # the same id traffic for both
    for identity, linear in zip(results_2x2[0], results_2x2[-2]):
        out_identity = identity["stats"]["cross"]["bytes_sent"] - ids
        out_linear = linear["stats"]["cross"]["bytes_sent"] - ids
        assert 0 < out_linear and out_linear * 4 == out_identity  # 208 -> 52 elements per tower
        assert linear["param_bytes"]["tower"] > 0  # the TM lives on its host only
        assert identity["param_bytes"]["tower"] == 0


def test_exact_on_2x4():
    cases = [VerifyOptions(DLRM, "2x4"), VerifyOptions(f"{EX}/deepfm.py:factory", "2x4", "linear", 2,
                                                      optimizer="adagrad")]
    per_rank = launch_local(run_cases, Topology(2, 4), args=(cases,), timeout_s=400)
    for r in per_rank:
        for case in r:
            assert case["output"] <= TOL and case["grad"] <= TOL and case["param"] <= TOL, case
            assert case["grad_mismatch"] == []


def test_tables_live_only_on_their_owner():
    per_rank = launch_local(table_memory, Topology(2, 2), args=(DLRM, "2x2"), timeout_s=200)
    total = per_rank[0]["total_tables"]
    held = [r["held_tables"] for r in per_rank]
    assert sum(held) == total  # every table exactly once in the world
    assert max(held) < total / 2  # no rank holds more than its share (plus imbalance)


def test_killed_rank_fails_every_rank_fast():
    start = time.monotonic()
    with pytest.raises(CollectiveError) as info:
        launch_local(die_mid_step, Topology(2, 2), args=(DLRM, "2x2"), timeout_s=120, failure_grace_s=50)
    elapsed = time.monotonic() - start
    assert elapsed < 60 + 30, f"took {elapsed:.1f} s"
    err = info.value
    assert 1 in err.failures and err.failures[1].kind == "exited"
    others = [r for r in (0, 2, 3) if r in err.failures]
    assert others, "the surviving ranks must report an error"
    for r in others:
        assert err.failures[r].kind == "raised", err.failures[r]
        assert err.failures[r].elapsed_s < 60


def test_rank_with_a_different_plan_is_refused():
    with pytest.raises(CollectiveError) as info:
        launch_local(different_plan, Topology(2, 2), args=(DLRM, "2x2"), timeout_s=200)
    assert "RuntimeSetupError" in str(info.value) and "different plan" in str(info.value)


def test_world_size_differs_from_transform_topology():
    with pytest.raises(CollectiveError) as info:
        launch_local(wrong_topology, Topology(2, 2), args=(DLRM,), timeout_s=200)
    text = str(info.value)
    assert "RuntimeSetupError" in text and "transformed for topology 2x4" in text


def test_batch_not_divisible_is_a_typed_error(tmp_path):
    model_file = tmp_path / "odd.py"
    model_file.write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.a = torch.nn.Embedding(10, 4); self.b = torch.nn.Embedding(10, 4)\n"
        "    def forward(self, x):\n"
        "        return (self.a(x[:, 0]) * self.b(x[:, 1])).sum(1, keepdim=True)\n"
        "def factory():\n"
        "    torch.manual_seed(0)\n"
        "    return M(), (torch.randint(0, 10, (6, 2)),)\n"
    )
    with pytest.raises(CollectiveError) as info:
        launch_local(run_cases, Topology(2, 2), args=([VerifyOptions(f"{model_file}:factory", "2x2")],),
                     timeout_s=200)
    assert "InputError" in str(info.value) and "does not split over 4 ranks" in str(info.value)


@pytest.mark.gpu
def test_exact_on_nccl_when_gpus_are_present():
    """The same checks on NCCL, one GPU per rank; skipped cleanly without CUDA (CI has none)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < 2:
        pytest.skip(f"NCCL tests need at least 2 CUDA devices; found {gpus}")
    topo = Topology(2, gpus // 2) if gpus >= 4 else Topology(1, 2)
    spec = str(topo)
    cases = [VerifyOptions(DLRM, spec, device="cuda"),
             VerifyOptions(f"{EX}/deepfm.py:factory", spec, "linear", 2, device="cuda", optimizer="adagrad"),
             VerifyOptions(_zoo("m04_embbag_jagged_widedeep"), spec, device="cuda", row_wise="always"),
             VerifyOptions(DLRM, spec, strategy="flat", device="cuda")]
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    per_rank = launch_local(run_cases, topo, args=(cases,), timeout_s=600, backend="nccl", env=env)
    for r in per_rank:
        for case in r:
            assert case["grad_mismatch"] == [] and case["params_checked"] > 0
            assert case["output"] <= TOL and case["grad"] <= TOL and case["param"] <= TOL, case


def test_torchrec_models_sharded_exactly():
    pytest.importorskip("torchrec", reason="torchrec is not installed (README, TorchRec recipe)")
    cases = [VerifyOptions(_zoo("m10_torchrec_dlrm"), "2x2"),
             VerifyOptions(_zoo("m10_torchrec_dlrm"), "2x2", "linear", 2),
             VerifyOptions(_zoo("m12_torchrec_ebc_deepfm"), "2x2", optimizer="adagrad")]
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    per_rank = launch_local(run_cases, Topology(2, 2), args=(cases,), timeout_s=400, env=env)
    for r in per_rank:
        for case in r:
            assert case["grad_mismatch"] == [] and case["params_checked"] > 0
            assert case["output"] <= TOL and case["grad"] <= TOL and case["param"] <= TOL, case


def test_unpooled_torchrec_sequences_are_refused_distributed():
    pytest.importorskip("torchrec", reason="torchrec is not installed (README, TorchRec recipe)")
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    with pytest.raises(CollectiveError) as info:
        launch_local(run_cases, Topology(2, 2), args=([VerifyOptions(_zoo("m17_torchrec_ec_sequence"), "2x2")],),
                     timeout_s=200, env=env)
    assert "RuntimeSetupError" in str(info.value) and "EmbeddingCollection" in str(info.value)
