"""docs/API.md is generated from the docstrings (docs/gen_api.py) and kept up to date; every public name
has a docstring."""
from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gen():
    spec = importlib.util.spec_from_file_location("gen_api", os.path.join(ROOT, "docs", "gen_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date():
    gen = _gen()
    assert gen.main(["--check"]) == 0, "docs/API.md is out of date: run python docs/gen_api.py"


def test_the_main_entry_points_are_documented():
    text = open(os.path.join(ROOT, "docs", "API.md")).read()
    for name in ("### `transform(", "### `distribute(", "### `DmtModel", "### `TrainingLog", "local_batch",
                 "### `launch_local(", "### `init_from_env(", "### `TransformOptions"):
        assert name in text, name
    assert "*function in" in text and "(...)" not in text.split("## Errors")[0]


def test_docs_speak_of_the_project_alone():
    """No process vocabulary ("issue 13") and no documents outside the repository in the user-facing docs."""
    import re

    paths = [os.path.join(ROOT, "README.md")] + [
        os.path.join(folder, f) for top in ("docs", "examples") for folder, _, files in os.walk(os.path.join(ROOT, top))
        for f in files if f.endswith((".md", ".py"))]
    bad = re.compile(r"\bissues? \d+|-anchor\b|/work/|shared/reference", re.I)
    found = [f"{os.path.relpath(p, ROOT)}:{i}: {line.strip()[:80]}" for p in paths
             for i, line in enumerate(open(p, encoding="utf-8"), 1) if bad.search(line)]
    assert not found, "\n".join(found)
