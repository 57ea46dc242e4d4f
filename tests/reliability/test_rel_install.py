"""What a fresh install needs is declared, and CI runs the README's own commands first."""
from __future__ import annotations

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DECLARED = {"torch", "numpy", "sympy", "networkx", "tabulate"}
OPTIONAL = {"torchrec", "fbgemm_gpu", "tqdm", "matplotlib"}  # imported lazily, guarded, named in the README


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", _read("README.md"), re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_first_block_is_install_then_tests():
    install, test = _readme_commands()
    assert install.startswith("pip install -c constraints.txt -e '.[test]'")
    assert test == "python -m pytest -q"


def test_ci_runs_the_readme_commands_in_a_fresh_venv_before_any_extra():
    ci = _read(".ci", "run")
    assert "README.md" in ci and "-m venv" in ci
    _, phase1, phase2 = re.split(r"^# -+ phase [12]$", ci, flags=re.M)
    assert "pip install" not in phase1.replace('"${PYTHON:-python3}" -m venv', ""), "phase 1 installs only via README"
    assert "torchrec" not in phase1 and "TORCHREC_RECIPE" in phase2 and "REAL_ZOO_PACKAGES=(" in ci
    assert phase1.index("-m venv") < phase1.index('bash -euo pipefail -c "$cmd"')


def test_dependencies_are_declared_as_a_range_and_pinned_for_ci():
    py = _read("pyproject.toml")
    deps = re.search(r"dependencies = \[(.*?)\]", py, re.S).group(1)
    names = {re.match(r'\s*"([A-Za-z0-9_-]+)', line).group(1) for line in deps.splitlines() if '"' in line}
    assert names == DECLARED
    assert '"torch>=2.13,<2.14"' in deps and "==" not in deps
    assert re.search(r"^torch==2\.13\.0$", _read("constraints.txt"), re.M)


def test_no_extra_installs_nothing_and_the_torchrec_recipe_is_documented_verbatim():
    """An extra that pip resolves but that leaves `import torchrec` failing is worse than none."""
    from dmt_compile.errors import TORCHREC_RECIPE

    extras = re.search(r"\[project.optional-dependencies\](.*?)\n\[", _read("pyproject.toml"), re.S).group(1)
    assert not re.search(r"^torchrec\s*=", extras, re.M)
    readme = _read("README.md")
    assert TORCHREC_RECIPE in readme, "README must show the two-line TorchRec-on-CPU recipe exactly"
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme


def test_missing_torchrec_raises_a_typed_error_that_prints_the_recipe(monkeypatch):
    import dmt_compile.interop as interop
    from dmt_compile.errors import TORCHREC_RECIPE, MissingDependencyError

    monkeypatch.setitem(sys.modules, "torchrec", None)  # `import torchrec` now raises ImportError
    try:
        interop.to_torchrec_towers
    except MissingDependencyError as exc:
        assert TORCHREC_RECIPE in str(exc) and isinstance(exc, ImportError)
    else:
        raise AssertionError("no MissingDependencyError without torchrec")


def test_every_third_party_import_is_declared():
    """The class of bug: code that needs a package the install does not bring."""
    found: dict[str, str] = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "dmt_compile")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for node in ast.walk(ast.parse(_read(path), path)):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                    for m in mods:
                        found.setdefault(m.split(".")[0], os.path.relpath(path, ROOT))
    third_party = {m: p for m, p in found.items() if m not in sys.stdlib_module_names and m != "dmt_compile"}
    unknown = {m: p for m, p in third_party.items() if m not in DECLARED | OPTIONAL}
    assert not unknown, f"imports that no dependency provides: {unknown}"
