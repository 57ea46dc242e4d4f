"""Transform every example model, check the identity rewrite is exact, and show a compressed plan.

    python examples/run_transform.py [--topology 2x4] [--compression 4]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import torch

import dmt_compile
from dmt_compile.ir.shapes import tree_max_abs_diff

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = ("dlrm", "dcn_v2", "deepfm", "attention")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.factory


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="2x4")
    p.add_argument("--compression", type=float, default=4)
    args = p.parse_args(argv)
    for name in EXAMPLES:
        model, inputs = load(name)()
        model.eval()
        exact = dmt_compile.transform(model, args.topology, inputs).eval()
        diff = tree_max_abs_diff(exact(*inputs), model(*inputs))
        torch.manual_seed(0)
        small = dmt_compile.transform(model, args.topology, inputs, tower_module="linear",
                                      compression=args.compression)
        width_in = sum(d.width_in for d in small.plan.details)
        width_out = sum(d.width_out for d in small.plan.details)
        print(f"== {name}: capture path {exact.capture_report.path}; identity TM max |diff| = {diff:.2e}; "
              f"linear TM c={args.compression:g}: {width_in} -> {width_out} elements per sample leave the towers "
              f"(feed: {small.plan.details[0].feed})")
        print(small.plan)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
