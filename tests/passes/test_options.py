"""One options surface: every option field of every default-pipeline pass is a `transform` keyword, a
`TransformOptions` attribute and (when a command line can spell it) a CLI flag with the pass's help, and a
bad value of each gives the pass's typed error. Parametrized over the registry, not hand-listed."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import os
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.passes.base import Pass
from dmt_compile.passes.option_field import option
from dmt_compile.passes.options import OPTIONS, TransformOptions, _collect
from dmt_compile.passes.pipeline import PIPELINE, default_pipeline
from dmt_compile.tools.cli import get_args_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
ALL = list(OPTIONS.values())
CLI = [o for o in ALL if o.flag]


def _bad_values(o):
    """Values the declaration refuses: another type, a name outside the choices, numbers past the range."""
    yield object()
    if o.spec.choices is not None:
        yield f"no-such-{o.name}"
    if o.spec.minimum is not None:
        yield o.spec.minimum - 1
    if o.spec.maximum is not None:
        yield o.spec.maximum + 1


BAD = [(o, v) for o in ALL for v in _bad_values(o)]
BAD_IDS = [f"{o.name}={v if not type(v) is object else 'object()'}" for o, v in BAD]


def _subcommand(name: str) -> argparse.ArgumentParser:
    for action in get_args_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


class NeverRuns(nn.Module):
    """A model whose forward fails: an option error raised by `transform` proves nothing ran before the check."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, x):
        raise AssertionError("the model ran before its options were checked")


def test_the_registry_is_every_field_of_every_pipeline_pass():
    fields = {f.name: cls for cls in PIPELINE for f in dataclasses.fields(cls)}
    assert {name: o.pass_class for name, o in OPTIONS.items()} == fields
    assert {"num_towers", "towers", "partitioner", "seed", "tower_module", "compression", "feed", "rebuild_init",
            "table_ranges"} <= set(OPTIONS)


def test_two_passes_declaring_one_name_are_refused():
    @dataclass(frozen=True)
    class A(Pass):
        width: int = field(default=1, metadata=option("a width"))

    @dataclass(frozen=True)
    class B(Pass):
        width: int = field(default=2, metadata=option("another width"))

    with pytest.raises(TypeError, match="one name per concept"):
        _collect((A, B))


@pytest.mark.parametrize("o", ALL, ids=[o.name for o in ALL])
def test_every_option_is_a_transform_keyword_with_its_help(o):
    param = inspect.signature(dmt_compile.transform).parameters[o.name]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY
    assert param.default == (None if o.searched else o.default)
    doc = " ".join(inspect.getdoc(dmt_compile.transform).split())
    assert f"{o.name} ({o.pass_class.name}" in doc and " ".join(o.help_text().split()) in doc
    assert f"{o.name} ({o.pass_class.name}" in inspect.getdoc(TransformOptions)
    api = " ".join(open(os.path.join(ROOT, "docs", "API.md")).read().split())
    assert " ".join(o.help_text().split()) in api


@pytest.mark.parametrize("o", CLI, ids=[o.name for o in CLI])
@pytest.mark.parametrize("command", ["plan", "dump"])
def test_every_option_a_command_line_can_spell_is_a_flag_with_the_pass_help(o, command):
    action = _actions(_subcommand(command))[o.name]
    assert action.option_strings[0] == o.flag == "--" + o.name.replace("_", "-")
    assert action.help == o.help_text() and action.default is None  # unset, as for transform


def test_mappings_and_lists_are_python_only():
    python_only = {o.name for o in ALL if not o.flag}
    assert python_only == {"towers", "table_ranges"}
    plan = _actions(_subcommand("plan"))
    assert not python_only & set(plan)


def test_every_command_with_an_option_shows_the_pass_help():
    """`verify`, `train`, `feature-graph`, `bench` derive their option flags too: the pass's help, first."""
    seen = 0
    for command in ("verify", "train", "feature-graph", "bench", "plan", "dump"):
        for dest, action in _actions(_subcommand(command)).items():
            if dest in OPTIONS and not isinstance(action.default, tuple):  # a sweep (bench --compression 4,16)
                assert action.help.startswith(OPTIONS[dest].spec.help), (command, dest)
                assert action.option_strings[0] == OPTIONS[dest].flag
                seen += 1
    assert seen >= 2 * len(CLI) + 7


@pytest.mark.parametrize("o, bad", BAD, ids=BAD_IDS)
def test_a_bad_value_is_the_pass_typed_error_before_any_work(o, bad):
    error = o.pass_class.option_error
    with pytest.raises(error) as info:
        o.pass_class(**{o.name: bad}).check_fields()
    assert info.value.option == o.name and info.value.fix
    with pytest.raises(error):
        TransformOptions(**{o.name: bad}).validated()
    with pytest.raises(error) as info:
        dmt_compile.transform(NeverRuns(), "2x2", (torch.zeros(2, 1, dtype=torch.long),), **{o.name: bad})
    assert "ran before" not in str(info.value)


@pytest.mark.parametrize("o, bad", [(o, v) for o, v in BAD if o.flag and type(v) is not object],
                         ids=[i for (o, v), i in zip(BAD, BAD_IDS) if o.flag and type(v) is not object])
def test_a_bad_value_on_the_command_line_is_the_pass_typed_error_naming_the_flag(o, bad, capsys):
    code = main(["plan", DLRM, o.flag, str(bad)], stdout=io.StringIO())
    err = capsys.readouterr().err
    assert code == 2 and f"{o.pass_class.option_error.__name__}: " in err and f"({o.flag})" in err, err
    assert "Traceback" not in err


def test_unset_is_not_the_default():
    """None or left out: unset (the pass's default applies); the same value given is set (auto keeps it)."""
    unset, given = TransformOptions(tower_module=None), TransformOptions(tower_module="identity")
    assert unset.tower_module == given.tower_module == "identity"
    assert not unset.is_set("tower_module") and given.is_set("tower_module")
    assert unset != given and unset == TransformOptions()


def test_a_compression_without_a_tower_module_is_for_the_search_only():
    options = TransformOptions(compression=8)
    assert options.validated(search=True) is options  # auto: it pins the compressing modules' c
    with pytest.raises(dmt_compile.errors.TowerModuleError, match="identity tower module cannot compress"):
        options.validated()  # manual: the identity default cannot compress
    with pytest.raises(dmt_compile.errors.TowerModuleError, match="compression must be in"):
        TransformOptions(compression=40).validated(search=True)


def test_every_option_reaches_its_pass():
    values = {"num_towers": 3, "towers": {"a": 0}, "partitioner": "random", "seed": 7, "tower_module": "dot",
              "compression": 2.0, "feed": "decoder", "rebuild_init": "default", "table_ranges": {"e": [2, 3]}}
    assert set(values) == set(OPTIONS)
    passes = {type(p): p for p in default_pipeline(TransformOptions(**values))}
    for name, value in values.items():
        assert getattr(passes[OPTIONS[name].pass_class], name) == value
    assert [type(p) for p in default_pipeline()] == list(PIPELINE)


def test_an_unknown_keyword_is_a_typed_error_listing_the_options():
    with pytest.raises(dmt_compile.errors.InputError, match="unknown option.*num_tower") as info:
        dmt_compile.transform(NeverRuns(), "2x2", (torch.zeros(2, 1, dtype=torch.long),), num_tower=2)
    assert "num_towers" in info.value.fix


def test_the_former_towers_flag_still_means_num_towers_with_a_warning():
    with pytest.warns(DeprecationWarning, match="--towers is deprecated: use --num-towers"):
        args = get_args_parser().parse_args(["plan", DLRM, "--towers", "3"])
    assert args.num_towers == 3
    with pytest.warns(DeprecationWarning):
        args = get_args_parser().parse_args(["feature-graph", DLRM, "--towers", "2"])
    assert args.num_towers == 2 and args.partitioner == "learned"  # feature-graph's own default


def test_rebuild_init_is_reachable_from_transform_and_the_cli():
    args = get_args_parser().parse_args(["dump", DLRM, "--rebuild-init", "default", "--compression", "4"])
    assert args.rebuild_init == "default" and args.compression == 4.0 and isinstance(args.compression, float)
    pf = [p for p in default_pipeline(TransformOptions(rebuild_init="default")) if hasattr(p, "rebuild_init")]
    assert [p.rebuild_init for p in pf] == ["default"]
