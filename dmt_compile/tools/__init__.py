"""The command line: the CLI shell (`cli.py`), one module per command (`cmd_*.py`), `verify`.

Nothing in the library imports this package. `bench` and `train` run the applications of the
`benchmarks` package beside `dmt_compile` (`applications.py` loads them by name, from a checkout).
"""
