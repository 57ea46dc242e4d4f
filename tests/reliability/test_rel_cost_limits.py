"""`dmt-compile cost` and topology specs: non-finite or absurd values are one typed line, never inf/NaN rows."""
from __future__ import annotations

import io
import math

import pytest

import dmt_compile
from dmt_compile import errors
from dmt_compile.passes.options import MAX_COMPRESSION
from dmt_compile.tools.cli import main
from dmt_compile.topo.cost_limits import MAX_COST_COMPRESSION, check_rows
from dmt_compile.topo.cost_report import Config, compare
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import MAX_WORLD_SIZE
from helpers import load_model


def _cost(argv: list[str], capsys) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(["cost", "--topology", "h100:16", *argv], stdout=out)
    return code, out.getvalue(), capsys.readouterr().err


@pytest.mark.parametrize("argv,says", [
    (["--compression", "inf"], "every compression ratio must be a number in [1, 16]"),
    (["--compression", "nan"], "every compression ratio must be a number in [1, 16]"),
    (["--compression", "4", "17"], "got 17.0"),
    (["--compression", "-1"], "got -1.0"),
    (["--compression", "0.5"], "got 0.5"),
    (["--pooling", "inf"], "the pooling factor must be"),
    (["--pooling", "nan"], "the pooling factor must be"),
    (["--pooling", "-2"], "the pooling factor must be"),
    (["--batch", "99999999999999999999999"], "the batch per rank must be a whole number in [1, 16,777,216]"),
    (["--batch", "-5"], "must be positive"),
    (["--dim", "1000000000000"], "every feature width must be"),
    (["--features", "100000000"], "--features must be at most 100,000"),
    (["--bytes-per-element", "3"], "bytes per element must be 1, 2, 4 or 8"),
    (["--bytes-per-element", "-4"], "bytes per element must be 1, 2, 4 or 8"),
    (["--param", "congestion=inf"], "congestion must be a finite non-negative number"),
    (["--param", "eta_intra=nan"], "eta_intra must be a finite non-negative number"),
    (["--sweep", "99999999999999999999"], "TopologyError"),
])
def test_cost_refuses_non_finite_and_absurd_values(argv, says, capsys):
    code, out, err = _cost(argv, capsys)
    assert code != 0 and out == "", out
    assert says in err and "fix:" in err, err
    assert "Traceback" not in err


def test_cost_limit_is_transforms_limit():
    assert MAX_COST_COMPRESSION == MAX_COMPRESSION


@pytest.mark.parametrize("c", [1.0, 4.0, 16.0])
def test_cost_accepts_every_compression_transform_accepts(c, capsys):
    code, out, err = _cost(["--compression", str(c), "--format", "json"], capsys)
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out


def test_no_row_is_ever_inf_or_nan():
    """Pooling 0 (no ids) and huge but finite values still give finite rows; a non-finite one is refused."""
    rows = compare(as_topology("h100:16"), Config(feature_widths=(128.0,) * 26, batch_per_rank=1 << 24,
                                                   ids_per_sample=(0.0,) * 26, compressions=(16.0,)))
    assert all(math.isfinite(v) for r in rows.values() for v in r.values())
    with pytest.raises(errors.CostModelError, match=r"computed inf for total of sptt; refusing"):
        check_rows({"flat": {"total": 1.0}, "sptt": {"total": float("inf")}})


@pytest.mark.parametrize("spec", ["99999999999999999999x1", "1x99999999999999999999", "8192x4096"])
def test_huge_topology_is_a_typed_error_not_an_overflow(spec):
    with pytest.raises(errors.TopologyError, match=f"at most {MAX_WORLD_SIZE:,} are supported") as info:
        as_topology(spec)
    assert "fix:" in str(info.value)
    model, inputs = load_model("example:dlrm")
    with pytest.raises(errors.TopologyError):  # not an OverflowError inside a PassError
        dmt_compile.transform(model, spec, inputs)
