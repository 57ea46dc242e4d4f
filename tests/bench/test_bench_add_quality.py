"""Quality added after the timing (benchmarks/emulated/add_quality.py): what it reads from a report."""
import pytest

from benchmarks.emulated.add_quality import config_of, main
from dmt_compile.errors import InputError


def test_config_of_reads_the_host_layout_tower_module_and_feed():
    cfg = config_of({"config": {"emulate": "4x2", "tower_module": "dot", "feed": "hierarchical"}})
    assert (cfg.num_hosts, cfg.local_size, cfg.tower_module, cfg.feed) == (4, 2, "dot", "hierarchical")


def test_a_hosts_sweep_is_refused_because_its_configurations_differ_per_point():
    report = {"config": {"emulate": "2x2", "tower_module": "dot", "feed": "auto"},
              "sweep": [{"point": {"hosts": "2x2"}}, {"point": {"hosts": "4x1"}}]}
    with pytest.raises(InputError, match="sweeps host layouts"):
        config_of(report)


@pytest.mark.parametrize("report", [{}, {"config": {"emulate": "2by2", "tower_module": "dot", "feed": "auto"}},
                                    {"config": {"emulate": "2x2"}}])
def test_a_report_without_a_usable_config_names_the_fix(report):
    with pytest.raises(InputError, match="no usable config") as info:
        config_of(report)
    assert "dmt-compile bench --format json" in info.value.fix


def test_the_command_line_reports_a_bad_file_as_a_typed_error(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"results": []}')
    with pytest.raises(InputError, match="no usable config"):
        main([str(path)])


def test_equal_functions_share_one_training_key_and_tower_modules_do_not():
    from types import SimpleNamespace

    from benchmarks.emulated.quality import function_key

    cfg = SimpleNamespace(num_hosts=2, local_size=2, tower_module="dot", feed="hierarchical")
    flat_like = {function_key("adult", (s, None, "bf16"), cfg) for s in ("flat", "torchrec_tw", "torchrec_rw", "sptt")}
    assert len(flat_like) == 1
    towers = function_key("adult", ("torchrec_towers", 4.0, "fp32"), cfg)  # TorchRec's towers: the sptt_tm model
    assert towers == function_key("adult", ("sptt_tm", 4.0, "fp32"), cfg) and towers not in flat_like
    assert function_key("adult", ("flat", None, None), cfg) == function_key("adult", ("flat", None, "fp32"), cfg)
    tm = function_key("adult", ("sptt_tm", 4.0, "fp32"), cfg)
    assert tm not in flat_like | {function_key("adult", ("sptt_tm", 16.0, "fp32"), cfg),
                                  function_key("synthetic", ("sptt_tm", 4.0, "fp32"), cfg)}
    assert tm != function_key("adult", ("sptt_tm", 4.0, "fp32"), SimpleNamespace(**{**vars(cfg), "feed": "decoder"}))
