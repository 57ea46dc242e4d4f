"""Model fuzzer: flat CTR models composed from independent choices (tests/fuzz_models.py) go through
`transform` — identity towers exact at two batch sizes, at least two towers whenever the model has two
feature groups, `linear` c=4 towers train (first-order descent: `assert_first_order_descent`) — or fail
with a typed one-line error naming the construct.

Profiles: CI runs `DMT_FUZZ_EXAMPLES` (default 200) generated models with a fixed seed (derandomized);
the long profile is the same test by hand with more, e.g. `DMT_FUZZ_EXAMPLES=3000`. `DMT_FUZZ_REPORT=path`
appends one JSON line per model (recipe, outcome) and goes on past failures: the coverage matrix in
docs/DESIGN.md is `python tests/fuzz_matrix.py path`.
"""
from __future__ import annotations

import json
import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import dmt_compile
import fuzz_models as fm
from fuzz_checks import assert_first_order_descent
from dmt_compile.errors import DmtError
from dmt_compile.tools.verify import first_tensor

EXAMPLES = int(os.environ.get("DMT_FUZZ_EXAMPLES", "200"))
UNSUPPORTED: dict[str, str] = {}  # construct -> why (documented in docs/DESIGN.md); none at present

recipes = st.builds(fm.Recipe, fields=st.integers(2, 4),
                    **{axis: st.sampled_from(options) for axis, options in fm.AXES.items()})


def _outputs(model, args, kwargs):
    model.eval()
    with torch.no_grad():
        return first_tensor(model(*args, **kwargs))


def _check(r: fm.Recipe) -> None:
    model = fm.build(r)
    args, kwargs = fm.batch_for(r, 8, seed=0)
    dmt = dmt_compile.transform(model, "2x2", args, example_kwargs=kwargs)
    if r.groups >= 2:
        assert dmt.plan.num_towers == 2, f"{r}: {dmt.plan.num_towers} tower(s)\n{dmt.plan}"
    if r.sequence == "seq_fields":  # the item id and each attribute of a position: a feature group each
        owner = {t: g.index for g in dmt.detection.groups for t in g.tables}
        seq_groups = {i for t, i in owner.items() if t.split(".")[0] in ("seq", "seq_attr")}
        assert len(seq_groups) == 3, f"{r}: the sequence's tables are in groups {seq_groups}\n{dmt.plan}"
    for batch, seed in ((8, 0), (5, 1)):
        args, kwargs = fm.batch_for(r, batch, seed)
        torch.testing.assert_close(_outputs(dmt, args, kwargs), _outputs(model, args, kwargs), rtol=0, atol=0)
    args, kwargs = fm.batch_for(r, 8, seed=0)
    model.train()
    lin = dmt_compile.transform(model, "2x2", args, example_kwargs=kwargs, tower_module="linear", compression=4)
    assert_first_order_descent(lin, args, kwargs)


def _record(r: fm.Recipe, outcome: str) -> None:
    path = os.environ.get("DMT_FUZZ_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"recipe": {k: getattr(r, k) for k in ("fields", *fm.AXES)}, "outcome": outcome})
                     + "\n")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
@given(recipes)
def test_generated_models_transform_exactly_or_fail_typed(r):
    try:
        _check(r)
    except DmtError as exc:
        message = str(exc)
        named = [c for c in UNSUPPORTED if c in str(r)]
        _record(r, f"typed: {type(exc).__name__}: {message.splitlines()[0][:200]}")
        if os.environ.get("DMT_FUZZ_REPORT"):
            return
        assert named and "\n" not in message.split("  fix:")[0].strip(), f"{r}: {type(exc).__name__}: {message}"
        return
    except Exception as exc:
        _record(r, f"fail: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        if os.environ.get("DMT_FUZZ_REPORT"):  # collecting the coverage matrix: record every model, go on
            return
        raise AssertionError(f"{r}: {type(exc).__name__}: {str(exc)[:500]}") from exc
    _record(r, "pass")


@pytest.mark.parametrize("axis, option", [(a, o) for a, opts in fm.AXES.items() for o in opts])
def test_every_option_builds_and_runs_eagerly(axis, option):
    """The fuzzer's own models are sound: each option, with the others at a simple choice."""
    base = dict(fields=3, lookup="per_field", sequence="none", bag="none", numeric="none", packing="matrix",
                interaction="concat_mlp", construct="none", output="tensor")
    r = fm.Recipe(**{**base, axis: option})
    args, kwargs = fm.batch_for(r, 4, seed=0)
    assert _outputs(fm.build(r), args, kwargs).shape == (4, 1)
