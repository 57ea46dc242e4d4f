"""Applications beside the library: they import `dmt_compile`, and `dmt_compile` never imports them.

* `emulated/` — the emulated multi-host benchmark (network namespaces as hosts, tc-shaped NICs;
  needs root): `python -m dmt_compile bench ...`.
* `quality/` — the model-quality harness (planted-group synthetic data, UCI Adult, AUC / log-loss):
  `python -m dmt_compile train ...`.
* the `bench_*.py` scripts — micro-benchmarks run as `python benchmarks/bench_*.py`.

Not part of the installed wheel: run them from a checkout of the repository (README).
"""
