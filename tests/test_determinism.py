"""The plan and the dump do not depend on the process (hash seed): ranks must agree on them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = (
    "import sys; sys.path[:0] = [{tests!r}, {root!r}]\n"
    "import zoo, dmt_compile, hashlib\n"
    "out = []\n"
    "for name in ['big_table_offsets_input', 'shared_fibinet', 'deepfm_matrix', 'ffm']:\n"
    "    m, i = zoo.load(name)\n"
    "    d = dmt_compile.transform(m, '2x2', i)\n"
    "    out.append(hashlib.sha256((d.plan.to_json() + d.dump('table')).encode()).hexdigest())\n"
    "print(' '.join(out))\n"
)


@pytest.mark.parametrize("seeds", [("1", "2")])
def test_plan_and_dump_identical_across_hash_seeds(seeds):
    code = SCRIPT.format(tests=os.path.join(ROOT, "tests"), root=ROOT)
    outs = []
    for seed in seeds:
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.strip())
    assert outs[0] == outs[1]
